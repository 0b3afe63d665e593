"""Client summaries: what the campaign stage needs of one (client, model), in at most 2 KB.

The engine judges each account alone; a theft dealt over many accounts is seen only by
putting them side by side. Each engine therefore emits, per active (client, model), a
small summary that the campaign stage (``detector.engine.campaigns``) reads — in process
for a replay, over the summaries topic when consumers are spread over partitions.

**When** (``SummaryRule``): at every doubling of the client's queries (8, 16, 32, …), where
its sample of queries has changed the most, and at the first event of each
``every_seconds`` window of event time while the client is active. Both are judged from
what the state already holds (the query count and the previous event time), so the rule
adds nothing to the per-client state.

**What** (all derived from the existing state, nothing new is kept per client):

* counts of the evidence indicators (out of profile, far, boundary of answers scored,
  structured steps, exact resends) and the evidence risk;
* a bitmap of the input cells visited and the predicted-class histogram (coverage);
* a sample of the client's reservoir of past queries (8-bit codes): the campaign stage
  looks for queries of one account that are structured steps from another's (a
  perturbation chain dealt over accounts), which no count or hash can show;
* the grouping keys (``grouping``) and the extraction estimate.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack
import numpy as np
from numpy.typing import NDArray

from querywatch.detector.engine.grouping import NO_KEYS, GroupingKeys
from querywatch.features.layout import LAYOUT, RESERVOIR_WIDTH

if TYPE_CHECKING:
    from querywatch.detector.engine.clientstate import ClientState
    from querywatch.detector.engine.events import Event

#: Largest serialized summary (bytes); reservoir rows are left out until it fits.
MAX_SUMMARY_BYTES = 2048
#: Reservoir rows a summary carries: as many as ``CODE_BUDGET`` bytes of whole queries fill
#: (32 of a 20-input model), and at least ``MIN_CODE_ROWS`` (a 64-input model's, an image's).
#: Counted at the query's width, not the narrower reservoir row's (``features.layout``), and
#: kept small: the campaign lineage compares each row with the newest rows of its cell, so its
#: work grows with the square of the rows. On the bench's traces with the extras the stage cost
#: 31% (digits, 40 rows of its 32 kept features) and 28% (credit, 64 rows) more replay CPU,
#: against 17% and 18% at 20 and 32 rows, with the same campaigns found; digits' 40 rows also
#: linked a what-if analyst to a campaign through its brightened background.
CODE_BUDGET = 640
MIN_CODE_ROWS = 20
#: The first doubling that emits (a summary of fewer queries says little).
FIRST_DOUBLING = 8
SUMMARY_VERSION = 1


@dataclass(frozen=True, slots=True)
class SummaryRule:
    """When a (client, model) emits: at each doubling of its queries from ``FIRST_DOUBLING``
    on, and at its first event of each ``every_seconds`` window while it is active.

    >>> rule = SummaryRule(every_seconds=300.0)
    >>> [q for q in range(1, 70) if rule.doubling(q)]
    [8, 16, 32, 64]
    >>> rule.due(9, previous_ts=10.0, ts=20.0), rule.due(9, previous_ts=290.0, ts=310.0)
    (False, True)
    """

    every_seconds: float = 300.0

    @staticmethod
    def doubling(queries: int) -> bool:
        return queries >= FIRST_DOUBLING and queries & (queries - 1) == 0

    def due(self, queries: int, previous_ts: float, ts: float) -> bool:
        if self.doubling(queries):
            return True
        if previous_ts == float("-inf"):
            return False
        return ts // self.every_seconds > previous_ts // self.every_seconds


class IndicatorCounts(NamedTuple):
    """A summary's counts of the evidence indicators. A tuple (96 bytes) rather than a dict
    of six (272): the campaign stage keeps every client's latest summary.

    >>> IndicatorCounts(ood=2, scored=5).steps, IndicatorCounts()._asdict()["exact"]
    (0, 0)
    """

    ood: int = 0
    far: int = 0
    boundary: int = 0
    scored: int = 0
    steps: int = 0
    exact: int = 0

    @classmethod
    def of(cls, plain: dict[str, Any]) -> IndicatorCounts:
        """From their serialized form, a dict by name (absent names count 0; names this
        release does not know are dropped)."""
        return cls(**{name: int(plain.get(name, 0)) for name in cls._fields})


@dataclass(frozen=True, slots=True)
class ClientSummary:
    """One (client, model) as of one of its events (see the module docstring)."""

    model_id: str
    client_id: str
    profile: str  # the profile version its cells and codes refer to
    ts: float
    queries: int
    risk: float  # evidence risk (calibrated), as of ``ts``
    alerted: bool  # the client has had an alert of its own on this model
    counts: IndicatorCounts
    cells: bytes  # bitmap of the input cells visited (bit k: cell k)
    classes: tuple[int, ...]  # predicted-class histogram
    codes: bytes  # reservoir sample: rows of ``dim`` 8-bit codes
    dim: int
    doubling: bool  # emitted at a doubling (its code sample is new)
    keys: GroupingKeys = NO_KEYS
    extraction: float | None = None

    def code_rows(self) -> NDArray[np.uint8]:
        rows = len(self.codes) // self.dim if self.dim else 0
        return np.frombuffer(self.codes, dtype=np.uint8, count=rows * self.dim).reshape(rows, self.dim)

    def to_bytes(self) -> bytes:
        """MessagePack, at most ``MAX_SUMMARY_BYTES`` (code rows are dropped until it fits).

        >>> s = example_summary()
        >>> back = ClientSummary.from_bytes(s.to_bytes())
        >>> back == s, len(s.to_bytes()) <= MAX_SUMMARY_BYTES
        (True, True)
        """
        summary = self
        while True:
            data: bytes = msgpack.packb(summary._plain(), use_bin_type=True)
            if len(data) <= MAX_SUMMARY_BYTES or not summary.codes:
                return data
            rows = len(summary.codes) // summary.dim
            keep = max(0, rows - 1 - (len(data) - MAX_SUMMARY_BYTES) // max(summary.dim, 1))
            summary = replace(summary, codes=summary.codes[: keep * summary.dim])

    def _plain(self) -> dict[str, Any]:
        return {
            "v": SUMMARY_VERSION,
            "model_id": self.model_id,
            "client_id": self.client_id,
            "profile": self.profile,
            "ts": self.ts,
            "queries": self.queries,
            "risk": self.risk,
            "alerted": self.alerted,
            "counts": self.counts._asdict(),
            "cells": self.cells,
            "classes": list(self.classes),
            "codes": self.codes,
            "dim": self.dim,
            "doubling": self.doubling,
            "keys": [list(self.keys.networks), list(self.keys.user_agents), self.keys.org],
            "extraction": self.extraction,
            "layout": LAYOUT,
        }

    @classmethod
    def from_bytes(cls, data: bytes) -> ClientSummary:
        """ValueError if ``data`` is not a summary of this version. Its strings are interned:
        a holder of many summaries (the campaign stage) keeps one copy of each id and key,
        not one per summary."""
        try:
            d = msgpack.unpackb(data, raw=False)
            if not isinstance(d, dict) or d.get("v") != SUMMARY_VERSION:
                raise ValueError("not a version-1 client summary")
            networks, agents, org = d["keys"]
            dim = int(d["dim"])
            # Rows of a wide input that a release of another layout generation kept hold other
            # features (``features.layout``): the summary comes without its code sample (a
            # client's next doubling sends one); a narrow input's rows keep every feature.
            other_rows = d.get("layout", 1) != LAYOUT and dim >= RESERVOIR_WIDTH
            keys = GroupingKeys.stored(
                map(_interned, networks), map(_interned, agents), None if org is None else _interned(org)
            )
            return cls(
                _interned(d["model_id"]),
                _interned(d["client_id"]),
                _interned(d["profile"]),
                float(d["ts"]),
                int(d["queries"]),
                float(d["risk"]),
                bool(d["alerted"]),
                IndicatorCounts.of(d["counts"]),
                bytes(d["cells"]),
                tuple(int(c) for c in d["classes"]),
                b"" if other_rows else bytes(d["codes"]),
                dim,
                bool(d["doubling"]),
                keys,
                None if d["extraction"] is None else float(d["extraction"]),
            )
        except (AttributeError, KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
            raise ValueError(f"not a client summary: {exc}") from None


def _interned(value: object) -> str:
    return sys.intern(str(value))


def cell_bitmap(counts: NDArray[np.integer]) -> bytes:
    """Bitmap (little-endian bits) of the cells with a nonzero count.

    >>> cell_bitmap(np.array([1, 0, 3, 0, 0, 0, 0, 0, 2]))
    b'\\x05\\x01'
    """
    return np.packbits(np.asarray(counts) > 0, bitorder="little").tobytes()


def example_summary() -> ClientSummary:
    """A small valid summary (doctests and tests)."""
    return ClientSummary(
        "m",
        "acct-1",
        "v1",
        10.0,
        16,
        0.2,
        False,
        IndicatorCounts(ood=1, boundary=2, scored=16, steps=3),
        cell_bitmap(np.array([1, 0, 2, 1])),
        (3, 13),
        bytes(range(8)),
        4,
        True,
        GroupingKeys(("203.0.113.0/24",), ("curl/8",), "acme"),
        0.5,
    )


def summarize(
    state: ClientState,
    event: Event,
    *,
    profile: str,
    risk: float,
    doubling: bool,
    salt: str | None = None,
) -> ClientSummary:
    """The summary of ``state`` (one client on ``event``'s model, whose ``profile`` version
    it refers to) as of ``event``, after which its risk was ``risk``; ``salt`` hashes the
    grouping keys. Only reads the state."""
    f = state.features
    codes, _, filled = f.distances.reservoir.sample()
    dim = codes.shape[1]
    rows = min(filled, max(MIN_CODE_ROWS, CODE_BUDGET // max(len(event.input), 1)))
    cells = np.frombuffer(f.coverage.get_state(), dtype=np.uint16)
    classes = np.frombuffer(f.classes.get_state(), dtype=np.uint32)
    current = state.current
    sources = state.sources  # None if its events named no source
    ips, user_agents = ((), ()) if sources is None else (sources.ips, sources.user_agents)
    return ClientSummary(
        model_id=state.model_id,  # the model's one string, not this event's copy
        client_id=event.client_id,
        profile=profile,
        ts=event.ts,
        queries=state.queries,
        risk=risk,
        alerted=state.alerts > 0 or current is not None,
        counts=IndicatorCounts(
            f.ood.count, f.ood.far, f.boundary.count, f.boundary.scored, f.distances.steps, f.distances.exact
        ),
        cells=cell_bitmap(cells),
        classes=tuple(classes.tolist()),
        codes=codes[:rows].tobytes(),
        dim=dim,
        doubling=doubling,
        keys=GroupingKeys.of(ips, user_agents, event.org, salt=salt),
        extraction=f.extraction_estimate(),
    )
