"""The command table: every command is registered by the module it names, and nothing else is."""

from __future__ import annotations

import subprocess
import sys

import pytest

from querywatch.detector.cli.commands import COMMANDS, build_parser
from querywatch.detector.errors import EXIT_USAGE


def test_each_command_is_registered_by_its_module() -> None:
    for command, module in COMMANDS.items():
        choices = build_parser((module,))._subparsers._group_actions[0].choices  # type: ignore[union-attr]
        assert command in choices
    every = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(every) == set(COMMANDS)


def test_every_commands_help_page_says_what_it_is_for(capsys: pytest.CaptureFixture[str]) -> None:
    """``querywatch db upgrade --help`` opens with a sentence, not only the usage line."""
    pages = [[name] for name in COMMANDS] + [
        ["db", "upgrade"],
        ["apikey", "revoke"],
        ["config", "show"],
        ["dead-letters", "purge"],
    ]
    for words in pages:
        with pytest.raises(SystemExit):
            build_parser().parse_args([*words, "--help"])
        page = capsys.readouterr().out
        description = page.split("\n\n")[1]
        assert description[0].isupper() and not description.startswith(("positional", "options")), words


def test_an_invalid_setting_is_a_clear_error_not_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "querywatch.detector.cli", "db", "current"],
        capture_output=True,
        text=True,
        env={"QUERYWATCH_DETECTION__ALERT_RISK": "7", "PATH": ""},
        timeout=60,
    )
    assert done.returncode == EXIT_USAGE
    assert "invalid setting: QUERYWATCH_DETECTION__ALERT_RISK" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_service_that_cannot_be_reached_is_said_as_such() -> None:
    """A producer that never bootstrapped (``dead-letters redrive``, ``simulate`` to a broker)
    ended in kafka-python's own ``KafkaTimeoutError``; a database that refused the connection
    in SQLAlchemy's ``OperationalError`` with a link to its docs."""
    from kafka.errors import KafkaTimeoutError
    from sqlalchemy.exc import OperationalError

    from querywatch.detector.cli.commands import _service_failure
    from querywatch.detector.config import DatabaseSettings, KafkaSettings, Settings

    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers="kafka-0:9092"),
        database=DatabaseSettings(url="postgresql://qw:secret@db:5432/qw"),
    )
    broker = _service_failure(KafkaTimeoutError("Unable to bootstrap from ['kafka-0:9092']"), settings)
    assert broker is not None and str(broker).startswith("cannot reach Kafka at kafka-0:9092: ")
    refused = OperationalError(
        "connect", {}, ConnectionRefusedError("connection refused\nIs the server running?")
    )
    database = _service_failure(refused, settings)
    assert (
        database is not None
        and str(database) == "database postgresql://qw:***@db:5432/qw: connection refused"
    )
    assert _service_failure(ValueError("a bug"), settings) is None
