"""Shared lineage: queries of one account that are structured steps from another account's.

A perturbation thief (JbDA, T-RND, boundary walks) grows its queries from earlier ones. Dealt
over accounts, each account's own chain is broken — its next query's parent went to another
account — so no per-account test sees it; but a sample of each account's queries (the
reservoir codes of its summary) holds parents of the other accounts' queries. Natural
queries of benign clients are almost never a structured step from one another.

Hits are counted as independent relations (``matched``): a record swept many ways, or
resent with noise, relates to many queries of another client that sent the same record,
yet is one relation. The null is the model's own reference: the rate of structured-step pairs among the
reference's typical inputs (the profile's extraction sample) that share an input cell.
Only pairs in one cell are compared, for live clients as for the reference: a small step
rarely leaves its cell, and blocking by cell makes the comparison about 1/(Σ p²) times
cheaper than comparing every pair. The evidence of a pair of clients is the Chernoff bound
``-log P(X ≥ x)`` of x hits in n same-cell pairs at the null rate, ``n · KL(x/n ‖ p0)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from querywatch.features.jit import compiled
from querywatch.features.nearest import is_structured_step
from querywatch.models.profile import ReferenceProfile

#: Floor of the null rate (a reference without a single step pair still has some chance).
MIN_NULL_PAIRS = 1


@compiled
def cross_steps(queries: NDArray[np.uint8], block: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """(queries × block) matrix: whether a row of ``queries`` is a structured step from a
    row of ``block`` or the reverse."""
    hits = np.zeros((queries.shape[0], block.shape[0]), np.bool_)
    for j in range(block.shape[0]):
        b = block[j]
        for i in range(queries.shape[0]):
            a = queries[i]
            if is_structured_step(a, b) or is_structured_step(b, a):
                hits[i, j] = True
    return hits


def matched(hits: NDArray[np.bool_]) -> int:
    """How many independent relations a hit matrix shows: the smaller of the rows and the
    columns involved (a bound on its largest matching). One record swept many ways, or
    resent with noise, relates to many queries of another client but counts once.

    >>> matched(np.array([[True, True, True], [False, False, False]]))
    1
    """
    return int(min(np.count_nonzero(hits.any(axis=1)), np.count_nonzero(hits.any(axis=0))))


def code_cells(profile: ReferenceProfile, codes: NDArray[np.uint8]) -> NDArray[np.int64]:
    """The profile's cell of each 8-bit code (decoded to the middle of its bin)."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    span = np.where(profile.high > profile.low, profile.high - profile.low, 1.0)
    X = profile.low + codes.astype(np.float64) / 255.0 * span
    return np.asarray(profile.view(X).cell, dtype=np.int64)


def reference_null(profile: ReferenceProfile) -> float | None:
    """Rate of structured-step pairs among same-cell pairs of the reference's typical inputs;
    None when the profile keeps no inputs (a reference without answers)."""
    if profile.extraction is None or len(profile.extraction.codes) < 2:
        return None
    codes = np.ascontiguousarray(profile.extraction.codes)
    cells = code_cells(profile, codes)
    hits = pairs = 0
    for cell in np.unique(cells):
        rows = codes[cells == cell]
        k = len(rows)
        pairs += k * (k - 1) // 2
        # Each unordered pair once: row i against the rows after it.
        for i in range(k - 1):
            hits += int(cross_steps(rows[i : i + 1], rows[i + 1 :]).any())
    return (hits + MIN_NULL_PAIRS) / (pairs + MIN_NULL_PAIRS)


def evidence(hits: int, trials: int, null: float) -> float:
    """Chernoff bound on -log P(X >= hits), X ~ Binomial(trials, null); 0 at or below the null.

    >>> round(evidence(10, 1600, 1e-4), 1), evidence(0, 1600, 1e-4)
    (31.5, 0.0)
    """
    if trials <= 0 or hits <= null * trials:
        return 0.0
    q = min(hits / trials, 1.0 - 1e-12)
    kl = q * math.log(q / null) + (1.0 - q) * math.log((1.0 - q) / (1.0 - null))
    return trials * kl


@dataclass
class _Client:
    slots: dict[int, list[int]] = field(default_factory=dict)  # cell -> row indices in its block
    cell_counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class LineageIndex:
    """Every client's code sample of one model, blocked by cell, and the hits between clients."""

    def __init__(self, profile: ReferenceProfile, null: float) -> None:
        self.profile = profile
        self.null = null
        self._blocks: dict[int, NDArray[np.uint8]] = {}
        self._owners: dict[int, list[str | None]] = {}
        self._clients: dict[str, _Client] = {}
        self.hits: dict[str, dict[str, int]] = {}  # symmetric, only nonzero counts

    def __len__(self) -> int:
        return len(self._clients)

    def trials(self, a: str, b: str) -> int:
        """Same-cell pairs between two clients' samples."""
        ca, cb = self._clients.get(a), self._clients.get(b)
        if ca is None or cb is None:
            return 0
        return int(ca.cell_counts @ cb.cell_counts)

    def update(self, client_id: str, codes: NDArray[np.uint8]) -> dict[str, int]:
        """Replace a client's sample; returns its hits with every other client (nonzero only)."""
        self.remove(client_id)
        cells = code_cells(self.profile, codes)
        client = _Client(cell_counts=np.bincount(cells, minlength=self.profile.cells).astype(np.int64))
        found: dict[str, int] = {}
        for cell in np.unique(cells).tolist():
            rows = np.ascontiguousarray(codes[cells == cell])
            block = self._blocks.get(cell)
            owners = self._owners.setdefault(cell, [])
            if block is not None and len(block):
                matrix = cross_steps(rows, block)
                columns: dict[str, list[int]] = {}
                for j in np.flatnonzero(matrix.any(axis=0)).tolist():
                    owner = owners[j]
                    if owner is not None and owner != client_id:
                        columns.setdefault(owner, []).append(j)
                for owner, js in columns.items():
                    found[owner] = found.get(owner, 0) + matched(matrix[:, js])
            start = 0 if block is None else len(block)
            self._blocks[cell] = rows if block is None else np.vstack([block, rows])
            owners.extend([client_id] * len(rows))
            client.slots[cell] = list(range(start, start + len(rows)))
        self._clients[client_id] = client
        mine = self.hits.setdefault(client_id, {})
        for other, n in found.items():
            mine[other] = n
            self.hits.setdefault(other, {})[client_id] = n
        return found

    def remove(self, client_id: str) -> None:
        """Forget a client's sample and its hits."""
        client = self._clients.pop(client_id, None)
        if client is None:
            return
        for cell, rows in client.slots.items():
            owners = self._owners[cell]
            for j in rows:
                owners[j] = None
            if owners.count(None) * 2 > len(owners):
                self._compact(cell)
        for other in self.hits.pop(client_id, {}):
            self.hits.get(other, {}).pop(client_id, None)

    def _compact(self, cell: int) -> None:
        owners = self._owners[cell]
        keep = [j for j, o in enumerate(owners) if o is not None]
        self._blocks[cell] = self._blocks[cell][keep]
        self._owners[cell] = [owners[j] for j in keep]
        moved: dict[str, list[int]] = {}
        for new, j in enumerate(keep):
            owner = owners[j]
            assert owner is not None
            moved.setdefault(owner, []).append(new)
        for owner, rows in moved.items():
            self._clients[owner].slots[cell] = rows

    def pair_evidence(self, a: str, b: str) -> float:
        return evidence(self.hits.get(a, {}).get(b, 0), self.trials(a, b), self.null)
