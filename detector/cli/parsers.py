"""How a command or an action joins the parser: its one-line summary in the list of
commands, and a help page that says what it is for.

argparse shows ``help`` only in the parent's list and ``description`` only on the command's
own page, so ``querywatch db --help`` said nothing about what ``db`` does unless each module
wrote the sentence twice. One function adds every (sub)command, so that every page has one.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """Add ``name`` under ``subparsers``, listed as ``summary``; its page opens with
    ``description``, or with the summary as a sentence.

    >>> actions = argparse.ArgumentParser(prog="querywatch").add_subparsers()
    >>> add_command(actions, "db", "create or migrate the database schema").description
    'Create or migrate the database schema.'
    >>> add_command(actions, "up", "run everything", description="Start it all.").description
    'Start it all.'
    """
    page = description if description is not None else f"{summary[0].upper()}{summary[1:]}."
    return subparsers.add_parser(name, help=summary, description=page, **kwargs)
