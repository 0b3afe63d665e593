"""A model warming up holds only its own events: on the real broker, every other model and
partition checkpoints as if it were not there, and its held events survive a restart. A
trusted profile awaiting live answers is held and completed the same way."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2
from sqlalchemy import select

from querywatch.detector.adapters.db.checkpoints import load_partition
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.shared_profiles import DatabaseProfileStore
from querywatch.detector.adapters.db.tables import DeadLetterRow, ModelProfileRow
from querywatch.detector.adapters.kafka.admin import ensure_topics
from querywatch.detector.adapters.kafka.partitions import held_chunk_keys
from querywatch.detector.adapters.kafka.producer import client_key
from querywatch.detector.config import DetectionSettings, KafkaSettings, Settings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import MemoryProfileStore, build_profile
from querywatch.detector.engine.reference import unpack_events
from querywatch.detector.metrics import REGISTRY
from querywatch.detector.pipeline.replay import replay
from querywatch.detector.simulate.victim import MODEL_ID, load_victim
from querywatch.models.profile import ReferenceProfile
from tests.kafka.harness import (
    ThreadedConsumer,
    consume_everything,
    consumer_settings,
    end_offsets,
    migrated_database,
    produce,
    read_topic,
    replay_expectation,
    stored,
    trace_lines,
    trace_truth,
    wait_for,
    wait_for_split,
    wait_until_stored,
)

pytestmark = pytest.mark.kafka

NEW_MODEL_EVENT = json.dumps(
    {
        "request_id": "never-seen-1",
        "ts": 1_700_000_000,
        "client_id": "acct-new-model",
        "model_id": "never-seen-v1",
        "input": [0.5, 0.25, 0.125],
    },
    separators=(",", ":"),
).encode()


def _held(settings: Settings) -> dict[int, list[str]]:
    """Partition -> request ids of the held events its checkpoint stores."""
    database = make_engine(settings.database)
    sessions = make_sessionmaker(database)
    held = {}
    try:
        for partition in end_offsets(settings.kafka):
            with transaction(sessions) as session:
                stored = load_partition(
                    session=session,
                    group_id=settings.kafka.group_id,
                    topic=settings.kafka.topic,
                    partition=partition,
                )
            blobs = [stored.client_states[k] for k in held_chunk_keys(stored.client_states, partition)]
            if blobs:  # one chunk a checkpoint that held more
                held[partition] = [e.request_id for blob in blobs for e in unpack_events(blob)]
    finally:
        database.dispose()
    return held


def test_one_event_of_a_never_seen_model_delays_no_checkpoint(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = consumer_settings(kafka_settings, tmp_path)
    lines = trace_lines()
    expected = replay_expectation(lines, settings.detection, tmp_path)
    # The new model's event comes first, so every later event of its partition follows it.
    produce(kafka_settings, [NEW_MODEL_EVENT, *lines])

    # consume_everything returns once every partition's checkpoint covers its end offset:
    # the partition of the held event too.
    result = consume_everything(settings)
    assert result.alerts == expected.alerts
    assert result.clients == expected.clients
    assert result.dead_letters == []
    held = _held(settings)
    assert list(held.values()) == [["never-seen-1"]]

    # A restart takes the held event back from the checkpoint: the next checkpoint of its
    # partition stores it again, with the model's next event (same client, same partition).
    produce(kafka_settings, [NEW_MODEL_EVENT.replace(b"never-seen-1", b"never-seen-2")])
    consume_everything(settings)
    assert list(_held(settings).values()) == [["never-seen-1", "never-seen-2"]]


def test_a_trusted_profile_awaiting_live_answers_is_completed_once_in_the_database(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """``querywatch profile`` without ``--served``: the group's consumer holds the model's
    first events, stores the completed profile as the next version for the whole group, and
    alerts the thieves beyond the file's profile as replay does with the same pending profile."""
    victim = load_victim()
    detection = DetectionSettings(warmup_events=2000, max_event_bytes=4096)
    own = victim.serve(victim.train)
    pending = build_profile(
        own.inputs,
        model_id=MODEL_ID,
        settings=detection,
        labels=own.labels.tolist(),
        scores=own.scores,
        live_answers=True,
    )
    settings = Settings(kafka=kafka_settings, database=migrated_database(tmp_path), detection=detection)
    database = make_engine(settings.database)
    DatabaseProfileStore(make_sessionmaker(database)).put(pending)
    lines = trace_lines()
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(b"\n".join(lines) + b"\n")
    replayed = MemoryProfileStore([pending])
    report = replay(trace, Detector(detection, replayed))
    produce(kafka_settings, lines)

    result = consume_everything(settings)
    # Every event scored once. Which events make the warm-up sample depends on how the
    # partitions interleave, so the live answers, and the boundary evidence built on them,
    # may differ from replay's; the thieves whose inputs lie beyond the file's profile are
    # alerted whatever the answers say.
    assert result.clients == {c.client_id: c.queries for c in report.clients.values()}
    beyond = {c.client_id for c in report.clients.values() if c.first_alert_query is not None} & {
        c for c, t in trace_truth().items() if t["family"] == "random"
    }
    assert beyond and beyond <= {c for _, c, _ in result.alerts}
    with transaction(make_sessionmaker(database)) as session:
        rows = session.scalars(
            select(ModelProfileRow)
            .where(ModelProfileRow.model_id == MODEL_ID)
            .order_by(ModelProfileRow.version)
        ).all()
        stored = [(row.version, ReferenceProfile.from_bytes(bytes(row.blob))) for row in rows]
    database.dispose()
    assert [(version, p.answers) for version, p in stored] == [(1, "pending"), (2, "live")]
    assert stored[1][1].ood_threshold == pending.ood_threshold and stored[1][1].margin_threshold > 0


def test_two_consumers_warming_up_one_model_score_every_event_once(
    kafka_settings: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No profile: each consumer of the group holds the model's events of its own
    partitions. The one whose sample fills first stores the profile for the group; the other
    scores what it held with that profile at its next events, since its own sample would
    never fill now (those events are scored at once). No event stays held, none is doubled."""
    # One partition holds a single client's 1,086 events, and a poll may hand them out
    # first: a sample of them, at most 40 kept (the default cap), builds no profile (see
    # the next test). The cap is lifted here, where the hand-over is what is tested.
    detection = DetectionSettings(warmup_events=800, warmup_per_client=800, max_event_bytes=4096)
    settings = Settings(kafka=kafka_settings, database=migrated_database(tmp_path), detection=detection)
    lines = trace_lines()
    ensure_topics(kafka_settings)
    first = ThreadedConsumer(settings).start()
    second: ThreadedConsumer | None = None
    database = make_engine(settings.database)
    try:
        wait_for(lambda: first.app.owned_partitions() == [0, 1, 2, 3], "the first consumer owning everything")
        second = ThreadedConsumer(settings).start()
        wait_for_split(first, second)
        seconds = set(second.app.owned_partitions())
        partition = {line: (murmur2(client_key(line)) & 0x7FFFFFFF) % 4 for line in lines}
        halves = (
            [line for line in lines if partition[line] in seconds],
            [line for line in lines if partition[line] not in seconds],
        )
        # Clients are not spread evenly (the trace's partitions hold 1,086, 1,060, 481 and 92
        # events): the consumer with more of them fills a sample (1,152 at least, against
        # 800), the other holds fewer than one.
        holder, filler = sorted(halves, key=len)
        held = min(300, len(holder) // 2)
        assert held >= 10 and len(filler) > detection.warmup_events
        produce(kafka_settings, holder[:held])  # held by their consumer: fewer than a sample
        wait_until_stored(database, kafka_settings)
        produce(kafka_settings, filler)  # the other consumer fills its sample and stores the profile
        wait_until_stored(database, kafka_settings)
        assert DatabaseProfileStore(make_sessionmaker(database)).latest(MODEL_ID) is not None
        produce(kafka_settings, holder[held:])  # the holder's next events: it adopts that profile
        wait_until_stored(database, kafka_settings)
    finally:
        first.close()
        if second is not None:
            second.close()
    result = stored(database)
    database.dispose()
    sent = Counter(json.loads(line)["client_id"] for line in lines)
    assert result.clients == dict(sent)
    assert _held(settings) == {}
    # A sample of a few clients' events: the profile it stored is thinner than one should be.
    thin = [r for r in caplog.records if "profile is a warm-up of" in r.getMessage()]
    assert thin and all(getattr(r, "model_id", None) == MODEL_ID for r in thin)


def test_a_warm_up_of_one_client_is_dead_lettered_and_the_consumer_goes_on(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """At most ``warmup_per_client`` events of a client enter a warm-up profile, so a sample
    of one client's events builds none: it holds on for more clients up to four times
    ``warmup_events``, then every event held, over several polls, is dead-lettered as
    ``no_profile`` with why, and the consumer goes on (it stopped once, on counting scored
    events as the step's events less the held ones it refused)."""
    detection = DetectionSettings(warmup_events=200, max_event_bytes=4096)
    settings = Settings(kafka=kafka_settings, database=migrated_database(tmp_path), detection=detection)
    lines = trace_lines()
    busiest = Counter(json.loads(line)["client_id"] for line in lines).most_common(1)[0][0]
    own = [line for line in lines if json.loads(line)["client_id"] == busiest][:850]
    ensure_topics(kafka_settings)
    processed = REGISTRY.get_sample_value("querywatch_events_processed_total")
    consumer = ThreadedConsumer(settings).start()
    database = make_engine(settings.database)
    try:
        produce(kafka_settings, own[:250])  # held: past warmup_events, but of one client
        wait_until_stored(database, kafka_settings)
        assert sum(len(held) for held in _held(settings).values()) == 250
        produce(kafka_settings, own[250:800])  # its last event fills four samples, which build no profile
        wait_until_stored(database, kafka_settings)
        produce(kafka_settings, own[800:])  # the next sample starts
        wait_until_stored(database, kafka_settings)
    finally:
        consumer.close()
    letters = read_topic(kafka_settings.bootstrap_servers, kafka_settings.dead_letter_topic)
    assert [dict(r.headers)["querywatch.reason"] for r in letters] == [b"no_profile"] * 800
    assert [json.loads(r.value)["request_id"] for r in letters] == [
        json.loads(line)["request_id"] for line in own[:800]
    ]
    with database.connect() as connection:
        details = connection.execute(select(DeadLetterRow.detail)).scalars().all()
    database.dispose()
    assert len(details) == 800 and "from 1 client, at most warmup_per_client=40" in details[0]
    assert sum(len(held) for held in _held(settings).values()) == 50
    assert REGISTRY.get_sample_value("querywatch_events_processed_total") == processed
