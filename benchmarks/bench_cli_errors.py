"""How long each command takes to fail on a bad path, a busy port or a mistyped setting.

    python benchmarks/bench_cli_errors.py [--runs 3]

Each failure is checked before the engine is imported or work starts, so these should take
about as long as starting Python and parsing the arguments. Prints the median wall-clock
time of each case over ``--runs`` runs, with its exit code and error line.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder, socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        (Path(folder) / "t.jsonl").write_text("{}\n")
        cases = {
            "replay, missing trace": (["replay", "missing.jsonl", "--report", "r.json"], {}),
            "replay, report folder missing": (["replay", "t.jsonl", "--report", "no/r.json"], {}),
            "simulate, out folder missing": (["simulate", "--out", "no/t.jsonl"], {}),
            "profile, missing input": (["profile", "--input", "no.npy", "--model-id", "m", "--out", "p"], {}),
            "serve, busy port": (["serve", "--port", port], {}),
            "up, busy port": (["up", "--port", port], {}),
            "mistyped setting": (["db", "current"], {"QUERYWATCH_DETECTION__ALERT_RISK": "7"}),
        }
        print(f"{'case':<32} {'median s':>9}  exit  first error line")
        for name, (argv, extra) in cases.items():
            env = {**os.environ, "QUERYWATCH_DATABASE__URL": f"sqlite:///{folder}/qw.db", **extra}
            times, done = [], None
            for _ in range(args.runs):
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "querywatch.detector.cli", *argv],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=folder,
                    timeout=120,
                )
                times.append(time.perf_counter() - started)
            assert done is not None
            line = (done.stderr.strip().splitlines() or [""])[-1]
            print(f"{name:<32} {statistics.median(times):>9.2f}  {done.returncode:>4}  {line[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
