"""Print the configuration table (every setting, its environment variable, default, meaning).

Generated from ``Settings`` itself so the README cannot drift from the code:
``python -m querywatch.detector.config.doc`` prints Markdown; ``--write FILE`` replaces the table
between the ``settings-table`` markers of FILE; a test checks the README section.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from querywatch.detector.config import Settings
from querywatch.detector.config.sources import leaf_paths, variable


def settings_rows(model: type[BaseModel] = Settings) -> Iterator[tuple[str, str, str]]:
    """(environment variable, default, description) of every leaf setting, in declaration order.

    >>> rows = {env: default for env, default, _ in settings_rows()}
    >>> rows["QUERYWATCH_KAFKA__TOPIC"]
    '`inference-logs`'
    """
    for path, field in leaf_paths(model):
        yield variable(path), _default(field), (field.description or "").replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value))}`"
    if isinstance(value, dict):
        return f"`{json.dumps(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def settings_table() -> str:
    """The table as Markdown."""
    lines = ["| environment variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{env}` | {default} | {description} |" for env, default, description in settings_rows()]
    return "\n".join(lines)


START_MARKER = "<!-- settings-table:start -->\n"
END_MARKER = "\n<!-- settings-table:end -->"


def table_in(text: str) -> str:
    """The table between the markers of ``text`` (ValueError if they are missing)."""
    if START_MARKER not in text or END_MARKER not in text:
        raise ValueError("no settings-table markers")
    return text.split(START_MARKER, 1)[1].split(END_MARKER, 1)[0]


def write_table(path: Path) -> None:
    """Replace the table between the markers of the Markdown file at ``path``."""
    text = path.read_text()
    old = START_MARKER + table_in(text) + END_MARKER
    path.write_text(text.replace(old, START_MARKER + settings_table() + END_MARKER))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"] and len(sys.argv) == 3:
        write_table(Path(sys.argv[2]))
    else:
        print(settings_table())
