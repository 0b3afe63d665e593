"""What replay and simulate write: never over their inputs or each other, whole or not at all,
gzip'd when the name says so; and an HTML page whose data no client id can break out of."""

from __future__ import annotations

import errno
import gzip
import html
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from querywatch.detector.adapters.ui.report import render_report
from querywatch.detector.cli.commands import main
from querywatch.detector.errors import EXIT_INPUT, EXIT_USAGE, InputError
from querywatch.detector.pipeline.replay import ClientReport, ReplayReport, write_report
from querywatch.detector.simulate.jsonl import write_jsonl

EVENT = {"request_id": "r1", "ts": 0, "client_id": "c", "model_id": "m", "input": [0.5, 0.5]}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding a one-event trace, with no ``QUERYWATCH_*`` setting in the way."""
    for name in [n for n in os.environ if n.startswith("QUERYWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trace.jsonl").write_text(json.dumps(EVENT) + "\n")
    (tmp_path / "report.json").write_text("previous report\n")
    (tmp_path / "linked.jsonl").symlink_to("trace.jsonl")
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ("replay", "trace.jsonl", "--report", "trace.jsonl"),
        ("replay", "trace.jsonl", "--report", "linked.jsonl"),
        ("replay", "trace.jsonl", "--report", "report.json", "--html", "./report.json"),
        ("replay", "trace.jsonl", "--report", "new.json", "--html", "new.json"),
        ("simulate", "--out", "trace.jsonl", "--truth", "linked.jsonl"),
        ("simulate", "--out", "new.jsonl", "--truth", "new.jsonl"),
    ],
    ids=["report-is-trace", "report-links-to-trace", "html-is-report", "both-new", "truth-is-out", "out-new"],
)
def test_an_output_that_is_an_input_or_another_output_is_refused_before_any_work(
    folder: Path, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """``replay same.jsonl --report same.jsonl`` replaced the trace with its report."""
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main(list(argv)) == EXIT_INPUT
    stderr = capsys.readouterr().err.strip().splitlines()
    assert len(stderr) == 1 and re.match(r"querywatch: error: \S+: is also the ", stderr[0]), stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_profile_file_given_as_the_profile_folder_is_said_to_be_no_folder(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "trace.jsonl", "--report", "out.json", "--profile", "report.json"]) == EXIT_INPUT
    assert "querywatch: error: report.json: is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "x"])
@pytest.mark.parametrize("option", ["--scale", "--hours"])
def test_a_simulated_size_that_is_no_positive_number_is_a_usage_error(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``simulate --scale inf`` ended in an OverflowError, exit 1."""
    with pytest.raises(SystemExit) as stopped:
        main(["simulate", option, value, "--out", "t.jsonl"])
    assert stopped.value.code == EXIT_USAGE
    assert f"argument {option}: " in capsys.readouterr().err


def test_a_report_that_cannot_be_written_leaves_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk half-way through used to leave truncated JSON in place of the last report,
    and a bare ``OSError`` that named no file."""

    def half_then_full(self: ReplayReport, out: object) -> None:
        out.write('{"clients": [')  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    target = tmp_path / "report.json"
    target.write_text("previous report\n")
    monkeypatch.setattr(ReplayReport, "write", half_then_full)
    with pytest.raises(InputError) as failed:
        write_report(ReplayReport(), target)
    assert str(failed.value) == f"{target}: cannot be written: [Errno 28] No space left on device"
    assert failed.value.exit_code == EXIT_INPUT
    assert target.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


#: ``write_truth`` of a large truth, its error as the command line prints it.
TRUTH = """
from querywatch.detector.errors import InputError
from querywatch.detector.simulate.jsonl import write_truth
try:
    write_truth({f"acct-{n}": {"role": "benign", "family": "ordinary"} for n in range(1000)}, "truth.json")
except InputError as exc:
    raise SystemExit(f"querywatch: error: {exc}")
"""


def _limited(max_bytes: int, folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python argv`` in ``folder`` under ``ulimit -f`` (files of at most ``max_bytes``)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    env = {k: v for k, v in os.environ.items() if not k.startswith("QUERYWATCH_")}
    # Compiled code is cached afresh, under the limit too: a cache that cannot be written
    # (a full disk, a file-size limit) must not fail the command (``features.jit``).
    env["NUMBA_CACHE_DIR"] = str(folder / "numba-cache")
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        preexec_fn=limit,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("argv", "target", "limit"),
    [
        (("simulate", "--benign", "3", "--attackers", "0", "--scale", "0.05", "--out", "t.jsonl"), "t.jsonl",
         1_500),
        (("replay", "trace.jsonl", "--report", "report.json", "--html", "page.html"), "page.html", 20_000),
    ],
    ids=["simulate-out", "replay-html"],
)  # fmt: skip
def test_an_output_past_the_file_size_limit_is_named_and_the_old_one_kept(
    tmp_path: Path, argv: tuple[str, ...], target: str, limit: int
) -> None:
    """Under ``ulimit -f`` the trace or the page (uPlot is inline: tens of KB) is cut short:
    the command says which file, exits 3, and the previous file is as it was."""
    (tmp_path / "trace.jsonl").write_text(json.dumps(EVENT) + "\n")
    (tmp_path / target).write_text("previous\n")
    done = _limited(limit, tmp_path, "-m", "querywatch.detector.cli", *argv)
    assert done.returncode == EXIT_INPUT, done.stderr
    assert done.stderr.strip() == f"querywatch: error: {target}: cannot be written: [Errno 27] File too large"
    assert (tmp_path / target).read_text() == "previous\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_truth_past_the_file_size_limit_is_named_and_the_old_one_kept(tmp_path: Path) -> None:
    (tmp_path / "truth.json").write_text("previous\n")
    done = _limited(4_000, tmp_path, "-c", TRUTH)
    assert (
        done.stderr.strip() == "querywatch: error: truth.json: cannot be written: [Errno 27] File too large"
    )
    assert (tmp_path / "truth.json").read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["truth.json"]


def test_a_trace_named_gz_is_written_gzipd_and_the_same_bytes_every_time(tmp_path: Path) -> None:
    """``simulate --out t.jsonl.gz`` wrote plain text, which replay refused as no gzip."""
    events = [EVENT, {**EVENT, "request_id": "r2"}]
    write_jsonl(events, tmp_path / "t.jsonl")
    assert write_jsonl(events, tmp_path / "t.jsonl.gz") == 2
    packed = (tmp_path / "t.jsonl.gz").read_bytes()
    assert gzip.decompress(packed) == (tmp_path / "t.jsonl").read_bytes()
    write_jsonl(events, tmp_path / "again.jsonl.gz")
    assert (tmp_path / "again.jsonl.gz").read_bytes() == packed


def test_a_client_id_cannot_break_out_of_the_pages_data() -> None:
    """Escaping only ``</`` let ``<!--<script>`` in a client id run the data element past its
    end tag: the page showed nothing."""
    ids = ["<!--<script>", "</script><img src=x onerror=alert(1)>", "a&amp;b>", "plain"]
    report = ReplayReport(events=len(ids))
    for n, client_id in enumerate(ids):
        report.clients[client_id] = ClientReport(client_id, queries=1, risk=n / 10, reasons=("<!--",))
    page = render_report(report, top=10, alert_risk=0.5, title="t")
    found = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page, re.S)
    assert found is not None
    data = found.group(1)
    assert not set("<>&") & set(data)
    parsed = json.loads(data)
    assert {c["client_id"] for c in parsed["table"]} == set(ids)
    assert {c["client_id"] for c in parsed["charts"]} == set(ids)


def test_the_html_report_says_what_the_inputs_held_as_the_summary_does() -> None:
    """Answers without scores and inputs with missing values: the terminal's summary said them,
    the HTML report did not."""
    quiet = render_report(ReplayReport(events=10), top=10, alert_risk=0.5, title="t")
    assert "without scores" not in quiet and "missing values" not in quiet
    report = ReplayReport(events=10, unscored=4, gapped=3)
    page = render_report(report, top=10, alert_risk=0.5, title="t")
    for note in report.input_notes():
        assert html.escape(note) in page
    assert "answers without scores: 4 of 10" in page and "inputs with missing values: 3 of 10" in page
