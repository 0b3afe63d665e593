"""What commands print: ``--json`` documents with a versioned schema, and progress bars.

Every ``--json`` document is one JSON object on stdout whose ``schema`` names the command and
the version of its shape (``querywatch.replay/1``); a change that removes or renames a field
bumps the version. Progress bars (tqdm) appear only on a terminal, always reach their end,
and stay quiet under ``--json`` and ``--quiet``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

#: The version of each command's ``--json`` document.
JSON_SCHEMAS = {
    "replay": 1,
    "profile": 1,
    "simulate": 1,
    "produce": 1,
    "db": 1,
    "apikey": 1,
    "config": 1,
    "doctor": 1,
    "dead-letters": 1,
}


def add_output_options(parser: argparse.ArgumentParser, *, progress: bool = False) -> None:
    """``--json`` (and ``--quiet`` for commands with a progress bar)."""
    parser.add_argument("--json", action="store_true", help="print one JSON document (see the README)")
    if progress:
        parser.add_argument("--quiet", action="store_true", help="no progress bar")


def schema_of(command: str) -> str:
    """The ``schema`` value of a command's JSON document.

    >>> schema_of("replay")
    'querywatch.replay/1'
    """
    return f"querywatch.{command}/{JSON_SCHEMAS[command]}"


def print_json(command: str, document: dict[str, Any]) -> None:
    """One JSON document on stdout, ``schema`` first; a number that is not finite (a threshold
    nothing bounds) is null: ``NaN`` and ``Infinity`` are no JSON, and parsers refuse them.

    >>> print_json("profile", {"far": float("inf"), "rows": [1.5, float("nan")]})
    {"schema": "querywatch.profile/1", "far": null, "rows": [1.5, null]}
    """
    print(json.dumps(_finite({"schema": schema_of(command), **document}), default=str, allow_nan=False))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class Progress(Protocol):
    def update(self, n: int) -> None: ...


class _Silent:
    def update(self, n: int) -> None:
        return None


@contextmanager
def progress_bar(args: argparse.Namespace, *, total: int, unit: str, description: str) -> Iterator[Progress]:
    """A tqdm bar on stderr when it is a terminal and output is not ``--json``/``--quiet``.

    The bar is completed on a normal exit, so it never stops short of 100%.
    """
    if getattr(args, "json", False) or getattr(args, "quiet", False) or not sys.stderr.isatty():
        yield _Silent()
        return
    from tqdm import tqdm

    try:  # a terminal that reports no size (some pseudo-terminals) gets 80x24: tqdm hides a bar at 0 rows
        size = os.get_terminal_size(sys.stderr.fileno())
        columns, lines = size.columns or 80, size.lines or 24
    except OSError:
        columns, lines = 80, 24
    with tqdm(
        total=total, unit=unit, unit_scale=True, desc=description, file=sys.stderr, ncols=columns, nrows=lines
    ) as bar:
        yield _Clamped(bar, total)
        bar.update(max(0, total - bar.n))


class _Clamped:
    """Estimated steps never carry the bar past its total."""

    def __init__(self, bar: Any, total: int) -> None:
        self._bar, self._total = bar, total

    def update(self, n: int) -> None:
        self._bar.update(max(0, min(n, self._total - self._bar.n)))
