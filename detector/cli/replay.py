"""``querywatch replay`` and ``querywatch profile``.

The engine (scikit-learn, river, numba) is imported when a command runs, not when the
parser is built, so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from querywatch.detector.cli.checks import (
    count,
    distinct_outputs,
    readable_file,
    readable_lines,
    writable_file,
    writable_folder,
)
from querywatch.detector.cli.output import add_output_options, print_json, progress_bar
from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import Settings
from querywatch.detector.errors import InputError
from querywatch.detector.pipeline.lines import content_size, open_lines

if TYPE_CHECKING:
    from querywatch.detector.pipeline.replay import ReplayReport


def register(sub: Any) -> None:
    p = add_command(sub, "replay", summary="replay a JSONL trace offline and write a per-client report")
    p.add_argument("trace", type=Path, help="JSON Lines file of inference-log events (gzip'd: .gz)")
    p.add_argument("--report", type=Path, required=True, help="where to write the JSON report")
    p.add_argument(
        "--profile",
        type=Path,
        help="profile directory (default: QUERYWATCH_DETECTION__PROFILE_DIR; else built from warm-up)",
    )
    p.add_argument("--top", type=count, default=15, help="clients shown in the summary table")
    p.add_argument(
        "--html",
        type=Path,
        metavar="PAGE.html",
        help="also write a self-contained page with the top clients' risk charts (no network needed)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (same as --quiet)")
    add_output_options(p, progress=True)
    p.set_defaults(run=run_replay)

    q = add_command(sub, "profile", summary="build a model's reference profile from trusted inputs")
    q.add_argument(
        "--input", type=Path, required=True, help="reference inputs: .npy, .csv, .jsonl or .jsonl.gz"
    )
    q.add_argument("--model-id", required=True)
    q.add_argument("--out", type=Path, required=True, help="profile directory")
    q.add_argument(
        "--served",
        action="store_true",
        help="the file is a sample of served traffic: logged events (JSON Lines, client ids "
        "included), profiled as a warm-up is, answers and all; without it the answers are taken "
        "from the model's first live events, since a model answers its training data unlike what "
        "clients send",
    )
    add_output_options(q)
    q.set_defaults(run=run_profile)


#: Risk points kept per client for ``--html`` (memory: about 100 bytes each, per client).
HTML_POINTS = 96


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    trace = readable_lines(args.trace, "trace file")
    writable_file(args.report, "report")
    if args.html is not None:
        writable_file(args.html, "HTML page")
    distinct_outputs([(args.report, "report"), (args.html, "HTML page")], [(trace, "trace file")])
    profile_dir = args.profile or settings.detection.profile_dir
    if profile_dir is not None:
        profile_folder(Path(profile_dir))
    args.quiet = args.quiet or args.no_progress

    from querywatch.detector.adapters.files import DirectoryProfileStore
    from querywatch.detector.engine.detector import Detector
    from querywatch.detector.engine.profiles import MemoryProfileStore, thin_warmup
    from querywatch.detector.pipeline.outputs import written_whole
    from querywatch.detector.pipeline.replay import replay, write_report
    from querywatch.detector.runtime import engine_process

    store = MemoryProfileStore(source=DirectoryProfileStore(profile_dir) if profile_dir is not None else None)
    engine = Detector(settings.detection, store, settings.alerts, settings.residency)
    stage = None
    if settings.campaigns.enabled:
        from querywatch.detector.engine.campaigns.stage import CampaignStage
        from querywatch.detector.engine.summaries import SummaryRule

        engine.summary_rule = SummaryRule(settings.campaigns.summary_every_seconds)
        engine.key_salt = settings.campaigns.key_salt
        stage = CampaignStage(settings.detection, store, settings.campaigns, settings.alerts)
    size = content_size(trace)
    with open_lines(trace) as f:
        head = f.read(1 << 16)
    avg_line = len(head) / max(head.count(b"\n"), 1)
    started = time.monotonic()
    try:
        with engine_process(), progress_bar(args, total=size, unit="B", description="replay") as bar:
            report = replay(
                trace,
                engine,
                progress=lambda n: bar.update(int(n * avg_line)),
                inputs=settings.inputs,
                stream=settings.stream,
                history_points=HTML_POINTS if args.html is not None else 0,
                campaigns=stage,
            )
    except gzip.BadGzipFile as exc:  # a gzip'd trace cut short (pipeline.lines)
        raise InputError(f"{trace}: {exc}; no report written") from None
    write_report(report, args.report)
    for model_id in engine.models_in_use():
        profile = engine.profile_in_use(model_id)
        if profile is not None and (warning := thin_warmup(profile)):
            then = "" if profile_dir is not None else "; then replay --profile DIR"
            print(f"querywatch: warning: {warning}{then}", file=sys.stderr)
    for warning in engine.unknown_classes().values():
        print(f"querywatch: warning: {warning}", file=sys.stderr)
    if args.html is not None:
        from querywatch.detector.adapters.ui.report import render_report

        title = f"querywatch replay of {trace.name}"
        page = render_report(report, top=args.top, alert_risk=settings.detection.alert_risk, title=title)
        with written_whole(args.html) as f:
            f.write(page)
    seconds = time.monotonic() - started
    if args.json:
        print_json(
            "replay",
            {**summary_document(report, args.top), "seconds": round(seconds, 3), "report": str(args.report)},
        )
    else:
        print_summary(report, seconds, args.top)
    return 0


def profile_folder(path: Path) -> Path:
    """``path`` if it is a folder of profiles: a file there is no missing folder, and said so."""
    if not path.exists():
        raise InputError(f"{path}: no such profile directory")
    if not path.is_dir():
        raise InputError(
            f"{path}: is not a directory; --profile takes the folder of `querywatch profile --out`"
        )
    return path


def summary_document(report: ReplayReport, top: int) -> dict[str, Any]:
    """The ``--json`` summary: counts and the ``top`` clients by risk (the report has them all)."""
    clients = report.ranked()
    return {
        "events": report.events,
        "clients": len(clients),
        "alerted": sum(1 for c in clients if c.first_alert_query is not None),
        "duplicates": report.duplicates,
        "answers_without_scores": report.unscored,
        "inputs_with_missing_values": report.gapped,
        "rejected": dict(sorted(report.rejected.items())),
        "rejected_clients": len(report.refused_clients),
        "top": [
            {
                "client_id": c.client_id,
                "queries": c.queries,
                "risk": round(c.risk, 4),
                "first_alert_query": c.first_alert_query,
                "reasons": list(c.reasons[:3]),
            }
            for c in clients[:top]
        ],
    }


def first_rejected_of_each_reason(report: ReplayReport) -> list[tuple[int, str, str]]:
    """One example line per reason, so that a wrong field name is fixed from the terminal;
    taken from the report's ``rejected_lines`` (the first thousand invalid lines)."""
    first: dict[str, tuple[int, str, str]] = {}
    for line, reason, detail in report.rejected_lines:
        first.setdefault(reason, (line, reason, detail))
    return sorted(first.values())


def print_invalid(counts: Mapping[str, int], firsts: Iterable[tuple[int, str, str]]) -> None:
    """Invalid lines by reason, then the first (line, reason, detail) of each: what replay's
    summary and ``profile --served`` say of the lines they skipped."""
    print("invalid events by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for line, reason, detail in sorted(firsts):
        print(f"  first {reason}: line {line}: {detail}")


def print_summary(report: ReplayReport, seconds: float, top: int) -> None:
    clients = report.ranked()
    alerted = sum(1 for c in clients if c.first_alert_query is not None)
    print(
        f"{report.events} events from {len(clients)} clients in {seconds:.1f}s "
        f"({report.events / max(seconds, 1e-9):,.0f} events/s); {alerted} clients alerted; "
        f"{report.duplicates} duplicates dropped; {sum(report.rejected.values())} invalid"
    )
    if report.rejected:
        print_invalid(report.rejected, first_rejected_of_each_reason(report))
        if report.refused_clients:
            who, most = report.refused_senders(3, lambda c: c[:24])
            print(f"  sent by {who} (most: {most}; all in the report's rejected_clients)")
    for note in report.input_notes():
        print(note)
    print(f"{'client':<24} {'queries':>8} {'risk':>6} {'alert@':>7}  reason")
    for c in clients[:top]:
        first = "-" if c.first_alert_query is None else str(c.first_alert_query)
        reason = c.reasons[0] if c.reasons else ""
        print(f"{c.client_id[:24]:<24} {c.queries:>8} {c.risk:>6.3f} {first:>7}  {reason[:90]}")


def run_profile(args: argparse.Namespace, settings: Settings) -> int:
    readable_file(args.input, "reference file")
    writable_folder(args.out, "profile directory")

    import numpy as np

    from querywatch.detector.adapters.files import (
        DirectoryProfileStore,
        read_reference_file,
        read_served_events,
    )
    from querywatch.detector.engine.profiles import build_profile, derived_thresholds, profile_from_warmup
    from querywatch.models.calibration import lone_extreme

    served = None
    if args.served:  # a warm-up taken offline: capped per client, odd clients trimmed
        sample = read_served_events(
            args.input,
            args.model_id,
            settings.detection,
            max_dim=settings.inputs.max_input_dim,
            project=settings.inputs.oversized_inputs == "project",
            logits=settings.inputs.scores == "logits",
        )
        events, other_models = sample.events, sample.other_models
        X = np.array([e.input for e in events])
        served = {
            "events": sample.read,
            "kept": len(events),
            "clients": len({e.client_id for e in events}),
            "invalid_skipped": dict(sample.invalid),
        }
        labelled = any(e.label is not None or e.scores is not None for e in events)
        scored = any(e.scores is not None for e in events)
        profile = profile_from_warmup(events, settings.detection)
    else:
        rows = read_reference_file(args.input, args.model_id, logits=settings.inputs.scores == "logits")
        X, other_models = rows.inputs, rows.other_models
        labelled, scored = rows.labels is not None, rows.scores is not None
        profile = build_profile(
            X,
            model_id=args.model_id,
            settings=settings.detection,
            labels=rows.labels,
            scores=rows.scores,
            live_answers=True,
        )
    DirectoryProfileStore(args.out).put(profile)
    needed = profile.required_size()
    enough = profile.reference_size >= needed
    thresholds = derived_thresholds(profile)
    cal = profile.calibration
    lone = None
    if cal is not None:
        lone = lone_extreme(profile.view(X).ood_score, profile.ood_threshold, cal.drift_share)
    if args.json:
        print_json(
            "profile",
            {
                "model_id": args.model_id,
                "version": profile.version,
                "reference_size": profile.reference_size,
                "dim": profile.dim,
                "cells": profile.cells,
                "ood_threshold": profile.ood_threshold,
                "required_reference_size": needed,
                "reference_large_enough": enough,
                "answers": profile.answers,
                "extraction_reference": "file" if profile.extraction is not None else "live",
                "thresholds": thresholds,
                "far_threshold_rests_on": None if lone is None else {"highest": lone[0], "next": lone[1]},
                "other_models_skipped": other_models,
                "served": None if served is None else served | {"left_out": list(profile.left_out)},
                "out": str(args.out),
            },
        )
        return 0
    print(
        f"profile of {args.model_id!r} version {profile.version}: {profile.reference_size} inputs, "
        f"dim {profile.dim}, {profile.cells} cells, out-of-profile threshold {profile.ood_threshold:.3f} "
        f"-> {args.out}"
    )
    if other_models:
        print(f"{other_models} lines of other models skipped (their model_id is not {args.model_id!r})")
    if served is not None:
        print(
            f"served sample: {served['events']} events of {served['clients']} clients, {served['kept']} kept "
            f"(at most {settings.detection.warmup_per_client} a client, as in a warm-up); clients left "
            f"out as odd: {', '.join(profile.left_out) or 'none'}"
        )
        if sample.invalid:
            print(f"{sample.invalid.total()} lines that are no valid event skipped")
            print_invalid(sample.invalid, ((n, r, d) for r, (n, d) in sample.first_invalid.items()))
    verdict = "large enough" if enough else "too small"
    advice = (
        f"; a sample of more clients would ({settings.detection.warmup_per_client} events a client count)"
        if served is not None
        else "; until then a warm-up from live traffic may describe the model better"
    )
    print(
        f"reference of {profile.reference_size} inputs is {verdict} for a {profile.dim}-input model with "
        f"{profile.cells} cells: it needs at least {needed} (30 per cell, 20 per input, 5 beyond the "
        "out-of-profile threshold)" + ("" if enough else advice)
    )
    print(
        "derived from the reference (GET /v1/models shows the same): "
        + ", ".join(f"{name} {value:.4g}" for name, value in thresholds.items())
    )
    if lone is not None:
        print(
            "the far threshold rests on one input: the file's highest out-of-profile score is "
            f"{lone[0]:.3g}, the next {lone[1]:.3g}, and the far test would call that input synthetic; "
            "if it is a stray record (a sentinel, a unit error), remove it: until then queries up to "
            "the far threshold are not far"
        )
    if profile.answers == "pending":
        print(
            f"answers: taken from the model's first {settings.detection.warmup_events} live events "
            "(held until then): "
            + (
                "the file's answers describe the model on these inputs, not on what clients send "
                "(--served takes a sample of served traffic instead: logged events, answers and all)"
                if served is None and scored
                else "the file has no answers, or answers too saturated to show the decision boundary"
            )
        )
    if profile.extraction is None:
        why = "the file has no labels" if not labelled else "the file's labels are too few, or of one class"
        print(
            "extraction estimate: measured on the model's first live events nearest the file's inputs "
            f"({why}); the model's own predicted labels in the file (prediction.label) "
            "measure it on the file's rows"
        )
    return 0
