"""Trace files: events as JSON Lines (one event per line) and the ground truth as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def write_jsonl(events: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write events one JSON object per line; return how many were written."""
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":"), allow_nan=False))
            out.write("\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The events of a JSON Lines file, skipping blank lines."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def write_truth(truth: dict[str, dict[str, str]], path: str | Path) -> None:
    """Write the ground truth ``{client_id: {"role", "family"}}`` as sorted, indented JSON."""
    Path(path).write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
