"""Trace files: events as JSON Lines (one event per line) and the ground truth as JSON."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any

from querywatch.detector.pipeline.outputs import written_whole


def write_jsonl(events: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write events one JSON object per line, gzip'd when ``path`` ends in ``.gz`` (as replay,
    produce and profile read it); return how many were written. The file is replaced whole
    or not at all (``written_whole``)."""
    count = 0
    with written_whole(path, binary=True) as raw, _compressed(raw, Path(path)) as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":"), allow_nan=False).encode())
            out.write(b"\n")
            count += 1
    return count


def _compressed(raw: IO[bytes], path: Path) -> AbstractContextManager[IO[bytes]] | gzip.GzipFile:
    """``raw`` itself, or a gzip stream into it for a ``.gz`` name: with no file name or time in
    its header, so that the same seed still gives the same bytes."""
    if path.suffix.lower() != ".gz":
        return nullcontext(raw)
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The events of a JSON Lines file, skipping blank lines."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def write_truth(truth: dict[str, dict[str, str]], path: str | Path) -> None:
    """Write the ground truth ``{client_id: {"role", "family"}}`` as sorted, indented JSON."""
    with written_whole(path) as out:
        out.write(json.dumps(truth, indent=2, sort_keys=True) + "\n")
