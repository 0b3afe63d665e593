"""One client's state on one model: features, evidence tests and alert bookkeeping."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.client import ClientFeatures
from models.evidence import ClientEvidence
from models.profile import ReferenceProfile


@dataclass
class ModelContext:
    """What every client of one model shares: the profile and tables derived from it."""

    profile: ReferenceProfile
    expected_cells: np.ndarray
    new_cell: np.ndarray

    @classmethod
    def of(cls, profile: ReferenceProfile) -> ModelContext:
        return cls(profile, profile.expected_cells(), profile.new_cell_probabilities())


class ClientState:
    """Mutable per-(client, model) state; ``to_state``/``from_state`` for checkpoints."""

    __slots__ = ("alerts", "evidence", "features", "last_snapshot_risk", "last_ts", "open_alert", "peak",
                 "queries")

    def __init__(self, client_id: str, context: ModelContext, seed: int) -> None:
        p = context.profile
        client_seed = int.from_bytes(hashlib.blake2b(client_id.encode(), digest_size=8).digest(), "little")
        self.features = ClientFeatures(
            dim=p.dim,
            cell_prob=p.cell_prob,
            expected_cells=context.expected_cells,
            new_cell=context.new_cell,
            class_prior=p.class_prior,
            margin_threshold=p.margin_threshold,
            seed=client_seed ^ seed,
        )
        self.evidence = ClientEvidence()
        self.queries = 0
        self.alerts = 0
        self.open_alert: str | None = None
        self.peak = 0.0
        self.last_ts = float("-inf")
        self.last_snapshot_risk = -1.0

    def to_state(self, profile_version: str) -> dict[str, Any]:
        return {
            "profile": profile_version,
            "features": self.features.get_state(),
            "evidence": self.evidence.get_state(),
            "counters": (self.queries, self.alerts, self.open_alert, self.peak, self.last_ts,
                         self.last_snapshot_risk),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.features.set_state(state["features"])
        self.evidence.set_state(state["evidence"])
        (self.queries, self.alerts, self.open_alert, self.peak, self.last_ts,
         self.last_snapshot_risk) = state["counters"]


def dumps(states: dict[str, dict[str, Any]]) -> bytes:
    """Serialize a client's per-model states (plain tuples, numbers and bytes only)."""
    return pickle.dumps(states, protocol=5)


def loads(data: bytes) -> dict[str, dict[str, Any]]:
    loaded = pickle.loads(data)  # noqa: S301 - our own checkpoints, written by dumps()
    if not isinstance(loaded, dict):
        raise ValueError("not a querywatch client state")
    return loaded
