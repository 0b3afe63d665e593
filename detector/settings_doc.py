"""Print the configuration table (every setting, its environment variable, default, meaning).

Generated from ``Settings`` itself so the README cannot drift from the code:
``python -m detector.settings_doc`` prints Markdown; a test checks the README section.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from detector.config import Settings

PREFIX = "QUERYWATCH_"


def settings_rows(
    model: type[BaseModel] = Settings, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, str, str]]:
    """(environment variable, default, description) of every leaf setting, in declaration order.

    >>> rows = {env: default for env, default, _ in settings_rows()}
    >>> rows["QUERYWATCH_KAFKA__TOPIC"]
    '`inference-logs`'
    """
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from settings_rows(annotation, (*path, name))
            continue
        env = PREFIX + "__".join((*path, name)).upper()
        yield env, _default(field), (field.description or "").replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value))}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def settings_table() -> str:
    """The table as Markdown."""
    lines = ["| environment variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{env}` | {default} | {description} |" for env, default, description in settings_rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())
