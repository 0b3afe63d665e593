"""What a long warm-up costs the checkpoints of its partition: held events written and rows kept.

    python benchmarks/bench_warmup_checkpoints.py [--held 80000] [--per-checkpoint 5000 500 5]

A partition's held warm-up events are stored with each checkpoint as chunks
(``PartitionWork.held_checkpoint``): the events held since the checkpoint before, merged with
the chunks before them that are no larger. For ``--held`` events arriving
``--per-checkpoint`` at a time (5,000: ``kafka.checkpoint_every_events``; fewer: a slow model
checkpointed every ``kafka.checkpoint_every_seconds``), it drives a ``PartitionWork`` through
every checkpoint, counting the events each one writes, and prints the total, the most rows
the chunks held at once, and what rewriting every held event at each checkpoint (the rule
before 2026-12-06) would have written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from querywatch.detector.adapters.kafka.partitions import PartitionWork


def chunked(held: int, per_checkpoint: int) -> tuple[int, int]:
    """(events written, most chunk rows at once) over a warm-up of ``held`` events."""
    work = PartitionWork("t", 0, None, 0.0, 0)
    written = rows = 0
    while len(work.held) < held:
        work.held.extend(range(len(work.held), min(held, len(work.held) + per_checkpoint)))
        chunks, _ = work.held_checkpoint(len)  # the "bytes" of a chunk: its event count
        written += sum(chunks.values())
        work.committed(0.0)
        rows = max(rows, len(work.held_sizes))
    return written, rows


def rewritten(held: int, per_checkpoint: int) -> int:
    """Events written when every checkpoint stores every held event again."""
    return sum(min(held, n) for n in range(per_checkpoint, held + per_checkpoint, per_checkpoint))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--held", type=int, default=80_000, help="events the warm-up holds (default 80,000)")
    ap.add_argument(
        "--per-checkpoint",
        type=int,
        nargs="+",
        default=[5000, 500, 5],
        help="events held between checkpoints",
    )
    args = ap.parse_args()
    header = ("per checkpoint", "checkpoints", "written (chunks)", "rows", "written (whole)")
    print(f"{header[0]:>15} {header[1]:>12} {header[2]:>17} {header[3]:>5} {header[4]:>16}")
    for per in args.per_checkpoint:
        written, rows = chunked(args.held, per)
        checkpoints = -(-args.held // per)
        print(f"{per:>15,} {checkpoints:>12,} {written:>17,} {rows:>5} {rewritten(args.held, per):>16,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
