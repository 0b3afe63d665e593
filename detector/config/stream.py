"""Settings section: where ``querywatch replay`` and ``querywatch consume`` may differ.

Both run the one pipeline loop (``pipeline/loop.py``). What a stream of events needs
beyond it — which redeliveries are dropped, and when idle clients are forgotten — is named
here, with the same default for both. The one difference without a setting is the end of
the stream: a replay's input ends, and the warm-ups still held then are completed and
scored (``Pipeline.finish``); a consumer's input never ends, and it stores what is held
with its checkpoints instead.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from querywatch.detector.config.base import Section


class StreamSettings(Section):
    """Dedup scope and eviction of the pipeline loop, for replay and consume alike."""

    dedup_scope: Literal["client", "stream"] = Field(
        "client",
        description="Which redeliveries are dropped. `client`: a request id seen among the "
        "client's last stream.dedup_per_client (stored with the consumer's checkpoints, so "
        "it holds across restarts and rebalances); `stream`: one seen among the last "
        "detection.dedup_capacity of the whole input, whatever the client (replay only: a "
        "consumer's partitions have no common memory).",
    )
    dedup_per_client: int = Field(
        256, ge=1, description="Request ids remembered per client when stream.dedup_scope is `client`."
    )
    evict_idle: bool = Field(
        True,
        description="Forget the state of clients idle detection.idle_evict_seconds of event "
        "time (a client that comes back starts afresh), so memory follows the active clients; "
        "a replay's report keeps what it reported of them.",
    )
