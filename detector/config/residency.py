"""Settings section: how many clients' state the engine keeps in memory.

Past the cap, the least recently active clients (by event time) are spilled: their state
leaves memory and comes back, unchanged, with their next event, so decisions are the
same as if they had stayed. ``consume`` spills to the checkpoint store (the
``client_states`` table, in the checkpoint's transaction); ``replay`` has no database and
keeps spilled states compressed in memory (``pipeline/replay.py``).
"""

from __future__ import annotations

from pydantic import Field

from querywatch.detector.config.base import Section


class ResidencySettings(Section):
    """The cap on resident clients, for replay and consume alike."""

    max_resident_clients: int | None = Field(
        200_000,
        ge=0,
        description="Clients whose state stays in memory; past it the least recently active "
        "(event time) are spilled — `consume` to its checkpoint table, `replay` to compressed "
        "bytes in memory — and brought back on their next event with the same decisions. "
        "0: no cap. The default keeps 0.4 to 1.2 GB of client state resident "
        "(about 2 KB a client of a few queries, 6 KB one whose reservoir is full).",
    )
