"""Serialized client state over several traces: each trace's median and largest, and what
the largest of all holds.

    python benchmarks/bench_state.py TRACE.jsonl [TRACE.jsonl ...] [--profile DIR]

The target is 4,096 bytes at most for every client of every trace. A state's size varies
from client to client by what the compressor finds to share (a reservoir row is nearly
incompressible, counts and floats are not), so one trace's largest says little of
another's: with a 2,560-byte reservoir, digits seed 1's largest was 4,038 B and seed 2's
4,125 B. ``bench_replay.py`` prints one trace's sizes beside its speed; this replays each
trace once, untimed, and breaks the largest state down: the bytes each part adds (the state
stored without that part, subtracted from the whole).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench_replay import client_states, describe_sizes, timed_replay

from querywatch.detector.engine import stateformat

#: The most a client's stored state may take (issue 13's target).
TARGET_BYTES = 4096


def part_bytes(models: stateformat.ModelStates) -> list[tuple[int, str]]:
    """(bytes the part adds to the stored state, "model part.name"), largest first: every
    named entry of a model's state (its features, evidence and counters)."""
    whole = len(stateformat.dumps(models))
    added = []
    for model_id, state in models.items():
        for part, entries in state.items():
            if not isinstance(entries, dict):
                continue  # the profile version
            for name in entries:
                without = {**state, part: {k: v for k, v in entries.items() if k != name}}
                added.append(
                    (
                        whole - len(stateformat.dumps({**models, model_id: without})),
                        f"{model_id} {part}.{name}",
                    )
                )
    return sorted(added, reverse=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", type=Path, nargs="+")
    ap.add_argument("--profile", type=Path, help="profile directory (default: warm-up from each trace)")
    args = ap.parse_args()
    for trace in args.traces:
        if not trace.is_file():
            ap.error(f"{trace}: no such file")
    largest = []  # (size, trace, client, state): each trace's largest
    for trace in args.traces:
        engine, report, _, _ = timed_replay(trace, args.profile)
        states = client_states(engine)
        client = max(states, key=lambda c: len(states[c]))
        queries = report.clients[client].queries
        print(f"{trace}: {describe_sizes(states)}; the largest {client}, of {queries:,} queries")
        largest.append((len(states[client]), str(trace), client, states[client]))
    size, trace_name, client, data = max(largest)
    verdict = "met" if size <= TARGET_BYTES else "NOT met"
    print(f"largest: {size:,} B, {client} of {trace_name} (target {TARGET_BYTES:,} B: {verdict})")
    for added, part in part_bytes(stateformat.loads(data))[:8]:
        print(f"  {added:6,} B  {part}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
