"""CLI conventions: one error line with a documented exit code, before any work; --json; settings files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from querywatch.detector.cli.commands import build_parser
from querywatch.detector.cli.output import JSON_SCHEMAS, schema_of
from querywatch.detector.errors import EXIT_INPUT, EXIT_RUNTIME, EXIT_USAGE

#: Modules that mean the engine (or its libraries) was imported.
HEAVY = ("querywatch.detector.engine", "sklearn", "river", "numba")
PROBE = f"""
import json, sys
from querywatch.detector.cli.commands import main
rc = main(sys.argv[1:])
heavy = sorted({{m if m.startswith("querywatch") else m.split(".")[0]
                for m in sys.modules if m.startswith({HEAVY!r})}})
print(json.dumps({{"rc": rc, "heavy": heavy}}))
"""


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUERYWATCH_")}
    env["QUERYWATCH_DATABASE__URL"] = f"sqlite:///{tmp_path / 'qw.db'}"
    return {**env, **extra}


def _probe(tmp_path: Path, *argv: str, **env: str) -> tuple[int, list[str], list[str]]:
    """Exit code, heavy modules loaded, and stderr lines of ``querywatch argv`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        env=_environment(tmp_path, **env),
        cwd=tmp_path,
        timeout=120,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["rc"], result["heavy"], out.stderr.strip().splitlines()


def _run(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "querywatch.detector.cli", *argv],
        capture_output=True,
        text=True,
        env=_environment(tmp_path, **env),
        cwd=tmp_path,
        timeout=300,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    "argv",
    [
        ("replay", "missing.jsonl", "--report", "out.json"),
        ("replay", "trace.jsonl", "--report", "no/such/folder/out.json"),
        ("simulate", "--out", "no/such/folder/trace.jsonl"),
        ("profile", "--input", "missing.npy", "--model-id", "m", "--out", "profiles"),
    ],
    ids=["replay-trace", "replay-report", "simulate-out", "profile-input"],
)
def test_a_bad_path_fails_in_one_line_before_the_engine_is_imported(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    (tmp_path / "trace.jsonl").write_text("{}\n")
    rc, heavy, stderr = _probe(tmp_path, *argv)
    assert rc == EXIT_INPUT
    assert heavy == []
    assert len(stderr) == 1 and stderr[0].startswith("querywatch: error: "), stderr


def test_standard_input_as_a_trace_is_said_to_be_no_file(tmp_path: Path) -> None:
    """``zcat t.gz | querywatch replay -`` said ``-: no such trace file``."""
    rc, heavy, stderr = _probe(tmp_path, "replay", "-", "--report", "out.json")
    assert (rc, heavy) == (EXIT_INPUT, [])
    assert len(stderr) == 1 and "not standard input" in stderr[0] and ".jsonl.gz" in stderr[0], stderr


@pytest.mark.parametrize("command", ["serve", "up"])
def test_a_busy_port_fails_in_one_line_with_a_hint(tmp_path: Path, busy_port: int, command: str) -> None:
    rc, heavy, stderr = _probe(tmp_path, command, "--port", str(busy_port))
    assert rc == EXIT_RUNTIME
    assert heavy == []
    assert len(stderr) == 1 and "in use" in stderr[0] and "--port" in stderr[0], stderr


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (("serve", "--port", "99999"), "argument --port: 99999 is not a port"),
        (("up", "--port", "-1"), "argument --port: -1 is not a port"),
        (("up", "--port", "http"), "argument --port: 'http' is not a whole number"),
        (("replay", "t.jsonl", "--report", "r.json", "--top", "-1"), "argument --top: -1 is not a count"),
        (("dead-letters", "redrive", "--limit", "-5"), "argument --limit: -5 is not a count"),
    ],
    ids=["serve-port", "up-port", "up-port-word", "replay-top", "redrive-limit"],
)
def test_a_number_out_of_range_is_a_usage_error_naming_the_option(
    argv: tuple[str, ...], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, ``serve --port 99999`` ended in an OverflowError from the socket and ``--top -1``
    printed all clients but one."""
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(argv)
    assert done.value.code == EXIT_USAGE
    assert said in capsys.readouterr().err


def test_an_invalid_setting_is_a_usage_error(tmp_path: Path) -> None:
    rc, heavy, stderr = _probe(tmp_path, "db", "current", QUERYWATCH_DETECTION__ALERT_RISK="7")
    assert rc == EXIT_USAGE
    assert heavy == []
    assert len(stderr) == 1 and "QUERYWATCH_DETECTION__ALERT_RISK" in stderr[0], stderr


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("QUERYWATCH_WEBHOOKS__ALLOW_HOSTS", "127.0.0.1", "'127.0.0.1' is not JSON"),  # was exit 1, unnamed
        ("QUERYWATCH_WEBHOOKS__RETRY_SCHEDULE", "[5, -1]", "every pause must be more than 0"),  # was taken
        ("QUERYWATCH_WEBHOOKS__PROXY_URL", "proxy:3128", "an egress proxy is a URL"),  # failed at a delivery
    ],
)
def test_a_webhook_setting_that_cannot_work_is_named(
    tmp_path: Path, name: str, value: str, said: str
) -> None:
    rc, _heavy, stderr = _probe(tmp_path, "db", "current", **{name: value})
    assert rc == EXIT_USAGE
    assert len(stderr) == 1 and f"{name}: " in stderr[0] and said in stderr[0], stderr


@pytest.mark.parametrize(
    ("variables", "named", "said"),
    [
        (
            {"QUERYWATCH_DETECTION__ALERT_RISK": "0.4"},
            "QUERYWATCH_DETECTION__CLEAR_RISK",
            "an alert would close",
        ),
        ({"QUERYWATCH_API__DEGRADE_RISK": "0.95"}, "QUERYWATCH_API__BLOCK_RISK", "it would degrade no one"),
    ],
)
def test_thresholds_that_contradict_each_other_are_refused(
    tmp_path: Path, variables: dict[str, str], named: str, said: str
) -> None:
    """Both were taken: alerts flapping open and shut, or a degrade level never reached."""
    rc, _heavy, stderr = _probe(tmp_path, "db", "current", **variables)
    assert rc == EXIT_USAGE
    assert len(stderr) == 1 and f"{named}: " in stderr[0] and said in stderr[0], stderr


def test_a_broker_address_that_cannot_be_one_is_a_usage_error_at_once(tmp_path: Path) -> None:
    """Before, a URL or a space in the list waited out a 30-second bootstrap, then failed."""
    (tmp_path / "trace.jsonl").write_text("{}\n")
    servers = "kafka-0:9092,https://kafka-1:9092"
    rc, _, stderr = _probe(tmp_path, "produce", "trace.jsonl", QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS=servers)
    assert rc == EXIT_USAGE
    assert len(stderr) == 1 and "'https://kafka-1:9092' is not host:port" in stderr[0], stderr


@pytest.mark.parametrize(
    ("url", "code", "said"),
    [
        ("mysql://root@127.0.0.1/qw", EXIT_USAGE, "stores its data in SQLite or PostgreSQL, not mysql"),
        (
            "sqlite:///no/such/folder/qw.db",
            EXIT_USAGE,
            "the SQLite file's folder no/such/folder does not exist",
        ),
        ("not a url", EXIT_USAGE, "database.url is not a database URL"),
        (
            "postgres://qw:secret@127.0.0.1:{port}/qw",
            EXIT_RUNTIME,
            "database postgresql://qw:***@127.0.0.1:{port}/qw: ",
        ),
        (  # libpq takes the password in the query too, which SQLAlchemy's hide_password left in clear
            "postgresql://127.0.0.1:{port}/qw?user=qw&password=secret",
            EXIT_RUNTIME,
            "database postgresql://127.0.0.1:{port}/qw?password=***&user=qw: ",
        ),
    ],
    ids=["mysql", "sqlite-folder", "not-a-url", "refused", "refused-password-in-query"],
)
def test_a_database_that_cannot_be_used_is_said_in_one_line(
    tmp_path: Path, url: str, code: int, said: str
) -> None:
    """Each ended in SQLAlchemy's own exception (NoSuchModuleError, OperationalError with a
    link to its docs, ArgumentError); ``postgres://`` is read as ``postgresql://``."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = closed.getsockname()[1]
        rc, _, stderr = _probe(tmp_path, "db", "current", QUERYWATCH_DATABASE__URL=url.format(port=port))
    assert rc == code
    assert len(stderr) == 1 and said.format(port=port) in stderr[0] and "secret" not in stderr[0], stderr


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (("dead-letters", "purge", "--older-than-days", "-3"), "-3 is not a number of days"),
        (("dead-letters", "redrive", "--reason", "not_jsn"), "--reason not_jsn: no such reason"),
    ],
    ids=["purge-negative", "redrive-unknown-reason"],
)
def test_a_dead_letter_option_that_would_do_harm_or_nothing_is_refused(
    tmp_path: Path, argv: tuple[str, ...], said: str
) -> None:
    """A negative age put the purge's cut-off in the future (every row deleted); an unknown
    reason matched no row and re-drove nothing, without a word."""
    done = _run(tmp_path, *argv, QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert done.returncode == EXIT_USAGE
    assert said in done.stderr, done.stderr


@pytest.mark.parametrize("action", ["purge", "redrive"])
def test_dead_letters_on_a_database_never_upgraded_say_to_upgrade_it(tmp_path: Path, action: str) -> None:
    """They failed on a missing table instead."""
    done = _run(tmp_path, "dead-letters", action, QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert done.returncode == EXIT_RUNTIME
    assert "querywatch db upgrade" in done.stderr and "no such table" not in done.stderr, done.stderr


def test_a_mistyped_variable_is_named_with_the_closest_setting(tmp_path: Path) -> None:
    rc, _heavy, stderr = _probe(tmp_path, "db", "current", QUERYWATCH_KAFKA_BOOTSTRAP_SERVERS="k:9092")
    assert rc == 0
    assert stderr == [
        "querywatch: warning: QUERYWATCH_KAFKA_BOOTSTRAP_SERVERS is not a setting and is ignored; "
        "did you mean QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS?"
    ]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    out = _run(tmp_path, "replay", "missing.jsonl", "--report", "r.json", "--debug")
    assert out.returncode == EXIT_INPUT
    assert "Traceback" in out.stderr and out.stderr.strip().splitlines()[-1].startswith("querywatch: error:")


def test_a_training_split_is_no_served_sample(tmp_path: Path) -> None:
    """Rows the model answered offline carry no client id: ``--served`` refuses them, by line."""
    rows = tmp_path / "train.jsonl"
    rows.write_text('{"input": [0.1, 0.2], "prediction": {"label": 1, "scores": [0.1, 0.9]}}\n')
    out = _run(tmp_path, "profile", "--input", str(rows), "--model-id", "m", "--out", "p", "--served")
    assert out.returncode == EXIT_INPUT
    assert "line 1: 'request_id', 'ts', 'client_id' and 'model_id' are required" in out.stderr
    assert "leave out --served" in out.stderr
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """``querywatch replay … | head``: the report is written, the summary stops at the closed
    pipe with 128 + SIGPIPE and no error line."""
    from querywatch.detector.errors import EXIT_BROKEN_PIPE
    from querywatch.detector.simulate.jsonl import write_jsonl
    from querywatch.detector.simulate.trace import generate_trace

    events, _ = generate_trace(3, benign=6, attackers=1, scale=0.1)
    write_jsonl(events, tmp_path / "trace.jsonl")
    read, write = os.pipe()
    os.close(read)  # no reader: the first write raises BrokenPipeError
    with os.fdopen(write, "w") as closed:
        done = subprocess.run(
            [sys.executable, "-m", "querywatch.detector.cli", "replay", "trace.jsonl", "--report", "r.json"],
            stdout=closed,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(tmp_path),
            cwd=tmp_path,
            timeout=300,
        )
    assert done.returncode == EXIT_BROKEN_PIPE
    # no error line; the seven clients' warm-up is warned of, before the summary
    assert "error" not in done.stderr and "profile is a warm-up" in done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["clients"]


def test_version(tmp_path: Path) -> None:
    out = _run(tmp_path, "--version")
    assert out.returncode == 0 and out.stdout.startswith("querywatch ")


def _json(out: subprocess.CompletedProcess[str], command: str) -> dict[str, object]:
    assert out.returncode == 0, out.stderr
    document = json.loads(out.stdout)
    assert document["schema"] == schema_of(command)
    return document


@pytest.mark.slow
def test_json_documents_of_every_command(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    simulated = _json(
        _run(
            tmp_path,
            "simulate",
            "--json",
            "--benign",
            "4",
            "--attackers",
            "1",
            "--hours",
            "1",
            "--scale",
            "0.3",
            "--out",
            str(trace),
            "--truth",
            str(tmp_path / "truth.json"),
        ),
        "simulate",
    )
    assert simulated["events"] == len(trace.read_text().splitlines())
    seen = {"simulate"}

    upgraded = _run(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    current = _json(_run(tmp_path, "db", "current", "--json"), "db")
    assert current["current"] is True
    seen.add("db")

    created = _json(_run(tmp_path, "apikey", "create", "--role", "reader", "--json"), "apikey")
    listed = _json(_run(tmp_path, "apikey", "list", "--json"), "apikey")
    assert [k["id"] for k in listed["keys"]] == [created["keys"][0]["id"]]  # type: ignore[index]
    seen.add("apikey")

    shown = _json(_run(tmp_path, "config", "show", "--json"), "config")
    sources = {row["variable"]: row["source"] for row in shown["settings"]}  # type: ignore[union-attr]
    assert sources["QUERYWATCH_DATABASE__URL"] == "environment"
    seen.add("config")

    purged = _json(_run(tmp_path, "dead-letters", "purge", "--json"), "dead-letters")
    assert purged["action"] == "purge" and purged["count"] == 0
    seen.add("dead-letters")

    doctor = _run(tmp_path, "doctor", "--json")
    assert json.loads(doctor.stdout)["schema"] == schema_of("doctor")
    seen.add("doctor")

    replayed = _json(
        _run(tmp_path, "replay", str(trace), "--report", str(tmp_path / "report.json"), "--json"), "replay"
    )
    assert replayed["events"] == simulated["events"]
    seen.add("replay")

    references = tmp_path / "refs.jsonl"
    references.write_text("".join(line + "\n" for line in trace.read_text().splitlines()[:400]))
    profile = _json(
        _run(
            tmp_path,
            "profile",
            "--input",
            str(references),
            "--model-id",
            "digits-v1",
            "--out",
            str(tmp_path / "profiles"),
            "--json",
        ),
        "profile",
    )
    assert profile["reference_size"] == 400
    # 400 digits (64 inputs, 64 cells) are too few: the 99.9th percentile alone wants 5,000.
    assert profile["required_reference_size"] == 5000 and profile["reference_large_enough"] is False
    # Not said to be served traffic: the answers' calibration waits for live events.
    assert profile["answers"] == "pending"
    # The events carry the model's labels: the extraction estimate is measured on the file's rows.
    assert profile["extraction_reference"] == "file"
    # What the file fixes is shown; what the live answers will fix is not yet.
    thresholds = profile["thresholds"]
    assert thresholds["far_threshold"] > thresholds["ood_threshold"] > 0
    assert thresholds["null_out_of_profile"] == max(0.2, thresholds["drift_share"])
    assert "margin_threshold" not in thresholds and "null_boundary" not in thresholds
    assert "null_confidence" not in thresholds
    # Said to be served traffic: profiled as a warm-up of those events, answers and all.
    served = _json(
        _run(
            tmp_path,
            "profile",
            *("--input", str(references), "--model-id", "digits-v1", "--out", str(tmp_path / "served")),
            *("--served", "--json"),
        ),
        "profile",
    )
    assert served["served"]["events"] == 400 and served["other_models_skipped"] == 0
    assert served["served"]["invalid_skipped"] == {}
    assert served["answers"] == "reference" and served["thresholds"]["margin_threshold"] > 0
    assert served["reference_size"] <= served["served"]["kept"] <= 40 * served["served"]["clients"]
    seen.add("profile")
    assert seen | {"produce"} == set(JSON_SCHEMAS)  # produce's document is tested with the broker


def test_config_file_is_below_the_environment_and_secret_files_work(tmp_path: Path) -> None:
    config = tmp_path / "querywatch.toml"
    config.write_text('log_level = "DEBUG"\n[kafka]\ntopic = "from-file"\nclient_id = "file-id"\n')
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://qw:s3cret@db.internal:5432/qw\n")
    env = _environment(
        tmp_path, QUERYWATCH_KAFKA__TOPIC="from-env", QUERYWATCH_DATABASE__URL_FILE=str(secret)
    )
    del env["QUERYWATCH_DATABASE__URL"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "querywatch.detector.cli",
            "--config",
            str(config),
            "config",
            "show",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    rows = {row["variable"]: row for row in _json(out, "config")["settings"]}  # type: ignore[union-attr]
    assert (rows["QUERYWATCH_LOG_LEVEL"]["value"], rows["QUERYWATCH_LOG_LEVEL"]["source"]) == (
        "DEBUG",
        f"config {config}",
    )
    assert rows["QUERYWATCH_KAFKA__TOPIC"]["value"] == "from-env"
    assert rows["QUERYWATCH_KAFKA__CLIENT_ID"]["value"] == "file-id"
    assert rows["QUERYWATCH_DATABASE__URL"] == {
        "variable": "QUERYWATCH_DATABASE__URL",
        "value": "postgresql://qw:***@db.internal:5432/qw",  # which database, not its password
        "source": f"file {secret}",
    }


def test_an_invalid_key_of_the_config_file_is_named_as_written_there(tmp_path: Path) -> None:
    """Before, the file's ``[detection] alert_rsk`` was reported as QUERYWATCH_DETECTION__ALERT_RSK,
    a variable nobody had set, with no word of the setting it meant."""
    config = tmp_path / "querywatch.toml"
    config.write_text('[detection]\nalert_rsk = 0.5\n[kafka]\ntopic = "t"\n')
    rc, _, stderr = _probe(tmp_path, "--config", str(config), "config", "show")
    assert rc == EXIT_USAGE
    assert len(stderr) == 1, stderr
    said = (
        f"detection.alert_rsk in {config}: Extra inputs are not permitted; did you mean detection.alert_risk?"
    )
    assert said in stderr[0]


def test_a_missing_config_file_is_an_input_error(tmp_path: Path) -> None:
    rc, _heavy, stderr = _probe(tmp_path, "--config", "nope.toml", "db", "current")
    assert rc == EXIT_INPUT
    assert len(stderr) == 1 and "nope.toml" in stderr[0]


def test_doctor_reports_an_unreachable_broker(tmp_path: Path, busy_port: int) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        out = _run(
            tmp_path,
            "doctor",
            "--json",
            "--timeout",
            "2",
            QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{port}",
        )
    assert out.returncode == EXIT_RUNTIME
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["kafka"]["ok"] is False
    assert checks["kafka"]["detail"].startswith(f"cannot reach Kafka at 127.0.0.1:{port}: ")
    assert checks["database"]["ok"] is False and "db upgrade" in checks["database"]["hint"]


def _stderr_on_a_terminal(tmp_path: Path, *argv: str) -> str:
    """What ``querywatch argv`` writes to stderr when stderr is a terminal (a pseudo-terminal)."""
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "querywatch.detector.cli", *argv],
            stdout=subprocess.DEVNULL,
            stderr=follower,
            env=_environment(tmp_path),
            cwd=tmp_path,
            timeout=300,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert done.returncode == 0
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_progress_shows_on_a_terminal_reaches_its_end_and_keeps_quiet_when_asked(tmp_path: Path) -> None:
    from querywatch.detector.simulate import generate_trace, write_jsonl

    events, _truth = generate_trace(3, benign=3, attackers=1, scale=0.05)
    write_jsonl(events, tmp_path / "t.jsonl")
    shown = _stderr_on_a_terminal(tmp_path, "replay", "t.jsonl", "--report", "r.json")
    assert "replay" in shown and "100%" in shown
    assert _stderr_on_a_terminal(tmp_path, "replay", "t.jsonl", "--report", "r.json", "--quiet") == ""
    assert _stderr_on_a_terminal(tmp_path, "replay", "t.jsonl", "--report", "r.json", "--json") == ""
