"""Demo traffic: shipped victim models (digits, tabular), benign clients and model thieves, as event traces.

Used by ``querywatch simulate`` and ``querywatch up --demo``, and by tests that need
realistic traffic with a known ground truth.
"""

from __future__ import annotations

from querywatch.detector.simulate.attackers import ATTACK_KINDS
from querywatch.detector.simulate.benign import BENIGN_KINDS
from querywatch.detector.simulate.jsonl import read_jsonl, write_jsonl, write_truth
from querywatch.detector.simulate.trace import generate_trace
from querywatch.detector.simulate.victim import MODEL_ID, VICTIMS, VictimModel, load_victim

__all__ = [
    "ATTACK_KINDS",
    "BENIGN_KINDS",
    "MODEL_ID",
    "VICTIMS",
    "VictimModel",
    "generate_trace",
    "load_victim",
    "read_jsonl",
    "write_jsonl",
    "write_truth",
]
