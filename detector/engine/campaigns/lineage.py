"""Shared lineage: queries of one account that are structured steps from another account's.

A perturbation thief (JbDA, T-RND, boundary walks) grows its queries from earlier ones. Dealt
over accounts, each account's own chain is broken — its next query's parent went to another
account — so no per-account test sees it; but a sample of each account's queries (the
reservoir codes of its summary) holds parents of the other accounts' queries. Natural
queries of benign clients are almost never a structured step from one another.

Hits are counted as independent relations (``matched``): a record swept many ways, or
resent with noise, relates to many queries of another client that sent the same record,
yet is one relation. The null is the model's own reference: the rate of structured-step
pairs among the reference's typical inputs (the profile's extraction sample) that share an input cell.
Only pairs in one cell are compared, for live clients as for the reference: a small step
rarely leaves its cell. A summary is compared with the newest ``BUCKET_ROWS`` live rows of
each cell only, and the table keeps no more (older rows leave when it is compacted): a
summary costs at most its rows × ``BUCKET_ROWS`` step tests however many clients the model
has, so the work grows with the summaries, not with the square of the clients per cell.
Rows that left come back with their client's next sample. The evidence of a pair of
clients is the Chernoff bound ``-log P(X ≥ x)`` of x hits in n same-cell pairs at the null
rate, ``n · KL(x/n ‖ p0)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from querywatch.features.jit import compiled
from querywatch.features.layout import LAYOUT, kept_columns, query_layout, reservoir_features, same_features
from querywatch.features.nearest import structured_step
from querywatch.models.profile import ReferenceProfile

#: Floor of the null rate (a reference without a single step pair still has some chance).
MIN_NULL_PAIRS = 1
#: Rows of each cell a summary is compared with at most (the newest live ones): the work per
#: summary is bounded however many clients the model has.
BUCKET_ROWS = 512
#: Spare rows the table makes room for when it is compacted or loaded: a sixteenth of its
#: rows, at least ``MIN_SPARE_ROWS``. Spare rows are memory held per client; fewer of them
#: mean more compactions, each a copy of the table (cheap beside a summary's comparisons).
SPARE_FRACTION = 16
MIN_SPARE_ROWS = 64


@compiled
def cross_steps(queries: NDArray[np.uint8], block: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """(queries × block) matrix: whether a row of ``queries`` and a row of ``block`` are a
    structured step apart (the test is symmetric: it reads only the moves' magnitudes)."""
    hits = np.zeros((queries.shape[0], block.shape[0]), np.bool_)
    counts = np.zeros(256, np.int64)
    for j in range(block.shape[0]):
        for i in range(queries.shape[0]):
            hits[i, j] = structured_step(queries[i], block[j], counts)
    return hits


@compiled
def same_cell_steps(
    queries: NDArray[np.uint8],
    query_cells: NDArray[np.int64],
    table: NDArray[np.uint8],
    table_cells: NDArray[np.int16],
    owners: NDArray[np.int32],
    cells: int,
    bucket: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(query row, table row) pairs in one cell that are a structured step apart, against the
    newest ``bucket`` live table rows of each cell (the table is in the order rows came);
    table rows whose owner is negative (removed) are skipped. ``cells``: the profile's cell
    count."""
    order = np.argsort(query_cells, kind="mergesort")
    first = np.zeros(cells + 1, np.int64)
    for i in range(order.shape[0]):
        first[query_cells[order[i]] + 1] += 1
    for c in range(cells):
        first[c + 1] += first[c]
    compared = np.zeros(cells, np.int64)
    counts = np.zeros(256, np.int64)
    found_i = []
    found_j = []
    for j in range(table.shape[0] - 1, -1, -1):
        if owners[j] < 0:
            continue
        cell = table_cells[j]
        if compared[cell] >= bucket or first[cell] == first[cell + 1]:
            continue
        compared[cell] += 1
        row = table[j]
        for k in range(first[cell], first[cell + 1]):
            i = order[k]
            if structured_step(queries[i], row, counts):
                found_i.append(i)
                found_j.append(j)
    return np.array(found_i, dtype=np.int64), np.array(found_j, dtype=np.int64)


def matched(hits: NDArray[np.bool_]) -> int:
    """How many independent relations a hit matrix shows: the smaller of the rows and the
    columns involved (a bound on its largest matching). One record swept many ways, or
    resent with noise, relates to many queries of another client but counts once.

    >>> matched(np.array([[True, True, True], [False, False, False]]))
    1
    """
    return int(min(np.count_nonzero(hits.any(axis=1)), np.count_nonzero(hits.any(axis=0))))


def capacity(rows: int) -> int:
    """Rows the table allocates to hold ``rows`` (see ``SPARE_FRACTION``).

    >>> capacity(0), capacity(3200)
    (64, 3400)
    """
    return rows + max(rows // SPARE_FRACTION, MIN_SPARE_ROWS)


def code_cells(profile: ReferenceProfile, codes: NDArray[np.uint8]) -> NDArray[np.int64]:
    """The profile's cell of each 8-bit reservoir row (decoded to the middle of its bins,
    the features a row leaves out at the reference's mean): the nearest centroid, as
    ``ReferenceProfile.view`` finds it, without the scores it also computes."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    features = reservoir_features(profile.dim)
    kept = slice(None) if features is None else features
    low, high = profile.low[kept], profile.high[kept]
    span = np.where(high > low, high - low, 1.0)
    X = np.repeat(profile.mean[None, :], len(codes), axis=0)
    X[:, kept] = low + codes.astype(np.float64) * (span / 255.0)
    Z = ((X - profile.mean) / profile.scale) @ profile.components.T
    C = profile.centroids
    d2 = np.einsum("ij,ij->i", C, C)[None, :] - 2.0 * Z @ C.T  # + |Z|², the same for every cell
    return np.asarray(np.argmin(d2, axis=1), dtype=np.int64)


def reference_null(profile: ReferenceProfile) -> float | None:
    """Rate of structured-step pairs among same-cell pairs of the reference's distinct typical
    inputs (the extraction's validation set, which a trusted file's weights draw with
    replacement); None when the profile keeps no inputs (a reference without answers)."""
    if profile.extraction is None or len(profile.extraction.codes) < 2:
        return None
    codes = np.unique(kept_columns(profile.extraction.codes), axis=0)
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


@dataclass(frozen=True, eq=False)
class Found:
    """What one comparison found: the independent relations of the compared client with
    each other client (``relations``, nonzero only), and which rows of its own sample
    (``codes``) each of those relations used (``own_rows``)."""

    relations: dict[str, int]
    own_rows: dict[str, frozenset[int]]
    codes: NDArray[np.uint8]

    def with_clients(self, clients: Iterable[str]) -> int:
        """Independent relations with ``clients`` taken as one (a campaign's members): each
        pair's count, summed, but never more than the *records* of the compared client's
        sample (``records``) that relate to any of them. One record relates to its relatives
        in every member's sample, as a campaign deals one seed's children over accounts, and
        so does each point of a sweep of it; yet it is one relation. A what-if analyst who
        swept a record that a campaign had also seeded from had six hits with four of its
        members, most of them through that record, and joined it (the bench's digits with
        the extras, seed 5). The records are found only here: most comparisons relate to no campaign."""
        related = [c for c in clients if c in self.relations]
        if not related:
            return 0
        used = frozenset().union(*(self.own_rows[c] for c in related))
        return min(sum(self.relations[c] for c in related), len({int(self._records[i]) for i in used}))

    @cached_property
    def _records(self) -> NDArray[np.int64]:
        return records(self.codes)


def records(codes: NDArray[np.uint8]) -> NDArray[np.int64]:
    """A label per row of one client's sample: rows that are structured steps from one
    another, directly or through other rows, share it (one record and what was made from
    it: a sweep's points, a seed's children). A summary's sample of 20-32 rows costs 400-1,024
    step tests, so ``Found`` asks only when a client may join a campaign.

    >>> base = np.full((1, 16), 100, dtype=np.uint8)
    >>> rows = np.vstack([base, base + 20, base + 40, np.arange(16, dtype=np.uint8)[None, :] * 15])
    >>> records(rows).tolist()
    [0, 0, 0, 1]
    """
    _, label = connected_components(cross_steps(codes, codes), directed=False)
    return np.asarray(label, dtype=np.int64)


class LineageIndex:
    """Every client's code sample of one model in one table, and the hits between clients."""

    def __init__(self, profile: ReferenceProfile, null: float) -> None:
        self.profile = profile
        self.null = null
        self.width = query_layout(profile.dim).kept_width  # bytes of a row: a reservoir row's
        self._codes = np.zeros((0, self.width), dtype=np.uint8)
        self._cells = np.zeros(0, dtype=np.int16)
        self._owners = np.zeros(0, dtype=np.int32)  # index into _names; -1: removed
        self._used = 0
        self._names: list[str] = []
        self._ids: dict[str, int] = {}
        # rows per cell (at most 255) of each client with a sample: bytes, not arrays, as
        # an array's header alone outweighs a 64-cell count
        self._cell_counts: dict[str, bytes] = {}
        self.hits: dict[str, dict[str, int]] = {}  # symmetric, only nonzero counts

    def __len__(self) -> int:
        return len(self._cell_counts)

    def trials(self, a: str, b: str) -> int:
        """Same-cell pairs between two clients' samples."""
        ca, cb = self._cell_counts.get(a), self._cell_counts.get(b)
        if ca is None or cb is None:
            return 0
        return int(_counts(ca).astype(np.int64) @ _counts(cb))

    def trials_with(self, client: str, members: Sequence[str]) -> int:
        """Same-cell pairs between one client's sample and the samples of ``members``."""
        mine = self._cell_counts.get(client)
        if mine is None:
            return 0
        return int(_counts(mine).astype(np.int64) @ self._counts_of(members).sum(axis=0))

    def among(self, members: Sequence[str]) -> tuple[int, int]:
        """Hits and same-cell pairs over every pair of ``members``."""
        counts = self._counts_of(members)
        total = counts.sum(axis=0)
        trials = (int(total @ total) - int(np.einsum("ij,ij->", counts, counts))) // 2
        chosen = set(members)
        hits = sum(n for m in chosen for other, n in self.hits.get(m, {}).items() if other in chosen) // 2
        return hits, trials

    def _counts_of(self, members: Sequence[str]) -> NDArray[np.int64]:
        rows = [_counts(self._cell_counts[m]) for m in members if m in self._cell_counts]
        if not rows:
            return np.zeros((0, self.profile.cells), dtype=np.int64)
        return np.array(rows, dtype=np.int64)

    def update(self, client_id: str, codes: NDArray[np.uint8]) -> Found:
        """Replace a client's sample; returns its hits with every other client."""
        self.remove(client_id)
        codes = kept_columns(codes)
        cells = code_cells(self.profile, codes)
        used = self._used
        rows_i, rows_j = same_cell_steps(
            codes,
            cells,
            self._codes[:used],
            self._cells[:used],
            self._owners[:used],
            self.profile.cells,
            BUCKET_ROWS,
        )
        found: dict[str, int] = {}
        own_rows: dict[str, frozenset[int]] = {}
        if len(rows_j):
            owners = self._owners[rows_j]
            for owner in np.unique(owners).tolist():
                mine = owners == owner
                name = self._names[owner]
                own_rows[name] = frozenset(rows_i[mine].tolist())
                # independent relations: the smaller of the rows involved on each side
                found[name] = int(min(len(own_rows[name]), len(np.unique(rows_j[mine]))))
        self._append(client_id, codes, cells)
        mine_hits = self.hits.setdefault(client_id, {})
        for other, n in found.items():
            mine_hits[other] = n
            self.hits.setdefault(other, {})[client_id] = n
        return Found(found, own_rows, codes)

    def _append(self, client_id: str, codes: NDArray[np.uint8], cells: NDArray[np.int64]) -> None:
        if self._used + len(codes) > len(self._codes):
            self._compact(extra=len(codes))
        start, end = self._used, self._used + len(codes)
        owner = self._ids.get(client_id)
        if owner is None:
            owner = self._ids[client_id] = len(self._names)
            self._names.append(client_id)
        self._codes[start:end] = codes
        self._cells[start:end] = cells
        self._owners[start:end] = owner
        self._used = end
        counts = np.bincount(cells, minlength=self.profile.cells)
        self._cell_counts[client_id] = np.minimum(counts, 255).astype(np.uint8).tobytes()

    def _compact(self, extra: int) -> None:
        """Drop removed rows and each cell's live rows beyond its newest ``BUCKET_ROWS``, and
        make room for ``extra`` more (and spare rows: ``capacity``)."""
        newest = np.flatnonzero(self._owners[: self._used] >= 0)[::-1]
        cells = self._cells[newest]
        by_cell = np.argsort(cells, kind="stable")  # newest first within each cell
        rank = np.empty(len(newest), dtype=np.int64)
        rank[by_cell] = np.arange(len(newest)) - np.searchsorted(cells[by_cell], cells[by_cell])
        alive = np.sort(newest[rank < BUCKET_ROWS])
        size = capacity(len(alive) + extra)
        codes = np.zeros((size, self.width), dtype=np.uint8)
        cells = np.zeros(size, dtype=np.int16)
        owners = np.full(size, -1, dtype=np.int32)
        codes[: len(alive)] = self._codes[alive]
        cells[: len(alive)] = self._cells[alive]
        owners[: len(alive)] = self._owners[alive]
        self._codes, self._cells, self._owners, self._used = codes, cells, owners, len(alive)

    def remove(self, client_id: str) -> None:
        """Forget a client's sample and its hits. Its rows are found by their owner (a scan
        of the table's owners costs less than the comparisons that follow, and keeping each
        client's row numbers would cost more memory than its cell counts)."""
        if self._cell_counts.pop(client_id, None) is None:
            return
        owners = self._owners[: self._used]
        owners[owners == self._ids[client_id]] = -1
        for other in self.hits.pop(client_id, {}):
            self.hits.get(other, {}).pop(client_id, None)

    def export(self) -> dict[str, Any]:
        """The index as plain data (an aggregator's checkpoint): its live rows in table order
        (codes and owners: which rows are the newest of a cell is what a later comparison
        reads), each client's per-cell counts and the hits, each pair once. ``load`` reads it."""
        live = np.flatnonzero(self._owners[: self._used] >= 0)
        hits = {a: {b: n for b, n in row.items() if a < b} for a, row in self.hits.items()}
        return {
            "names": list(self._names),
            "codes": self._codes[live].tobytes(),
            "owners": self._owners[live].tobytes(),
            "counts": dict(self._cell_counts),
            "hits": {a: row for a, row in hits.items() if row},
            "layout": LAYOUT,
        }

    def load(self, plain: dict[str, Any]) -> None:
        """Put back, into this empty index of the same profile, what ``export`` gave. An
        index of a wide input's rows exported by a release of another layout generation
        (``features.layout``) holds other features than this release's rows: the index stays
        empty, as a new one (the campaigns keep their links and evidence)."""
        owners = np.frombuffer(plain["owners"], dtype=np.int32)
        used = len(owners)
        raw = np.frombuffer(plain["codes"], dtype=np.uint8)
        if used and not same_features(plain.get("layout", 1), self.profile.dim, len(raw) // used):
            return
        # Rows of a reservoir's width, or whole queries (an index exported before rows kept a subset).
        codes = kept_columns(raw.reshape(used, len(raw) // used if used else self.width))
        size = capacity(used)
        self._codes = np.zeros((size, self.width), dtype=np.uint8)
        self._cells = np.zeros(size, dtype=np.int16)
        self._owners = np.full(size, -1, dtype=np.int32)
        self._codes[:used] = codes
        self._cells[:used] = code_cells(self.profile, codes)
        self._owners[:used] = owners
        self._used = used
        self._names = [str(name) for name in plain["names"]]
        self._ids = {name: i for i, name in enumerate(self._names)}
        self._cell_counts = {str(c): bytes(counts) for c, counts in plain["counts"].items()}
        self.hits = {c: {} for c in self._cell_counts}
        for a, row in plain["hits"].items():
            for b, n in row.items():
                self.hits.setdefault(a, {})[b] = int(n)
                self.hits.setdefault(b, {})[a] = int(n)

    def pair_evidence(self, a: str, b: str) -> float:
        return evidence(self.hits.get(a, {}).get(b, 0), self.trials(a, b), self.null)


def _counts(stored: bytes) -> NDArray[np.uint8]:
    """A client's per-cell row counts, as the index stores them."""
    return np.frombuffer(stored, dtype=np.uint8)
