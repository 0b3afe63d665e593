"""Checks a command runs on its paths and ports before it imports the engine or starts work.

A typo in ``--report`` should fail in a fraction of a second, not after a long replay.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
from pathlib import Path

from querywatch.detector.errors import InputError, QuerywatchError
from querywatch.detector.pipeline.lines import open_lines


class PortInUse(QuerywatchError):
    """The address a server should listen on is taken or not allowed."""


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535, refused as a usage error.

    >>> port_number("0"), port_number("8080")
    (0, 8080)
    >>> port_number("99999")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 99999 is not a port (0 to 65535; 0 picks a free one)
    """
    port = _integer(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 to 65535; 0 picks a free one)")
    return port


def count(text: str) -> int:
    """An argparse type: a whole number of things, 0 or more (``--top -1`` is a typo, not a wish).

    >>> count("15")
    15
    >>> count("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: -1 is not a count (0 or more)
    """
    number = _integer(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a count (0 or more)")
    return number


def days(text: str) -> float:
    """An argparse type: a number of days, 0 or more (``purge --older-than-days -3`` would put
    the cut-off in the future and delete every row).

    >>> days("0.5")
    0.5
    >>> days("-3")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: -3 is not a number of days (0 or more)
    """
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of days (0 or more)")
    return number


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0 (``simulate --scale inf`` ended in an
    OverflowError deep in the simulator).

    >>> positive_number("0.1")
    0.1
    >>> positive_number("inf")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: inf is not a positive number
    """
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return number


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def readable_file(path: Path, what: str) -> Path:
    """``path`` if it is a file this process can read (``-``, standard input, is not: a replay
    reads its trace twice, and a profile its reference file)."""
    if str(path) == "-" and not path.exists():
        raise InputError(
            f"the {what} is read from a file, not standard input",
            hint="write it to a file first; a gzip'd one (.jsonl.gz) is read as it is",
        )
    if not path.is_file():
        raise InputError(f"{path}: no such {what}" if not path.exists() else f"{path}: is not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: the {what} is not readable")
    return path


def readable_lines(path: Path, what: str) -> Path:
    """``path`` if it is a JSON Lines file this process can read, gzip'd ones included
    (``pipeline.lines``): a ``.gz`` that is no gzip is an input error, before any work."""
    readable_file(path, what)
    try:
        with open_lines(path) as f:
            f.read(1)
    except OSError as exc:
        raise InputError(f"{path}: the {what} cannot be read: {exc}") from None
    return path


def writable_file(path: Path, what: str) -> Path:
    """``path`` if it can be created or replaced: its folder exists and is writable."""
    folder = path.parent
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the {what}")
    if not folder.is_dir():
        raise InputError(
            f"{path}: folder {folder} does not exist", hint=f"create it first: mkdir -p {folder}"
        )
    if not os.access(folder, os.W_OK):
        raise InputError(f"{path}: folder {folder} is not writable")
    return path


def distinct_outputs(outputs: list[tuple[Path | None, str]], inputs: list[tuple[Path | None, str]]) -> None:
    """Refuse an output (path, what) that is an input or an earlier output, before any work:
    ``replay t.jsonl --report t.jsonl`` replaced the trace with its report, and
    ``simulate --out A --truth A`` kept only the truth."""
    named = [(path, what) for path, what in inputs if path is not None]
    for path, what in outputs:
        if path is None:
            continue
        for other, other_what in named:
            if same_file(path, other):
                raise InputError(f"{path}: is also the {other_what} ({other}); give the {what} another name")
        named.append((path, what))


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode when both exist (hard and
    symbolic links included), else the same absolute path once links are resolved.

    >>> same_file(Path("report.json"), Path("./report.json"))
    True
    """
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def writable_folder(path: Path, what: str) -> Path:
    """``path`` if it is, or can be created as, a writable folder."""
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise InputError(f"{path}: {existing} is not a folder; the {what} must be a folder")
    if not os.access(existing, os.W_OK):
        raise InputError(f"{path}: {existing} is not writable")
    return path


def free_port(host: str, port: int) -> None:
    """Raise ``PortInUse`` unless ``host:port`` can be listened on now (port 0 always can)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = (
                "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc.strerror}"
            )
            raise PortInUse(
                f"{host}:{port} {reason}", hint="choose another with --port N (or --port 0 for any free port)"
            ) from None
