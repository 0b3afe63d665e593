"""Compilation of the few per-query inner loops, with numba.

Comparing a query with the codes in its client's reservoir takes a few thousand integer
operations. As numpy calls that costs a dozen microseconds of call overhead per query;
compiled, it costs about one. Compiled code is cached beside the sources, or in
``NUMBA_CACHE_DIR``. Where no directory is writable (a read-only image without that
variable), each process compiles afresh instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., object])


def compiled(fn: F) -> F:
    """``fn`` compiled to machine code on first call (nopython mode, GIL released)."""
    try:
        return cast(F, numba.njit(cache=True, nogil=True)(fn))
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return cast(F, numba.njit(nogil=True)(fn))
