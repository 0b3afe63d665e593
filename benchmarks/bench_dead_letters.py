"""What the dead-letter views cost when many letters are kept (``adapters/db/dead_letters.py``).

``GET /v1/dead-letters/clients`` (and the dashboard's *Refused* view, which polls it) ranks
clients by their refused events: one GROUP BY over every letter kept, up to
``inputs.dead_letter_retention_days``. ``GET /v1/dead-letters?client_id=`` reads one
client's newest letters by its index. This stores ``--letters`` letters of ``--clients``
clients in an empty, migrated database and prints the median time of each query.

    python benchmarks/bench_dead_letters.py [--letters 1000000] [--clients 5000] [--database URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from querywatch.detector.adapters.db.dead_letters import (
    clients_by_refused,
    list_dead_letters,
    save_dead_letters,
)
from querywatch.detector.adapters.db.migrate import upgrade
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.kafka.deadletters import DeadLetter
from tests.storage.databases import settings_for

REASONS = ("wrong_dimension", "non_finite", "not_json", "bad_scores")
BATCH = 20_000


def timed(query: Callable[[], object], rounds: int = 5) -> float:
    """Median seconds of ``query()`` over ``rounds`` runs."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        query()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def letters_of(start: int, stop: int, clients: int, rng: random.Random) -> list[DeadLetter]:
    return [
        DeadLetter(
            "logs", 0, i, rng.choice(REASONS), "detail", b"{}", None, f"c{rng.randrange(clients)}", "m"
        )
        for i in range(start, stop)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--letters", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument(
        "--database", help="an empty, scratch database's URL (default: SQLite in a temp folder)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(args.database or f"sqlite:///{tmp}/bench.db")
        upgrade(settings)
        engine = make_engine(settings.database)
        sessions = make_sessionmaker(engine)
        rng = random.Random(1)
        started = time.perf_counter()
        for start in range(0, args.letters, BATCH):
            with transaction(sessions) as session:
                stop = min(start + BATCH, args.letters)
                save_dead_letters(session=session, letters=letters_of(start, stop, args.clients, rng))
        stored = time.perf_counter() - started
        with sessions() as session:
            ranked = timed(lambda: clients_by_refused(session=session, limit=100))
            one = timed(lambda: list_dead_letters(session=session, limit=51, client_id="c7"))
        engine.dispose()
    print(f"dead letters on {engine.dialect.name}: {args.letters:,} letters of {args.clients:,} clients")
    print(f"  stored in {stored:.1f} s ({args.letters / stored:,.0f} letters/s, {BATCH:,} a transaction)")
    print(f"  clients ranked by refused events (top 100): {ranked * 1000:.0f} ms")
    print(f"  one client's newest 50 letters: {one * 1000:.1f} ms")


if __name__ == "__main__":
    main()
