"""Output files written whole or not at all: a report, an HTML page, a simulated trace, a
profile. Kept apart from the replay it serves first, so that ``profile`` and ``simulate``
write through it without importing the engine."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from querywatch.detector.errors import InputError


@contextmanager
def written_whole(path: str | Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """A file to write ``path``'s new content to, which replaces ``path`` only once all of it
    is written: a full disk or a file size limit in the middle of a report used to destroy the
    previous one and leave truncated JSON. The content goes to a temporary file beside the
    target (a rename is atomic only within one file system), removed if anything fails; an
    ``OSError`` becomes an ``InputError`` naming ``path``. A target that exists and is no
    regular file (a FIFO, a terminal) is written in place, as it cannot be replaced."""
    given = Path(path)
    if given.exists() and not given.is_file():
        with _said_as(path), given.open("wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
        return
    target = Path(os.path.realpath(given))  # through a symbolic link, as writing in place did
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with _said_as(path):
            with temporary.open("xb" if binary else "x", encoding=None if binary else "utf-8") as f:
                yield f
            if target.exists():
                shutil.copymode(target, temporary)  # a report kept private stays private
            os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def _said_as(path: str | Path) -> Iterator[None]:
    """An ``OSError`` as one line naming the output (not the temporary file it was written to)."""
    try:
        yield
    except OSError as exc:
        reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno is not None else str(exc)
        raise InputError(f"{path}: cannot be written: {reason}") from None
