from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from querywatch.detector.adapters.db.apikeys import authenticate
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker
from querywatch.detector.cli import main
from querywatch.detector.errors import EXIT_RUNTIME, EXIT_USAGE
from tests.storage.databases import migrated_database


def test_apikey_create_prints_a_working_key_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with migrated_database("sqlite", tmp_path) as settings:
        monkeypatch.setenv("QUERYWATCH_DATABASE__URL", settings.database.url)
        assert main(["apikey", "create", "--role", "admin", "--name", "ops"]) == 0
        said = capsys.readouterr()
        [secret] = said.out.splitlines()  # the key alone: KEY=$(querywatch apikey create ...) works
        assert "store it now" in said.err
        engine = make_engine(settings.database)
        with make_sessionmaker(engine)() as session:
            principal = authenticate(session=session, presented=secret)
        engine.dispose()
        assert principal is not None and (principal.role, principal.name) == ("admin", "ops")
        assert main(["apikey", "list"]) == 0
        listing = capsys.readouterr().out
        assert "ops" in listing and secret not in listing
        assert main(["apikey", "revoke", str(principal.key_id)]) == 0
        capsys.readouterr()
        assert main(["apikey", "revoke", str(principal.key_id)]) == EXIT_RUNTIME
        said = capsys.readouterr().err
        assert (
            said.startswith(f"querywatch: error: no active key #{principal.key_id}") and "apikey list" in said
        )
        assert main(["db", "downgrade", "--revision", "nonsense"]) == EXIT_USAGE
        said = capsys.readouterr().err
        assert "cannot migrate to 'nonsense'" in said and "revisions are base, 0001" in said


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = {"QUERYWATCH_DATABASE__URL": f"sqlite:///{tmp_path / 'empty.db'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "querywatch.detector.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_RUNTIME
    assert (
        "has no querywatch schema" in done.stderr
        and "(hint: run `querywatch db upgrade` first)" in done.stderr
    )


def test_serve_logs_json_lines_as_every_long_running_command(tmp_path: Path) -> None:
    """It logged uvicorn's own plain lines, and a line for every request at INFO."""
    with migrated_database("sqlite", tmp_path) as settings:
        env = {"QUERYWATCH_DATABASE__URL": settings.database.url, "PATH": "/usr/bin:/bin"}
        server = subprocess.Popen(
            [sys.executable, "-m", "querywatch.detector.cli", "serve", "--port", "0"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stderr is not None
            lines = []
            for line in server.stderr:
                lines.append(line)
                if "Uvicorn running on" in line:
                    break
        finally:
            server.terminate()
            server.wait(30)
    records = [json.loads(line) for line in lines]
    assert records[-1]["logger"] == "uvicorn.error" and records[-1]["level"] == "info"
