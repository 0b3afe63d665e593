"""The layers keep their promises: a pure core, SQL in one package, imports that point down."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = (
    "kafka",
    "sqlalchemy",
    "fastapi",
    "starlette",
    "httpx",
    "requests",
    "uvicorn",
    "querywatch.detector",
)
#: Layers of querywatch.detector, top to bottom: a module may import only its own layer and those below.
LAYERS = ("cli", "adapters", "pipeline", "engine")


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _imports(path: Path, *, runtime_only: bool = True) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``; ``if TYPE_CHECKING:`` blocks skipped if asked."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_core_modules_import_no_adapter_library() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{line} {module}"
        for folder in ("features", "models")
        for path in _modules(folder)
        for line, module in _imports(path, runtime_only=False)
        if any(_under(module, name) for name in FORBIDDEN)
    ]
    assert hits == []


def test_sqlalchemy_is_imported_only_by_the_db_adapter_and_migrations() -> None:
    allowed = (ROOT / "detector" / "adapters" / "db", ROOT / "migrations")
    hits = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in ("detector", "features", "models")
        for path in _modules(folder)
        if not any(path.is_relative_to(folder) for folder in allowed)
        for line, module in _imports(path)
        if _under(module, "sqlalchemy") or _under(module, "alembic")
    ]
    assert hits == []


def test_detector_layers_import_only_downwards() -> None:
    hits = []
    for rank, layer in enumerate(LAYERS):
        above = LAYERS[:rank]
        for path in _modules(f"detector/{layer}"):
            for line, module in _imports(path):
                if any(_under(module, f"querywatch.detector.{upper}") for upper in above):
                    hits.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert hits == []


def test_storage_does_not_import_delivery() -> None:
    """Outcomes reach the outbox through the sinks (``pipeline/sinks.py``), not through storage."""
    hits = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _modules("detector/adapters/db")
        for line, module in _imports(path, runtime_only=False)
        if _under(module, "querywatch.detector.adapters.delivery")
    ]
    assert hits == []


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print(','.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return set(out.stdout.strip().split(","))


def test_importing_the_core_loads_no_adapter_library() -> None:
    # river itself imports sqlalchemy when it is installed (river.stream.iter_sql), so only
    # the libraries no dependency of the core pulls in are checked at run time.
    loaded = _loaded_after(
        "import querywatch.features.client, querywatch.models.evidence, querywatch.models.profile, "
        "querywatch.models.population, querywatch.models.reasons"
    )
    runtime_forbidden = set(FORBIDDEN) - {"sqlalchemy"}
    assert not {m for m in loaded if any(_under(m, name) for name in runtime_forbidden)}


def test_importing_the_package_loads_nothing_heavy() -> None:
    loaded = _loaded_after("import querywatch, querywatch.detector")
    heavy = ("numpy", "sklearn", "numba", "river", "sqlalchemy", "fastapi", "kafka", "pydantic", "simdjson")
    assert not {m for m in loaded if any(_under(m, name) for name in heavy)}


def test_the_api_and_the_dispatcher_load_no_scoring_library() -> None:
    """They store and send what the engine decided; the engine's libraries (scikit-learn,
    scipy, numba, river) are a consumer's. A type imported at run time for an annotation
    once loaded them all: 230 MB resident for a dispatcher, 80 MB without."""
    loaded = _loaded_after("import querywatch.detector.adapters.api.app, querywatch.detector.cli.dispatch")
    scoring = ("sklearn", "scipy", "numba", "river")
    assert not {m for m in loaded if any(_under(m, name) for name in scoring)}


def test_core_never_reads_the_clock() -> None:
    clock = re.compile(r"time\.time\(|datetime\.now\(|datetime\.utcnow\(|time\.monotonic\(|perf_counter\(")
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("features", "models")
        for path in _modules(folder)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if clock.search(line)
    ]
    assert hits == []
