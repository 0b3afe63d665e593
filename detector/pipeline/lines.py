"""JSON Lines files as replay, produce and profile read them: plain, or gzip'd.

Inference logs are usually kept compressed, and a day of them is large: a name ending in
``.gz`` is read through gzip as a stream, never unpacked to disk or held whole.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

#: Why a gzip'd file that ends early cannot be read (the caller names the file).
_CUT_SHORT = "the gzip stream ends before its end-of-stream marker (cut short?)"


class _GzipLines(gzip.GzipFile):
    """A gzip stream whose early end is an ``OSError`` as a broken file's is (gzip raises
    ``EOFError``): a log copied while it was written ends so, and every reader of these
    files already turns an ``OSError`` into a clear input error."""

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except EOFError:
            raise gzip.BadGzipFile(_CUT_SHORT) from None

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return super().readline(size)
        except EOFError:
            raise gzip.BadGzipFile(_CUT_SHORT) from None


def open_lines(path: Path) -> io.BufferedIOBase:
    """``path`` opened for reading bytes, decompressed when its name ends in ``.gz``; a file
    so named that is no gzip, or one cut short, fails as it is read (``gzip.BadGzipFile``, an
    ``OSError``)."""
    if path.suffix.lower() == ".gz":
        return _GzipLines(path, "rb")
    return path.open("rb")


def lines_suffix(path: Path) -> str:
    """The suffix that says what ``path`` holds: ``.jsonl`` for ``trace.jsonl.gz`` too."""
    return (path.with_suffix("") if path.suffix.lower() == ".gz" else path).suffix.lower()


def content_size(path: Path) -> int:
    """Bytes ``open_lines`` reads from ``path`` (for a progress bar): its size, or what a
    gzip file records of its content (its last four bytes: the size modulo 4 GiB).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "t.jsonl.gz"
    ...     _ = p.write_bytes(gzip.compress(b'{"a": 1}\\n' * 1000))
    ...     content_size(p), open_lines(p).read().count(b"\\n"), lines_suffix(p)
    (9000, 1000, '.jsonl')
    """
    if path.suffix.lower() != ".gz":
        return path.stat().st_size
    with path.open("rb") as f:
        f.seek(-4, 2)
        return int.from_bytes(f.read(4), "little")
