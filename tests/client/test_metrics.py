"""The client's counters reach Prometheus: as text from the standard library, or through prometheus_client."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from querywatch.detector.client import Emitter, build_events, register_prometheus, render
from tests.client.test_emitter import _rows, _Unreachable


def _dropping_emitter() -> Emitter:
    emitter = Emitter(_Unreachable(), capacity=10, retry_seconds=(0.01,))
    emitter.emit(build_events(request_id="r", ts=1.0, client_id="c", model_id="m", rows=_rows(25)))
    return emitter


def test_dropped_events_are_a_prometheus_counter_by_reason() -> None:
    emitter = _dropping_emitter()
    text = render(emitter=emitter)
    emitter.close()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("querywatch_client_events_dropped_total", (("reason", "buffer_full"),))] == 15
    assert samples[("querywatch_client_events_total", (("outcome", "accepted"),))] == 10
    assert samples[("querywatch_client_sink_connected", ())] == 0


def test_the_same_series_in_a_prometheus_client_registry() -> None:
    emitter = _dropping_emitter()
    registry = CollectorRegistry()
    register_prometheus(registry, emitter=emitter)
    scraped = generate_latest(registry).decode()
    emitter.close()
    assert 'querywatch_client_events_dropped_total{reason="buffer_full"} 15.0' in scraped
