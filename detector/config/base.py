"""The base of every settings section: frozen, and unknown keys are an error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A nested section of ``Settings`` (``QUERYWATCH_<SECTION>__<NAME>``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
