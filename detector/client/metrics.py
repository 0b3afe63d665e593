"""The client's counters as Prometheus metrics: dropped events above all.

``render`` writes the text exposition format with the standard library alone (serve it at
your model server's ``/metrics``); ``register_prometheus`` adds the same series to a
``prometheus_client`` registry for servers that already export one. No series is labelled
by client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .decisions import DecisionClient
from .emitter import Emitter
from .guard import Guard

Sample = tuple[str, str, str, dict[str, str], float]  # (name, type, help, labels, value)


def samples(
    *, emitter: Emitter | None = None, decisions: DecisionClient | None = None, guard: Guard | None = None
) -> Iterator[Sample]:
    """Every sample of the given sources."""
    if emitter is not None:
        stats = emitter.stats()
        events = "querywatch_client_events_total"
        yield (
            events,
            "counter",
            "Events accepted into the buffer / handed to the sink.",
            {"outcome": "accepted"},
            stats["accepted"],
        )
        yield events, "counter", "", {"outcome": "sent"}, stats["sent"]
        for reason, count in stats["dropped"].items():
            yield (
                "querywatch_client_events_dropped_total",
                "counter",
                "Events lost, by reason.",
                {"reason": reason},
                count,
            )
        yield (
            "querywatch_client_events_pending",
            "gauge",
            "Events waiting in the buffer.",
            {},
            stats["pending"],
        )
        yield (
            "querywatch_client_sink_connected",
            "gauge",
            "1 while the sink is open.",
            {},
            float(stats["connected"]),
        )
    if decisions is not None:
        for result, count in decisions.counts.items():
            yield (
                "querywatch_client_decisions_total",
                "counter",
                "Decision look-ups by result.",
                {"result": result},
                count,
            )
    if guard is not None:
        for outcome, count in guard.counts.items():
            yield (
                "querywatch_client_requests_total",
                "counter",
                "Guarded requests by outcome.",
                {"outcome": outcome},
                count,
            )


def render(**sources: Any) -> str:
    """Prometheus text format (version 0.0.4) of ``samples(**sources)``.

    >>> from querywatch.detector.client.decisions import DecisionClient
    >>> print(render(decisions=DecisionClient("http://127.0.0.1:9", "k")).splitlines()[2])
    querywatch_client_decisions_total{result="hit"} 0
    """
    lines: list[str] = []
    described: set[str] = set()
    for name, kind, text, labels, value in samples(**sources):
        if name not in described:
            described.add(name)
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
    return "\n".join(lines) + "\n"


def register_prometheus(registry: Any = None, **sources: Any) -> Any:
    """Add the samples to a ``prometheus_client`` registry (default: its global one), read at
    each scrape; returns the collector. Needs ``prometheus_client`` installed."""
    from prometheus_client import REGISTRY
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self) -> Iterator[Any]:
            families: dict[str, Any] = {}
            for name, kind, text, labels, value in samples(**sources):
                if name not in families:
                    family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                    base = name.removesuffix("_total") if kind == "counter" else name
                    families[name] = family(base, text or name, labels=list(labels))
                families[name].add_metric(list(labels.values()), value)
            yield from families.values()

    collector = Collector()
    (registry or REGISTRY).register(collector)
    return collector
