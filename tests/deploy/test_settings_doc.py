from __future__ import annotations

from pathlib import Path

from querywatch.detector.config import Settings
from querywatch.detector.config.doc import settings_rows, settings_table, table_in, write_table

README_SECTION = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_one_row_that_settings_accepts(monkeypatch) -> None:
    rows = list(settings_rows())
    names = [env for env, _, _ in rows]
    assert len(names) == len(set(names)) and "QUERYWATCH_DATABASE__URL" in names
    monkeypatch.setenv("QUERYWATCH_KAFKA__PARTITIONS", "3")
    monkeypatch.setenv("QUERYWATCH_LOG_JSON", "false")
    settings = Settings()
    assert settings.kafka.partitions == 3 and settings.log_json is False


def test_readme_table_is_the_generated_one() -> None:
    assert table_in(README_SECTION.read_text()) == settings_table(), (
        "README.md's configuration table is stale: "
        "run `python -m querywatch.detector.config.doc --write README.md`"
    )


def test_write_replaces_only_the_table(tmp_path: Path) -> None:
    doc = tmp_path / "ops.md"
    doc.write_text("intro\n<!-- settings-table:start -->\nold\n<!-- settings-table:end -->\noutro\n")
    write_table(doc)
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and table_in(text) == settings_table()
