"""Compilation of the few per-query inner loops, with numba.

Comparing a query with the codes in its client's reservoir takes a few thousand integer
operations. As numpy calls that costs a dozen microseconds of call overhead per query;
compiled, it costs about one. Compiled code is cached beside the sources, or in
``NUMBA_CACHE_DIR``. Where no directory is writable (a read-only image without that
variable), each process compiles afresh instead of failing; so does one whose cache cannot
be written (a full disk, a file-size limit), which numba would otherwise raise from the
first call of the function, in the middle of scoring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., object])


def compiled(fn: F) -> F:
    """``fn`` compiled to machine code on first call (nopython mode, GIL released)."""
    try:
        dispatcher = numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return cast(F, numba.njit(nogil=True)(fn))
    cache: Any = dispatcher._cache  # type: ignore[attr-defined]  # numba's FunctionCache: only saving is guarded
    cache.save_overload = _unless_unwritable(cache.save_overload)
    return cast(F, dispatcher)


def _unless_unwritable(save: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """``save``, but a cache file that cannot be written leaves the code compiled in memory."""

    def save_or_skip(sig: Any, data: Any) -> None:
        with contextlib.suppress(OSError):
            save(sig, data)

    return save_or_skip
