"""Demo traffic: a shipped victim model, benign clients and model thieves, as event traces.

Used by ``querywatch simulate`` and ``querywatch up --demo``, and by tests that need
realistic traffic with a known ground truth.
"""

from __future__ import annotations

from detector.simulate.attackers import ATTACK_KINDS
from detector.simulate.benign import BENIGN_KINDS
from detector.simulate.jsonl import read_jsonl, write_jsonl, write_truth
from detector.simulate.trace import generate_trace
from detector.simulate.victim import MODEL_ID, VictimModel, load_victim

__all__ = [
    "ATTACK_KINDS",
    "BENIGN_KINDS",
    "MODEL_ID",
    "VictimModel",
    "generate_trace",
    "load_victim",
    "read_jsonl",
    "write_jsonl",
    "write_truth",
]
