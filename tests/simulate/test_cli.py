"""``querywatch simulate`` end to end: into files, and into a real (embedded) broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
from querywatch.detector.cli import main
from querywatch.detector.cli.simulate import HARD_DEFAULT, VICTIM_NAMES
from querywatch.detector.errors import EXIT_INPUT
from querywatch.detector.simulate import VICTIMS, read_jsonl
from querywatch.detector.simulate.victim import MODEL_ID, TABULAR_MODEL_ID
from tests.kafka.harness import read_topic


def test_writes_trace_and_truth(tmp_path: Path) -> None:
    out, truth = tmp_path / "trace.jsonl", tmp_path / "truth.json"
    args = ["simulate", "--seed", "4", "--benign", "5", "--attackers", "2", "--scale", "0.05"]
    assert main([*args, "--out", str(out), "--truth", str(truth)]) == 0
    events = list(read_jsonl(out))
    roles = json.loads(truth.read_text())
    assert {e["client_id"] for e in events} == set(roles)
    assert sorted(r["role"] for r in roles.values()).count("attack") == 2
    assert events[0]["ts"].startswith("2026-01-05")
    assert {e["model_id"] for e in events} == {MODEL_ID} and {len(e["input"]) for e in events} == {64}
    assert {r["victim"] for r in roles.values()} == {"digits"}


def test_writes_campaign_and_organisation_accounts(tmp_path: Path) -> None:
    """A campaign's small accounts and an organisation's teams, which only the Python API made."""
    out, truth = tmp_path / "trace.jsonl", tmp_path / "truth.json"
    args = ["simulate", "--benign", "5", "--attackers", "1", "--scale", "0.05", "--campaign-accounts", "6"]
    assert main([*args, "--org-accounts", "4", "--out", str(out), "--truth", str(truth)]) == 0
    families = [t["family"] for t in json.loads(truth.read_text()).values()]
    assert families.count("campaign") == 6 and families.count("organisation") == 4
    senders = {e["client_id"] for e in read_jsonl(out)}
    assert senders == set(json.loads(truth.read_text()))


def test_writes_hard_traffic_diluted_and_early_thieves(tmp_path: Path) -> None:
    """What-if analysts and records with gaps beside the ordinary clients; thieves who dilute
    their stolen queries and start with the trace (a poisoned warm-up)."""
    out, truth = tmp_path / "trace.jsonl", tmp_path / "truth.json"
    args = ["simulate", "--benign", "5", "--attackers", "2", "--scale", "0.05", "--dilute", "4", "--early"]
    assert main([*args, "--hard", "whatif=3,zero_filled", "--out", str(out), "--truth", str(truth)]) == 0
    roles = json.loads(truth.read_text())
    families = [t["family"] for t in roles.values()]
    assert families.count("whatif") == 3 and families.count("zero_filled") == HARD_DEFAULT
    thieves = [t for t in roles.values() if t["role"] == "attack"]
    assert len(thieves) == 2 and all(t["dilution"] == "1:4" and t["early"] == "yes" for t in thieves)
    assert {e["client_id"] for e in read_jsonl(out)} == set(roles)


def test_writes_a_tabular_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, truth = tmp_path / "trace.jsonl", tmp_path / "truth.json"
    args = ["simulate", "--victim", "tabular", "--seed", "4", "--benign", "5", "--attackers", "2"]
    assert main([*args, "--scale", "0.05", "--out", str(out), "--truth", str(truth), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    events = list(read_jsonl(out))
    assert document["victim"] == "tabular" and document["events"] == len(events)
    assert {e["model_id"] for e in events} == {TABULAR_MODEL_ID} and {len(e["input"]) for e in events} == {16}
    assert {r["victim"] for r in json.loads(truth.read_text()).values()} == {"tabular"}


def test_the_parser_offers_every_victim_and_only_those(capsys: pytest.CaptureFixture[str]) -> None:
    assert tuple(VICTIMS) == VICTIM_NAMES
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--victim", "images", "--out", "t.jsonl"])
    assert exited.value.code == 2
    assert (
        "invalid choice: 'images' (choose from 'digits', 'tabular', 'wide', 'binary')"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hard", "whatif=-2"], "-2 is not a count"),
        (["--hard", "missing,missing=3"], "hard traffic 'missing' given twice"),
        (["--dilute", "-1"], "-1 is not a count"),
    ],
)
def test_bad_hard_traffic_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--out", str(tmp_path / "t.jsonl"), *extra])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_refuses_when_there_is_nothing_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate"]) == 2
    assert "nothing to do" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--families", "random,telepathy"], "unknown attack families"),
        (["--start", "yesterday"], "not RFC 3339"),
        (["--rate", "0", "--bootstrap-servers", "127.0.0.1:9"], "--rate"),
        (["--rate", "250"], "--rate paces producing to a broker"),  # it paced nothing, silently
        (["--hard", "whatif,telepathy"], "unknown hard traffic ['telepathy']; choose from ['missing'"),
    ],
)
def test_bad_options_get_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["simulate", "--out", str(tmp_path / "t.jsonl"), *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.mark.kafka
def test_produces_keyed_by_client_at_a_pace(broker: EmbeddedBroker, tmp_path: Path) -> None:
    truth, out = tmp_path / "truth.json", tmp_path / "trace.jsonl"
    args = [
        "simulate",
        "--seed",
        "9",
        "--benign",
        "3",
        "--attackers",
        "1",
        "--scale",
        "0.05",
        "--out",
        str(out),
    ]
    server = ["--bootstrap-servers", broker.bootstrap_servers, "--topic", "sim-paced", "--rate", "3000"]
    assert main([*args, *server, "--truth", str(truth)]) == 0  # --out and a broker: both
    messages = read_topic(broker.bootstrap_servers, "sim-paced")
    clients = set(json.loads(truth.read_text()))
    assert messages and {m.key.decode() for m in messages} == clients
    assert all(json.loads(m.value)["client_id"] == m.key.decode() for m in messages)
    sent = {json.loads(m.value)["request_id"] for m in messages}
    assert len(sent) == len(messages) and sent == {e["request_id"] for e in read_jsonl(out)}


@pytest.mark.kafka
def test_produce_prints_its_json_document(
    broker: EmbeddedBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trace.jsonl"
    assert (
        main(
            [
                "simulate",
                "--seed",
                "2",
                "--benign",
                "2",
                "--attackers",
                "1",
                "--scale",
                "0.03",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    server = ["--bootstrap-servers", broker.bootstrap_servers, "--topic", "sim-json"]
    assert main(["produce", str(out), *server, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "schema": "querywatch.produce/1",
        "messages": len(out.read_text().splitlines()),
        "topic": "sim-json",
        "too_large": [],
    }

    # A line too large for a Kafka message cannot even be dead-lettered: it is named, the
    # lines after it are sent (it stopped the load there, with no line number).
    lines = out.read_text().splitlines()
    big = tmp_path / "big.jsonl"
    big.write_text("\n".join([*lines[:3], '{"pad": "' + "x" * 1_200_000 + '"}', *lines[3:]]) + "\n")
    assert main(["produce", str(big), *server, "--json"]) == EXIT_INPUT
    said = capsys.readouterr()
    assert json.loads(said.out)["messages"] == len(lines) and json.loads(said.out)["too_large"] == [4]
    assert "1 lines too large for a Kafka message not sent: line 4 (1,200,011 bytes)" in said.err
