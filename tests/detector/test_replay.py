"""Offline replay end to end: a generated trace through `querywatch replay`."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from querywatch.detector.adapters.kafka.producer import trace_lines
from querywatch.detector.errors import EXIT_INPUT
from querywatch.detector.pipeline.replay import ClientReport, ReplayReport, write_report
from querywatch.detector.simulate.jsonl import write_jsonl
from querywatch.detector.simulate.trace import generate_trace


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    events, truth = generate_trace(5, benign=40, attackers=5, scale=0.5)
    path = tmp_path_factory.mktemp("replay") / "trace.jsonl"
    write_jsonl(events, path)
    return path, truth


def _replay(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "querywatch.detector.cli", "replay", *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_replay_flags_every_attacker_and_no_benign_client(
    trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    path, truth = trace
    report_path = tmp_path / "report.json"
    done = _replay(path, "--report", report_path)
    assert done.returncode == 0, done.stderr
    report = {c["client_id"]: c for c in json.loads(report_path.read_text())["clients"]}
    attackers = {c for c, t in truth.items() if t["role"] == "attack"}
    flagged = {c for c, r in report.items() if r["first_alert_query"] is not None}
    assert flagged == attackers
    for client in attackers:
        assert report[client]["risk"] >= 0.8 and report[client]["reasons"]
    assert max(r["risk"] for c, r in report.items() if c not in attackers) < 0.5
    assert "clients alerted" in done.stdout
    # 45 clients' first events: a thinner warm-up than a profile needs, and said so
    assert "warning: digits-v1's profile is a warm-up of " in done.stderr
    assert "from at least 50 clients" in done.stderr


def test_replay_is_deterministic(trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path) -> None:
    path, _ = trace
    reports = []
    for name in ("a.json", "b.json"):
        assert _replay(path, "--report", tmp_path / name).returncode == 0
        reports.append((tmp_path / name).read_text())
    assert reports[0] == reports[1]


def test_malformed_lines_and_duplicates_are_counted_not_fatal(
    trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    path, _ = trace
    lines = path.read_text().splitlines()
    salted = tmp_path / "salted.jsonl"
    # A client whose every event is refused (infinite inputs a lenient server clips).
    padded = [
        json.dumps({**json.loads(lines[i]), "client_id": "inf-only", "input": [math.inf] * 3})
        for i in range(3)
    ]
    salted.write_text(
        "\n".join([*lines[:50], "not json", lines[10], '{"request_id": 1}', *padded, *lines[50:]]) + "\n"
    )
    report_path = tmp_path / "report.json"
    done = _replay(salted, "--report", report_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["rejected"] == {"not_json": 1, "missing_field": 1, "non_finite": 3}
    assert [(r["line"], r["reason"]) for r in report["rejected_lines"]] == [
        (51, "not_json"),
        (53, "missing_field"),
        (54, "non_finite"),
        (55, "non_finite"),
        (56, "non_finite"),
    ]
    assert report["rejected_clients"] == [
        {"client_id": "inf-only", "rejected": 3, "reasons": {"non_finite": 3}}
    ]
    assert "inf-only" not in {c["client_id"] for c in report["clients"]}
    assert "sent by 1 named client (most: inf-only 3;" in done.stdout
    assert report["duplicates"] == 1
    assert report["events"] == len(lines)
    missing = "'ts', 'client_id', 'model_id' and 'input' are required"
    assert f"first missing_field: line 53: {missing}" in done.stdout
    assert "first not_json: line 51: " in done.stdout


def test_a_missing_trace_is_a_clear_error(tmp_path: Path) -> None:
    done = _replay(tmp_path / "nope.jsonl", "--report", tmp_path / "r.json")
    assert done.returncode == EXIT_INPUT
    assert "no such trace file" in done.stderr


def test_profile_command_builds_a_profile_replay_can_use(
    trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    path, truth = trace
    benign = [
        line
        for line in path.read_text().splitlines()
        if truth[json.loads(line)["client_id"]]["role"] == "benign"
    ]
    refs = tmp_path / "refs.jsonl"
    refs.write_text("\n".join(benign[:3000]) + "\n")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "querywatch.detector.cli",
            "profile",
            "--input",
            str(refs),
            "--model-id",
            "digits-v1",
            "--out",
            str(tmp_path / "profiles"),
            "--served",  # the file is served traffic: its answers calibrate the boundary at once
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    report_path = tmp_path / "report.json"
    done = _replay(path, "--report", report_path, "--profile", tmp_path / "profiles")
    assert done.returncode == 0
    # 40 benign clients' served events: thin, and said so, without advising the --profile given
    assert "profile is a warm-up of" in done.stderr and "then replay --profile DIR" not in done.stderr
    report = json.loads(report_path.read_text())
    attackers = {c for c, t in truth.items() if t["role"] == "attack"}
    assert {c["client_id"] for c in report["clients"] if c["first_alert_query"]} >= attackers - {
        c for c, t in truth.items() if t["family"] == "active_uncertainty"
    }


def test_a_profile_of_another_dimension_is_refused(tmp_path: Path) -> None:
    import numpy as np

    np.save(tmp_path / "refs.npy", np.random.default_rng(0).normal(size=(500, 8)))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "querywatch.detector.cli",
            "profile",
            "--input",
            str(tmp_path / "refs.npy"),
            "--model-id",
            "m",
            "--out",
            str(tmp_path / "p"),
            "--json",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # Inputs only: the answer-derived parts wait for live events, which are held until then
    # and so checked against the profile's dimension as they arrive.
    assert '"answers": "pending"' in built.stdout.decode()
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        json.dumps({"request_id": "r", "ts": 0, "client_id": "c", "model_id": "m", "input": [1.0] * 9}) + "\n"
    )
    report_path = tmp_path / "report.json"
    assert _replay(trace, "--report", report_path, "--profile", tmp_path / "p").returncode == 0
    assert json.loads(report_path.read_text())["rejected"] == {"wrong_dimension": 1}


def _profile(path: Path, out: Path) -> str:
    command = ["profile", "--input", str(path), "--model-id", "m", "--out", str(out)]
    built = subprocess.run(
        [sys.executable, "-m", "querywatch.detector.cli", *command],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return built.stdout


def test_profile_says_where_the_extraction_estimate_is_measured(tmp_path: Path) -> None:
    """A file without the model's labels leaves the estimate's validation set to live events,
    whose clients may favour some classes; the command says so, and what would fix it."""
    import numpy as np

    X = np.random.default_rng(0).normal(size=(600, 6))
    np.save(tmp_path / "inputs.npy", X)
    said = _profile(tmp_path / "inputs.npy", tmp_path / "p1")
    assert "the file has no answers" in said  # inputs only: the answers wait for live events
    assert "extraction estimate: measured on the model's first live events" in said
    assert "the file has no labels" in said and "prediction.label" in said
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text(
        "".join(
            json.dumps({"input": row.tolist(), "prediction": {"label": int(row[0] > 0)}}) + "\n" for row in X
        )
    )
    assert "extraction estimate" not in _profile(labelled, tmp_path / "p2")


def test_profile_says_when_the_far_threshold_rests_on_one_stray_input(tmp_path: Path) -> None:
    """One row of a trusted file at three times its values sets the far threshold at twice
    its score, which hides a diluted uniform-random thief; the command names the score and
    the next one (JSON: ``far_threshold_rests_on``), and says nothing of a clean file."""
    import numpy as np

    from querywatch.detector.simulate.traffic import noisy
    from querywatch.detector.simulate.victim import load_tabular_victim

    victim, rng = load_tabular_victim(), np.random.default_rng(0)
    X = victim.serve(noisy(rng, victim.natural, rng.uniform(0.01, 0.08, size=len(victim.natural)))).inputs
    np.save(tmp_path / "clean.npy", X)
    assert "rests on one input" not in _profile(tmp_path / "clean.npy", tmp_path / "p1")
    np.save(tmp_path / "stray.npy", np.concatenate([X, victim.serve(3.0 * victim.natural[:1]).inputs]))
    said = _profile(tmp_path / "stray.npy", tmp_path / "p2")
    assert "the far threshold rests on one input" in said and "remove it" in said
    stray = str(tmp_path / "stray.npy")
    command = ["profile", "--input", stray, "--model-id", "m", "--out", str(tmp_path / "p3")]
    built = subprocess.run(
        [sys.executable, "-m", "querywatch.detector.cli", *command, "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rests = json.loads(built.stdout)["far_threshold_rests_on"]
    assert rests["highest"] > 2 * rests["next"]


def test_report_rows_carry_an_extraction_estimate(
    trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    """Heavy natural users have learned more of the model than random-input thieves."""
    path, truth = trace
    report_path = tmp_path / "report.json"
    assert _replay(path, "--report", report_path).returncode == 0
    estimate = {c["client_id"]: c["extraction"] for c in json.loads(report_path.read_text())["clients"]}
    assert set(estimate) == set(truth) and all(0.0 <= v <= 1.0 for v in estimate.values())
    random = [estimate[c] for c, t in truth.items() if t["family"] == "random"]
    heavy = [estimate[c] for c, t in truth.items() if t["family"] == "heavy"]
    assert random and heavy and max(random) < min(heavy)


def test_client_alerts_carry_the_extraction_estimate(
    trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    """An alert's ``extraction`` (what webhooks, SIEM formats and the decision at alert time
    read) is its client's estimate as of the event, not null beside it in ``features``."""
    path, _ = trace
    report_path = tmp_path / "report.json"
    assert _replay(path, "--report", report_path).returncode == 0
    alerts = [a for a in json.loads(report_path.read_text())["alerts"] if a["kind"] == "client"]
    assert alerts and all(a["extraction"] == a["features"]["extraction"] for a in alerts)
    assert all(0.0 <= a["extraction"] <= 1.0 for a in alerts)


def test_the_report_is_written_one_client_at_a_time_as_json_dumps_would(tmp_path: Path) -> None:
    report = ReplayReport(events=7, duplicates=1)
    assert _written(report, tmp_path) == json.dumps(report.to_json(), indent=1) + "\n"
    for client_id, risk, extraction in (
        ("b", 0.5, None),
        ("a", 0.5, 0.25),
        ("c", 0.9, 0.5),
        ("d", 0.0, None),
    ):
        report.clients[client_id] = ClientReport(
            client_id, queries=3, risk=risk, reasons=('say "é"\n', "two"), extraction=extraction
        )
    report.rejected["bad_json"] = 2
    report.rejected_lines.append((4, "bad_json", "line\n4"))
    written = _written(report, tmp_path)
    assert written == json.dumps(report.to_json(), indent=1) + "\n"
    assert [c["client_id"] for c in json.loads(written)["clients"]] == ["c", "a", "b", "d"]


def _written(report: ReplayReport, tmp_path: Path) -> str:
    write_report(report, tmp_path / "report.json")
    return (tmp_path / "report.json").read_text()


def test_a_gzip_trace_replays_as_the_plain_one(
    trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    """Logs are kept compressed: ``trace.jsonl.gz`` gives the very report ``trace.jsonl``
    does, ``querywatch produce`` sends the same lines; a ``.gz`` that is no gzip is an input
    error before any work, and one cut short an input error with no report."""
    path, _ = trace
    packed = tmp_path / "trace.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert _replay(path, "--report", tmp_path / "plain.json").returncode == 0
    assert _replay(packed, "--report", tmp_path / "packed.json").returncode == 0
    assert (tmp_path / "packed.json").read_text() == (tmp_path / "plain.json").read_text()
    assert list(trace_lines(packed)) == list(trace_lines(path))  # what `querywatch produce` sends
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_bytes(path.read_bytes()[:1000])
    refused = _replay(fake, "--report", tmp_path / "fake.json")
    assert refused.returncode == EXIT_INPUT and "not a gzipped file" in refused.stderr.lower()
    assert not (tmp_path / "fake.json").exists()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    refused = _replay(cut, "--report", tmp_path / "cut.json")
    assert refused.returncode == EXIT_INPUT and "cut short" in refused.stderr
    assert not (tmp_path / "cut.json").exists()


def test_answers_without_scores_are_counted_and_named(
    trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    """Scores logged under a name querywatch does not read (``score``, a top-1 probability)
    leave every answer unscored: the summary says so, where a trace with ``scores`` says
    nothing."""
    path, _ = trace
    renamed = tmp_path / "renamed.jsonl"
    with path.open() as src, renamed.open("w") as out:
        for line in src:
            event = json.loads(line)
            prediction = event.pop("prediction")
            event["prediction"] = {"label": prediction["label"], "score": max(prediction["scores"])}
            out.write(json.dumps(event) + "\n")
    events = sum(1 for _ in path.open())
    for trace_path, unscored in ((path, 0), (renamed, events)):
        report_path = tmp_path / f"{trace_path.stem}.json"
        done = _replay(trace_path, "--report", report_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(report_path.read_text())["answers_without_scores"] == unscored
        said = f"answers without scores: {unscored} of {events}"
        assert (said in done.stdout) == bool(unscored)


def test_inputs_with_missing_values_are_scored_counted_and_named(
    trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    """A model that reads NaN as missing logs its gaps as null: every such event is scored
    (the warm-up's too), counted in the report, and the summary names how many."""
    path, _ = trace
    holed = tmp_path / "holed.jsonl"
    gaps = 0
    with path.open() as src, holed.open("w") as out:
        for number, line in enumerate(src):
            event = json.loads(line)
            if number % 3 == 0:
                event["input"][number % len(event["input"])] = None
                gaps += 1
            out.write(json.dumps(event) + "\n")
    report_path = tmp_path / "holed-report.json"
    done = _replay(holed, "--report", report_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    events = sum(1 for _ in path.open())
    assert (report["inputs_with_missing_values"], report["events"], report["rejected"]) == (gaps, events, {})
    assert f"inputs with missing values: {gaps} of {events}" in done.stdout


def test_a_replay_leaves_the_profile_directory_as_it_was(
    trace: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    """A trusted file without answers is completed from the trace's first events in memory
    only: written back, it would calibrate the next replay on this trace's answers."""
    path, truth = trace
    inputs = [
        json.dumps({"input": json.loads(line)["input"]})
        for line in path.read_text().splitlines()[:6000]
        if truth[json.loads(line)["client_id"]]["role"] == "benign"
    ]
    refs = tmp_path / "refs.jsonl"
    refs.write_text("\n".join(inputs[:3000]) + "\n")
    assert '"answers": "pending"' in _profile_json(refs, tmp_path / "p", "digits-v1")
    written = (tmp_path / "p" / "digits-v1.qwprofile").read_bytes()
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert _replay(path, "--report", first, "--profile", tmp_path / "p").returncode == 0
    assert (tmp_path / "p" / "digits-v1.qwprofile").read_bytes() == written
    assert _replay(path, "--report", second, "--profile", tmp_path / "p").returncode == 0
    assert json.loads(first.read_text())["clients"] == json.loads(second.read_text())["clients"]


def _profile_json(path: Path, out: Path, model_id: str) -> str:
    command = ["profile", "--input", str(path), "--model-id", model_id, "--out", str(out), "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "querywatch.detector.cli", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
