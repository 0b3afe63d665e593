"""Event parsing: every bad input is one InvalidEvent reason, never a crash."""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from querywatch.detector.engine import events
from querywatch.detector.engine.events import REASONS, RequestIdFilter, parse_event
from querywatch.detector.errors import InvalidEvent

GOOD = {
    "request_id": "r",
    "ts": "2026-11-29T10:15:02.113Z",
    "client_id": "c",
    "model_id": "m",
    "input": [0.0, 1.5],
    "prediction": {"label": 7, "scores": [0.2, 0.8]},
    "meta": {"ip": "x"},
}


def _with(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def test_a_good_event_parses_with_time_in_epoch_seconds() -> None:
    e = parse_event(json.dumps(GOOD).encode())
    assert e.ts == pytest.approx(1795947302.113)
    assert e.label == 7 and e.scores is not None and e.scores.tolist() == [0.2, 0.8]
    assert parse_event(_with(ts=12.5)).ts == 12.5


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not_utf8"),
        (b"{nope", "not_json"),
        (b"[1, 2]", "not_object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "input"}).encode(), "missing_field"),
        (_with(client_id=5.5), "wrong_type"),
        (_with(input=["a"]), "wrong_type"),
        (_with(input=[True, 1.0]), "wrong_type"),
        (b'{"request_id":"r","ts":0,"client_id":"c","model_id":"m","input":[Infinity]}', "non_finite"),
        (b'{"request_id":"r","ts":NaN,"client_id":"c","model_id":"m","input":[1]}', "non_finite"),
        (_with(prediction={"scores": [0.5, float("nan")]}), "non_finite"),
        (b'{"request_id":"r","ts":0,"client_id":"c","model_id":"m","input":[1e999]}', "non_finite"),
        # finite, but its squared distances overflow: one such warm-up event broke the profile
        (b'{"request_id":"r","ts":0,"client_id":"c","model_id":"m","input":[0.1,-1e300]}', "non_finite"),
        (_with(ts="yesterday"), "bad_timestamp"),
        (_with(ts="2026-11-29T10:15:02"), "bad_timestamp"),
        (_with(input=[]), "empty_input"),
        (_with(prediction={"label": [1]}), "wrong_type"),
        (b"x" * 2000, "oversized"),
    ],
)
def test_each_kind_of_bad_event_has_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw, max_bytes=1500)
    assert info.value.reason == reason and reason in REASONS


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        # A record cut short (a truncated write, a line of a file), its newline and all.
        (json.dumps(GOOD).encode()[:-9] + b"\n", "where the record ends, after"),
        (
            b'{"request_id": "r", "ts": 0,, "client_id": "c"}',
            "Expecting property name enclosed in double quotes at character 29 of 47",
        ),
    ],
)
def test_a_record_that_is_no_json_says_where_in_its_own_characters(raw: bytes, says: str) -> None:
    """Not "line 2 column 1": a one-line record's newline is no line of it."""
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw)
    assert info.value.reason == "not_json" and says in info.value.detail
    assert "line" not in info.value.detail


@pytest.mark.parametrize(
    ("input_", "says"),
    [
        ([[0.1, 0.2], [0.3, 0.4]], "flatten an image or a tensor"),
        ([0.1, True], "send a flag as the number the model reads (1 or 0)"),
        ([0.1, "red"], "send a category as the number the model reads"),
        ({"age": 31}, "not an object: send the fields' values in one fixed order"),
    ],
)
def test_an_input_sent_nested_or_as_flags_or_text_is_told_what_to_send(input_: object, says: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(_with(input=input_))
    assert info.value.reason == "wrong_type" and says in info.value.detail
    with pytest.raises(InvalidEvent) as scores:  # scores hold no missing values to fill
        parse_event(_with(prediction={"scores": [0.5, None]}))
    assert scores.value.detail == "'prediction.scores' must be an array of numbers"
    with pytest.raises(InvalidEvent) as named:  # scores by class name
        parse_event(_with(prediction={"scores": {"cat": 0.8, "dog": 0.2}}))
    assert "not an object: send the probabilities in one fixed order" in named.value.detail


def test_a_missing_input_value_sent_as_null_or_nan_is_read_as_missing() -> None:
    # A tree model reads NaN as missing and answers such inputs, so they are watched, not
    # refused; the profile reads them (``ReferenceProfile.filled``). Infinity stays refused.
    for raw in (_with(input=[0.5, None, 2.0]), _with(input=[0.5, float("nan"), 2.0])):
        e = parse_event(raw)
        assert e.input[0] == 0.5 and np.isnan(e.input[1]) and e.input[2] == 2.0
    assert np.isnan(parse_event(_with(input=[None, None])).input).all()
    assert events._extract(_with(input=[0.5, None])) is not None  # null keeps the fast path
    with pytest.raises(InvalidEvent, match="-Infinity is not a finite number"):
        parse_event(_with(input=[0.5, float("-inf")]))
    with pytest.raises(InvalidEvent, match="'input' holds infinity"):
        parse_event({**GOOD, "input": [0.5, float("inf")]})


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_raise_anything_but_invalid_event(raw: bytes) -> None:
    try:
        parse_event(raw)
    except InvalidEvent as exc:
        assert exc.reason in REASONS


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(sorted(GOOD)), json_values))
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_objects_never_raise_anything_but_invalid_event(obj: dict[str, object]) -> None:
    try:
        parse_event(json.dumps({**GOOD, **obj}).encode())
    except InvalidEvent as exc:
        assert exc.reason in REASONS


def _outcome(parse: object) -> object:
    """What a parse gave, comparable: the event's fields, or the rejection's reason."""
    try:
        e = parse()  # type: ignore[operator]
    except InvalidEvent as exc:
        return exc.reason
    scores = None if e.scores is None else e.scores.tolist()
    features = [None if np.isnan(value) else value for value in e.input.tolist()]  # NaN != NaN
    return (e.request_id, e.ts, e.client_id, e.model_id, features, e.label, scores)


@given(
    st.dictionaries(st.sampled_from(sorted(GOOD)), json_values), st.sampled_from(["input", "scores", None])
)
@settings(max_examples=500, deadline=None)
def test_the_fast_path_agrees_with_the_exact_validation(obj: dict[str, object], nest: str | None) -> None:
    event = {**GOOD, **obj}
    if nest == "input":
        event["input"] = [[0.5], [1.0]]  # a nested array, which simdjson's buffers would flatten
    elif nest == "scores":
        event["prediction"] = {"label": 1, "scores": [[0.5, 0.5]]}
    raw = json.dumps(event).encode()
    fast = _outcome(lambda: parse_event(raw))
    with mock.patch.object(events, "_extract", return_value=None):  # the exact path alone
        assert fast == _outcome(lambda: parse_event(raw))


def test_request_id_filter_state_round_trip() -> None:
    f = RequestIdFilter(capacity=3)
    for r in "abcd":
        f.is_new(r)
    g = RequestIdFilter.from_state(f.state(), capacity=3)
    assert not g.is_new("d") and g.is_new("a")


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"ip": "192.0.2.1", "user_agent": "ua/1", "org": "acme"}, ("192.0.2.1", "ua/1", "acme")),
        ({"account_owner": "acme", "latency_ms": 3}, (None, None, "acme")),
        ({"org": "", "account_owner": "acme"}, (None, None, "acme")),
        ({"ip": 7}, (None, None, None)),
        ({}, (None, None, None)),
    ],
)
def test_sources_are_read_alike_by_the_fast_and_the_exact_path(
    meta: dict[str, object], expected: tuple[str | None, ...]
) -> None:
    event = {"request_id": "r", "ts": 1.0, "client_id": "c", "model_id": "m", "input": [1.0], "meta": meta}
    raw = json.dumps(event).encode()
    fast = events._parse_common(raw)
    exact = parse_event(event)
    assert fast is not None
    assert (fast.ip, fast.user_agent, fast.org) == (exact.ip, exact.user_agent, exact.org) == expected


def test_logits_are_read_through_a_softmax_on_either_path() -> None:
    logged = {**GOOD, "prediction": {"label": 1, "scores": [-1.0, 0.386294, 5.0]}}
    for raw in (json.dumps(logged).encode(), logged):  # the fast path reads bytes, the exact one a mapping
        e = parse_event(raw, logits=True)
        assert e.scores is not None and abs(e.scores.sum() - 1.0) < 1e-12
        assert e.scores.argmax() == 2 and e.scores[1] / e.scores[0] == pytest.approx(4.0, rel=1e-5)
        with pytest.raises(InvalidEvent, match="QUERYWATCH_INPUTS__SCORES=logits"):
            parse_event(raw)
    extreme = parse_event(_with(prediction={"scores": [1e308, -1e308]}), logits=True)
    assert extreme.scores is not None and extreme.scores.tolist() == [1.0, 0.0]


def test_a_label_logged_as_a_whole_float_or_a_boolean_is_that_integer() -> None:
    e = parse_event(_with(prediction={"label": 3.0, "scores": [0.2, 0.8]}))
    assert e.label == 3 and type(e.label) is int
    for flag in (True, False):  # a yes/no model's answer, on the fast path's fallback too
        e = parse_event(_with(prediction={"label": flag, "scores": [0.2, 0.8]}))
        assert e.label == int(flag) and type(e.label) is int
    with pytest.raises(InvalidEvent) as real:  # a regression model's output
        parse_event(_with(prediction={"label": 0.5}))
    assert "a string, not 0.5" in real.value.detail and "without 'prediction'" in real.value.detail


@pytest.mark.parametrize(
    ("ts", "unit"), [(1.7e12, "milliseconds"), (1.7e15, "microseconds"), (1.7e18, "nanoseconds")]
)
def test_an_epoch_time_in_a_finer_unit_is_named(ts: float, unit: str) -> None:
    with pytest.raises(InvalidEvent, match=f"epoch {unit}\\? send seconds") as info:
        parse_event(_with(ts=ts))
    assert info.value.reason == "bad_timestamp"


def test_one_score_is_a_two_class_answer_on_either_path() -> None:
    logged = {**GOOD, "prediction": {"label": 1, "scores": [0.75]}}
    bare = {**GOOD, "prediction": {"label": 1, "scores": 0.75}}  # not in an array
    for raw in (json.dumps(logged).encode(), logged, json.dumps(bare).encode()):  # fast path: bytes
        e = parse_event(raw)
        assert e.scores is not None and e.scores.tolist() == [0.25, 0.75]
        logit = parse_event(raw, logits=True)
        assert logit.scores is not None and logit.scores[1] == pytest.approx(1.0 / (1.0 + np.exp(-0.75)))
    with pytest.raises(InvalidEvent) as beyond:
        parse_event(_with(prediction={"label": 1, "scores": [1.5]}))
    assert beyond.value.reason == "bad_scores" and "QUERYWATCH_INPUTS__SCORES=logits" in beyond.value.detail
    assert "must lie in [0, 1]; got 1.5" in beyond.value.detail


def test_numeric_ids_read_as_their_digits_and_quoted_numbers_are_named() -> None:
    with mock.patch.object(events, "_decode", side_effect=AssertionError("the fast path reads them")):
        fast = parse_event(_with(client_id=42, request_id=12345))
    exact = parse_event({**GOOD, "client_id": 42, "request_id": 12345})
    assert (fast.client_id, fast.request_id) == (exact.client_id, exact.request_id) == ("42", "12345")
    with pytest.raises(InvalidEvent, match="'client_id' must be a non-empty string"):
        parse_event(_with(client_id=True))
    with pytest.raises(InvalidEvent) as quoted:
        parse_event(_with(input=[0.5, "2.5"]))
    assert quoted.value.detail.endswith("not numbers in quotes (at 1: '2.5'): send them unquoted")
    with pytest.raises(InvalidEvent) as epoch:
        parse_event(_with(ts="1733390000"))
    assert epoch.value.detail == "'ts' '1733390000' is not RFC 3339: epoch seconds go unquoted, as a number"


def test_scores_that_are_no_probabilities_say_which_rule_they_break() -> None:
    """A negative score among scores summing to one was said as "got a sum of 1"."""
    with pytest.raises(InvalidEvent) as negative:
        parse_event(_with(prediction={"label": 1, "scores": [-0.5, 0.75, 0.75]}))
    assert negative.value.reason == "bad_scores" and "score 0 is -0.5" in negative.value.detail
    with pytest.raises(InvalidEvent) as unsummed:
        parse_event(_with(prediction={"label": 1, "scores": [0.5, 0.75]}))
    assert "got a sum of 1.25" in unsummed.value.detail
