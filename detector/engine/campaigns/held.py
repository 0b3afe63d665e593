"""What the campaign stage holds of each client's latest summary, packed in one bytes object.

The stage keeps every client's latest summary (``stage.ModelCampaigns.summaries``): a
million two-event clients hold a million of them. As a ``ClientSummary`` one cost about 320
bytes (the object's 15 slots, its counts' named tuple, its cell bitmap, its risk); packed, its
numbers, cell bitmap and grouping keys fit one block of 160. The model id and profile version
are the stage's model's, the client id is the stage's key: the summary comes back whole
(``summary``) for a checkpoint, whose bytes are the same as before.
"""

from __future__ import annotations

import struct

import msgpack
import numpy as np
from numpy.typing import NDArray

from querywatch.detector.engine.grouping import GroupingKeys
from querywatch.detector.engine.summaries import ClientSummary, IndicatorCounts

#: ts, risk, extraction; queries and the six indicator counts; dim; flags; the cell bitmap's
#: length (bytes). The bitmap and the grouping keys (MessagePack) follow.
_HEAD = struct.Struct("<3d7QIBI")
_ALERTED, _DOUBLING, _EXTRACTION = 1, 2, 4
#: The counts' slice of the head's values.
_COUNTS = slice(4, 10)


class HeldSummary(bytes):
    """A client's summary as the campaign stage holds it (without its code sample and class
    histogram, which the lineage index holds or the stage never reads).

    >>> from dataclasses import replace
    >>> from querywatch.detector.engine.summaries import example_summary
    >>> s = example_summary()
    >>> held = HeldSummary.of(s)
    >>> held.queries, held.counts.steps, held.ts, held.extraction, held.keys.org
    (16, 3, 10.0, 0.5, 'acme')
    >>> held.summary(s.model_id, s.client_id, s.profile) == replace(s, codes=b"", classes=())
    True
    """

    __slots__ = ()

    @classmethod
    def of(cls, summary: ClientSummary) -> HeldSummary:
        flags = _ALERTED * summary.alerted + _DOUBLING * summary.doubling
        extraction = summary.extraction
        if extraction is not None:
            flags |= _EXTRACTION
        keys = summary.keys
        head = _HEAD.pack(
            summary.ts,
            summary.risk,
            0.0 if extraction is None else extraction,
            summary.queries,
            *summary.counts,
            summary.dim,
            flags,
            len(summary.cells),
        )
        packed_keys = msgpack.packb((keys.networks, keys.user_agents, keys.org))
        return cls(head + summary.cells + packed_keys)

    @property
    def ts(self) -> float:
        ts: float = _HEAD.unpack_from(self)[0]
        return ts

    @property
    def queries(self) -> int:
        queries: int = _HEAD.unpack_from(self)[3]
        return queries

    @property
    def counts(self) -> IndicatorCounts:
        return IndicatorCounts(*_HEAD.unpack_from(self)[_COUNTS])

    @property
    def extraction(self) -> float | None:
        values = _HEAD.unpack_from(self)
        return values[2] if values[11] & _EXTRACTION else None

    def cell_set(self) -> NDArray[np.bool_]:
        cells = _HEAD.unpack_from(self)[12]
        bits = np.frombuffer(self, dtype=np.uint8, count=cells, offset=_HEAD.size)
        return np.unpackbits(bits, bitorder="little").astype(bool)

    @property
    def keys(self) -> GroupingKeys:
        return self._keys(_HEAD.unpack_from(self)[12])

    def _keys(self, cells: int) -> GroupingKeys:
        """The grouping keys, after the head and a cell bitmap of ``cells`` bytes."""
        return GroupingKeys.stored(*msgpack.unpackb(self[_HEAD.size + cells :]))

    def summary(self, model_id: str, client_id: str, profile: str) -> ClientSummary:
        """The summary whole again, as the stage held it before (no codes, no classes)."""
        ts, risk, extraction, queries, *rest = _HEAD.unpack_from(self)
        counts, (dim, flags, cells) = rest[:6], rest[6:]
        return ClientSummary(
            model_id=model_id,
            client_id=client_id,
            profile=profile,
            ts=ts,
            queries=queries,
            risk=risk,
            alerted=bool(flags & _ALERTED),
            counts=IndicatorCounts(*counts),
            cells=bytes(self[_HEAD.size : _HEAD.size + cells]),
            classes=(),
            codes=b"",
            dim=dim,
            doubling=bool(flags & _DOUBLING),
            keys=self._keys(cells),
            extraction=extraction if flags & _EXTRACTION else None,
        )
