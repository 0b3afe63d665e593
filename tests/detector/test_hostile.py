"""Hostile single events: each is dead-lettered with its reason, and nothing else is touched."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from querywatch.detector.config import DetectionSettings, InputSettings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import _BAD_CHARS, MAX_TS, MIN_TS, REASONS, Event, parse_event
from querywatch.detector.engine.guard import EventGuard, StreamClock
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.errors import InvalidEvent
from querywatch.detector.pipeline.replay import ReplayReport, iter_batches, replay
from querywatch.detector.simulate.jsonl import write_jsonl
from querywatch.detector.simulate.trace import generate_trace
from tests.hostile.cases import SUITE_MAX_BYTES, SUITE_MAX_DIM, cases


def _event(**changes: object) -> bytes:
    base = {"request_id": "r", "ts": 1e9, "client_id": "c", "model_id": "m", "input": [0.0, 1.0]}
    return json.dumps({**base, **changes}).encode()


@pytest.mark.parametrize("case", cases("m", 2, 1e9, 2), ids=lambda c: c.name)
def test_each_hostile_event_parses_to_its_reason_or_to_an_event_the_stream_judges(case) -> None:
    try:
        event = parse_event(case.raw, max_bytes=SUITE_MAX_BYTES, max_dim=SUITE_MAX_DIM)
    except InvalidEvent as exc:
        assert exc.reason == case.reason and exc.reason in REASONS
        return
    # Only the stream can tell these: a future time, a width the model does not answer with.
    assert case.reason in {"future_timestamp", "bad_scores"}
    assert MIN_TS <= event.ts <= MAX_TS


def test_an_input_past_the_cap_is_projected_by_default_and_the_same_way_every_time() -> None:
    huge = b'{"request_id":"r","ts":0,"client_id":"c","model_id":"m","input":[' + b"0," * 498_999 + b"1]}"
    assert len(huge) < 1_000_000  # within the default byte limit: the dimension cap is what bounds it
    a = parse_event(huge, max_dim=4096, project=True)
    b = parse_event(huge, max_dim=4096, project=True)
    assert a.input.shape == (4096,) and np.array_equal(a.input, b.input) and abs(a.input).sum() == 1.0
    with pytest.raises(InvalidEvent, match="too_many_inputs"):
        parse_event(huge, max_dim=4096)


def test_the_projection_keeps_distances_roughly() -> None:
    from querywatch.detector.engine.events import project_input

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 20_000))
    ratio = np.linalg.norm(project_input(x, 1024) - project_input(y, 1024)) / np.linalg.norm(x - y)
    assert 0.8 < ratio < 1.2


def _evt(n: int, ts: float, client: str) -> Event:
    return Event(f"r{n}", ts, client, "m", np.zeros(2))


def test_a_far_future_event_is_dead_lettered_and_moves_no_clock() -> None:
    clock = StreamClock(margin=3600)
    assert clock.judge([_evt(i, 1000.0 + i, f"c{i % 5}") for i in range(50)]) == []
    before = (clock.watermark, clock.now)
    rejected = clock.judge([_evt(99, 4.1e9, "thief")])
    assert [e.reason for _, e in rejected] == ["future_timestamp"]
    assert (clock.watermark, clock.now) == before


def test_clamp_mode_scores_the_event_at_the_margin() -> None:
    clock = StreamClock(margin=60, clamp=True)
    clock.judge([_evt(i, 1000.0, f"c{i}") for i in range(3)])
    late = _evt(9, 5e9, "thief")
    assert clock.judge([late]) == [] and late.ts == 1060.0


def test_one_client_stepping_forward_moves_its_own_clock_not_the_eviction_time() -> None:
    clock = StreamClock(margin=3600)
    clock.judge([_evt(i, 1000.0, f"c{i}") for i in range(10)])
    steps = [_evt(100 + k, 1000.0 + 3000 * k, "thief") for k in range(1, 200)]
    assert clock.judge(steps) == []  # each within the margin of the last
    assert clock.now == 1000.0  # idle clients are still judged against everyone's time


def test_a_gap_in_old_logs_is_followed_once_several_clients_are_past_it() -> None:
    clock = StreamClock(margin=3600)
    clock.judge([_evt(i, 1000.0 + i, f"c{i % 6}") for i in range(60)])
    later = [_evt(200 + i, 90_000.0 + i, f"c{i % 6}") for i in range(30)]
    rejected = clock.judge(later)
    assert len(rejected) == 2  # the first two clients past the gap; the third shows the stream moved
    assert clock.watermark is not None and clock.watermark >= 90_000.0


def test_a_model_answering_with_another_width_is_dead_lettered() -> None:
    guard = EventGuard(margin=3600)
    two = Event("a", 1.0, "c", "m", np.zeros(2), None, np.array([0.5, 0.5]))
    three = Event("b", 1.0, "c", "m", np.zeros(2), None, np.array([0.2, 0.3, 0.5]))
    kept, rejected = guard.judge("p0", [two, three])
    assert kept == [two] and [e.reason for _, e in rejected] == ["bad_scores"]


def test_one_malformed_answer_first_does_not_refuse_every_answer_after_it() -> None:
    """The model's width is what most of its answers had: a stream that opens with one
    two-score answer of a three-class model refuses one true answer (the second, while the
    two widths tie), then keeps the three-score ones and refuses the stray ones; a long run
    of true answers is not overturned by two strays in a row."""
    guard = EventGuard(margin=3600)

    def answer(i: int, width: int) -> Event:
        return Event(f"r{i}", 1.0, "c", "m", np.zeros(2), None, np.full(width, 1.0 / width))

    stream = [
        answer(0, 2),
        *(answer(i, 3) for i in range(1, 50)),
        answer(50, 2),
        answer(51, 2),
        answer(52, 3),
    ]
    kept, rejected = guard.judge("p0", stream)
    assert [e.request_id for e, _ in rejected] == ["r1", "r50", "r51"]
    assert kept[0].request_id == "r0" and len(kept) == len(stream) - 3


def test_a_model_seen_once_is_dead_lettered_at_the_end_of_a_replay_not_a_traceback(tmp_path: Path) -> None:
    engine = Detector(DetectionSettings(), MemoryProfileStore())
    engine.process_batch([_evt(1, 1.0, "c")])
    result = engine.flush_warmup()
    assert [e.reason for _, e in result.rejected] == ["no_profile"]


def test_a_huge_line_is_read_through_not_held(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a":1}\n' + b"x" * 5_000_000 + b"\n" + b'{"b":2}\n')
    items = [item for batch in iter_batches(path, max_line=1000) for item in batch]
    assert items == [(1, b'{"a":1}\n'), (2, 5_000_001), (3, b'{"b":2}\n')]


# -- fuzzing: hostile values in every field -----------------------------------------------

_any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
_numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**30), 10**30)
_hostile = {
    "request_id": _any_text,
    "client_id": _any_text | st.just("a\x00b"),
    "model_id": _any_text,
    "ts": _numbers | _any_text | st.sampled_from(["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]),
    "input": st.lists(_numbers, max_size=80),
    "prediction": st.fixed_dictionaries(
        {}, optional={"label": st.integers() | _any_text, "scores": st.lists(_numbers, max_size=5)}
    ),
}


@given(st.fixed_dictionaries({}, optional=_hostile), st.booleans())
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzzed_events_parse_or_get_a_documented_rejection(fields: dict[str, object], project: bool) -> None:
    raw = json.dumps(fields).encode()
    try:
        event = parse_event(raw, max_dim=SUITE_MAX_DIM, project=project)
    except InvalidEvent as exc:
        assert exc.reason in REASONS
        return
    assert MIN_TS <= event.ts <= MAX_TS
    for name in (event.request_id, event.client_id, event.model_id):
        assert 0 < len(name) <= 256 and _BAD_CHARS.search(name) is None
        name.encode("utf-8")  # storable as text in PostgreSQL
    assert 0 < event.input.size <= SUITE_MAX_DIM and np.isfinite(event.input).all()
    if event.scores is not None:
        assert event.scores.min() >= 0 and math.isclose(event.scores.sum(), 1.0, abs_tol=0.01)


# -- the suite through replay -----------------------------------------------------------------


def _trace(tmp: Path) -> tuple[Path, list[bytes]]:
    events, _ = generate_trace(7, benign=8, attackers=2, scale=0.2)
    path = tmp / "clean.jsonl"
    write_jsonl(events, path)
    return path, path.read_bytes().splitlines()


@pytest.mark.parametrize("malformed", ["input", "scores"])
def test_a_stream_opening_with_one_event_of_another_width_scores_the_rest(
    tmp_path: Path, malformed: str
) -> None:
    """One event of another input or score width opening a model's stream: a model's width
    is what most of its events have, so one event is refused and every other is scored
    (until 2026-12-04 the first event fixed the width and every event after it was refused)."""
    clean_path, lines = _trace(tmp_path)
    first = json.loads(lines[0])
    opening = {**first, "request_id": "opening"}
    if malformed == "input":
        opening["input"] = first["input"][:3]
    else:
        opening["prediction"] = {"scores": [0.5, 0.5]}
    path = tmp_path / "opened.jsonl"
    path.write_bytes(json.dumps(opening).encode() + b"\n" + b"\n".join(lines) + b"\n")
    clean = replay(clean_path, Detector(DetectionSettings(), MemoryProfileStore()))
    opened = replay(path, Detector(DetectionSettings(), MemoryProfileStore()))
    reason = "wrong_dimension" if malformed == "input" else "bad_scores"
    assert dict(opened.rejected) == {reason: 1}
    assert sum(c.queries for c in opened.clients.values()) == sum(c.queries for c in clean.clients.values())


def test_a_model_that_logs_logits_is_read_through_a_softmax_when_told(tmp_path: Path) -> None:
    """Raw class scores are refused as bad_scores by default, with the setting to use; with
    ``inputs.scores = "logits"`` the same trace is read as its probabilities are."""
    clean_path, lines = _trace(tmp_path)
    logged = []
    for line in lines:
        event = json.loads(line)
        scores = event.get("prediction", {}).get("scores")
        if scores:
            event["prediction"]["scores"] = [math.log(max(p, 1e-9)) + 3.0 for p in scores]
        logged.append(json.dumps(event).encode())
    path = tmp_path / "logits.jsonl"
    path.write_bytes(b"\n".join(logged) + b"\n")
    refused = replay(path, Detector(DetectionSettings(), MemoryProfileStore()))
    assert refused.rejected["bad_scores"] > 0 and "INPUTS__SCORES=logits" in refused.rejected_lines[0][2]
    clean = replay(clean_path, Detector(DetectionSettings(), MemoryProfileStore()))
    logits = InputSettings(scores="logits")
    read = replay(path, Detector(DetectionSettings(), MemoryProfileStore()), inputs=logits)
    assert not read.rejected and _counts(read) == _counts(clean) and _alerts(read) == _alerts(clean)
    assert read.alerts and {c: round(r.risk, 3) for c, r in read.clients.items()} == {
        c: round(r.risk, 3) for c, r in clean.clients.items()
    }


def test_the_hostile_suite_through_replay_dead_letters_each_case_and_keeps_the_rest(tmp_path: Path) -> None:
    clean_path, lines = _trace(tmp_path)
    inputs = InputSettings(max_input_dim=SUITE_MAX_DIM, oversized_inputs="reject")
    detection = DetectionSettings(max_event_bytes=SUITE_MAX_BYTES)
    clean = replay(clean_path, Detector(detection, MemoryProfileStore()), inputs=inputs)
    assert not clean.rejected
    middle = json.loads(lines[len(lines) // 2])
    ts = parse_event(lines[len(lines) // 2]).ts
    suite = cases(middle["model_id"], len(middle["input"]), ts, len(middle["prediction"]["scores"]))
    mixed = lines[: len(lines) // 2] + [c.raw for c in suite] + lines[len(lines) // 2 :]
    hostile_path = tmp_path / "hostile.jsonl"
    hostile_path.write_bytes(b"\n".join(mixed) + b"\n")
    report = replay(hostile_path, Detector(detection, MemoryProfileStore()), inputs=inputs)
    first = len(lines) // 2 + 1
    got = {line: reason for line, reason, _ in report.rejected_lines}
    assert got == {first + i: c.reason for i, c in enumerate(suite)}
    assert {c for c in report.clients if c.startswith("hostile")} == set()
    assert _counts(report) == _counts(clean) and _alerts(report) == _alerts(clean)


def _counts(report: ReplayReport) -> dict[str, int]:
    return {c: r.queries for c, r in report.clients.items()}


def _alerts(report: ReplayReport) -> list[tuple[str, int]]:
    return [(a.client_id, a.queries) for a in report.alerts.values()]


def test_a_newcomer_far_ahead_of_a_one_client_stream_is_refused_but_that_client_moving_on_is_not() -> None:
    clock = StreamClock(margin=3600)
    clock.judge([_evt(i, 1000.0 + i, "only") for i in range(20)])
    assert [e.reason for _, e in clock.judge([_evt(50, 4e9, "newcomer")])] == ["future_timestamp"]
    assert clock.judge([_evt(51, 90_000.0, "only")]) == []  # the one client came back after a gap


def test_a_flood_of_hostile_events_logs_one_line_per_reason_and_minute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from querywatch.detector.adapters.kafka import deadletters
    from querywatch.detector.logging import LogLimiter
    from querywatch.detector.metrics import EVENTS_REJECTED

    now = [0.0]
    monkeypatch.setattr(deadletters, "_LOG_LIMIT", LogLimiter(60, clock=lambda: now[0]))
    before = EVENTS_REJECTED.labels(reason="bad_identifier")._value.get()
    error = InvalidEvent("bad_identifier", "'client_id' holds U+0000\nFAKE: forged line")
    with caplog.at_level("WARNING", logger=deadletters.__name__):
        for offset in range(500):
            deadletters.reject(
                topic="t",
                partition=0,
                offset=offset,
                raw=b"x",
                key=None,
                error=error,
                client_id=None,
                model_id=None,
            )
        now[0] = 61.0
        deadletters.reject(
            topic="t", partition=0, offset=500, raw=b"x", key=None, error=error, client_id=None, model_id=None
        )
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "499 more bad_identifier" in lines[1]
    assert all("\n" not in line for line in lines)  # the detail is quoted: no forged log lines
    assert EVENTS_REJECTED.labels(reason="bad_identifier")._value.get() - before == 501
