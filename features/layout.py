"""What a client keeps of its queries: which features, and how many past queries.

A client keeps two kinds of 8-bit codes (``features.distance``): a uniform sample of its past
queries (the reservoir, ``features.reservoir``), searched for the parent of each new query,
and two *working rows* (its previous query and the start of its current chain of
near-duplicates), for the directions of what-if sweeps. Kept whole, both grow with the
input: 40 past queries of a 784-pixel image were 31 KB a client, of a 3,072-value one 123 KB.
So a reservoir row keeps at most ``RESERVOIR_WIDTH`` features and a working row at most
``WORKING_WIDTH``, each a fixed subset spread over the input (``spread_features``), and the reservoir holds
as many rows as a byte budget allows: a narrow input keeps more past queries (a thief's
seeds stay findable longer). Every subset is derived from the input's width alone, so every
part that reads reservoir rows (the distances, the steps null, the extraction proxy, the
campaign lineage) takes the same features without being told. Working rows wider than a
64-input image's take their extra bytes from the reservoir's budget, so that a client's
codes fit one budget at any width; a state stored under the larger budget loads its first
rows (``QueryReservoir.set_state``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Bytes of past queries a client keeps: rows of the features a row keeps and a byte of label.
#: What the rest of a long-running client's state takes (two full resend filters, 0.5 KB; its
#: working rows, an open alert and its counters and evidence, about 0.7 KB compressed) varies
#: by about 200 bytes from one client to the next: at 2,560 bytes (77 rows of a 64-input
#: model) a heavy benign client of digits seed 2 stored 4,125 B; at 2,400 (72 rows) the
#: largest of the twelve bench traces' clients stores 3,972 B (2026-12-05).
RESERVOIR_BYTES = 2400
#: Queries back that a row still counts as recent (``QueryReservoir.recent``): a what-if
#: analyst sweeps 10-30 points along a line, so a point of its previous line, the parent of a
#: step across a grid of two properties, is at most about that far back. A full reservoir
#: keeps a byte for each (the row it replaced, if any): 32 bytes beside its rows, which a
#: long-running client's stored state compresses to a few, since most of its queries replace
#: none.
RECENT_QUERIES = 32
#: Features a reservoir row keeps at most. Thirty-two, so that the structured-step test on a
#: row (three features moved, and an eighth of them) asks of any input what it asks of a
#: 24-64 input; a thief's step moves most features (a sign-gradient step) or a random share
#: of them (T-RND), the same share of any subset.
RESERVOIR_WIDTH = 32
#: Features a working row keeps at most: every feature of most tabular models (a sweep of
#: any one of them is a revisit), a grid over an image (its brightness, contrast and stroke
#: sweeps move every part of it). Its two rows then cost at most 512 bytes.
WORKING_WIDTH = 256
#: Bytes of working rows that fit beside a full reservoir (two rows of a 64-input image);
#: wider rows take the rest from the reservoir's budget, so that a client's codes stay within
#: RESERVOIR_BYTES + this at any width. With 77 rows beside two 256-byte working rows, an
#: alerted thief's state on a 768-input model was 4,272 bytes.
WORKING_ALLOWANCE = 128
#: Class counts (``features.classes``: a model's classes and a slot for labels it never saw)
#: that fit beside a full reservoir; a model with more takes CLASS_BYTES a count from the
#: reservoir's budget, at most a quarter of it (a profile keeps at most 256 counts: 255 classes
#: by name and the rest together, ``models.profile.MAX_CLASSES``). A client's counts compress
#: to about 1.6 bytes each at a hundred classes: a 64-input model's client of 30,000 queries
#: stored 4,007 bytes at 101 counts and 4,114-4,211 at 256 (500 and 1,000 classes), against
#: 3,846 at 11; 3,840 and 3,586-3,594 with their bytes taken from the reservoir.
CLASS_ALLOWANCE = 16
CLASS_BYTES = 2
#: The layout's generation: what a stored state's rows (``features.distance``) and a campaign
#: index's (``LineageIndex.export``) record of the subset they keep. Generation 1 took the
#: middle of every stretch (``spread_features`` says why that went); a row of another
#: generation holds other features and is not compared with this one's.
LAYOUT = 2
#: Where in its stretch each kept feature lies: the fractional parts of multiples of the
#: golden ratio's conjugate, the sequence that stays most evenly spread over any period.
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


@functools.cache
def spread_features(dim: int, width: int) -> NDArray[np.intp] | None:
    """``width`` of ``dim`` features spread over the input: one in each of ``width`` equal
    stretches, at a place in its stretch that moves from one stretch to the next (the golden
    sequence); None (all) when ``dim`` is no wider. Read-only: one array for every client
    of a model.

    Not the middle of every stretch, which is a fixed stride: an image whose row is as long
    as the stride, or a divisor of it, gives one or two columns of pixels. A 32 x 32 image
    (1,024 inputs; a 224 x 224 one too) kept one column, its working rows eight, so that two
    records differing there by a few grey levels showed one common move, a "structured
    step": a client replaying the bench's digits test set, each record scaled to 32 x 32,
    was alerted after 92 queries as a perturbation chain, where the 8 x 8 originals stayed
    quiet (risk 0.29); with this spread it stays at 0.29, a reservoir row keeping pixels of
    27 of the 32 columns.

    >>> spread_features(20, 32) is None, spread_features(64, 32)[:4].tolist()
    (True, [1, 2, 5, 6])
    >>> len(set((spread_features(1024, 32) % 32).tolist()))  # columns of a 32 x 32 image
    28
    """
    if dim <= width:
        return None
    bounds = np.arange(width + 1) * dim // width
    offsets = (0.5 + np.arange(width) * _GOLDEN) % 1.0
    kept: NDArray[np.intp] = bounds[:-1] + (offsets * np.diff(bounds)).astype(np.intp)
    kept.setflags(write=False)
    return kept


@dataclass(frozen=True, eq=False)
class QueryLayout:
    """The codes a client keeps of a ``dim``-input query: ``working`` of its features (None:
    all) in a working row, and ``kept`` of those (None: all of them) in a reservoir row."""

    dim: int
    working: NDArray[np.intp] | None
    kept: NDArray[np.intp] | None

    @property
    def working_width(self) -> int:
        return min(self.dim, WORKING_WIDTH)

    @property
    def kept_width(self) -> int:
        return min(self.dim, RESERVOIR_WIDTH)


@functools.cache
def query_layout(dim: int) -> QueryLayout:
    """One layout for every client of a ``dim``-input model.

    >>> layout = query_layout(784)
    >>> layout.working_width, layout.kept_width, reservoir_features(784)[:3].tolist()
    (256, 32, [14, 25, 65])
    """
    working = spread_features(dim, WORKING_WIDTH)
    return QueryLayout(dim, working, spread_features(min(dim, WORKING_WIDTH), RESERVOIR_WIDTH))


@functools.cache
def reservoir_features(dim: int) -> NDArray[np.intp] | None:
    """The features of a whole ``dim``-input query that a reservoir row keeps (None: all).

    >>> reservoir_features(20) is None, reservoir_features(64)[:4].tolist()
    (True, [1, 2, 5, 6])
    >>> len(set((reservoir_features(1024) % 32).tolist()))  # columns of a 32 x 32 image
    27
    """
    layout = query_layout(dim)
    working, kept = layout.working, layout.kept
    if working is None or kept is None:
        return kept if working is None else working
    features = working[kept]
    features.setflags(write=False)
    return features


def same_features(generation: int, dim: int, width: int) -> bool:
    """Whether rows ``width`` wide, stored by a release of layout ``generation`` for a
    ``dim``-input model, hold the features this release's rows are compared on: whole
    queries or a narrow input's every feature (``kept_columns`` reads them), or a wide
    input's subset of this generation. Rows of another generation's subset start afresh
    wherever they are stored (a client's query distances, a campaign index).

    >>> [same_features(g, d, w) for g, d, w in ((1, 20, 20), (1, 64, 64), (1, 64, 32), (2, 64, 32))]
    [True, True, False, True]
    """
    return generation == LAYOUT or width >= dim


def kept_columns(codes: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Rows of codes as a reservoir row keeps them, contiguous: whole queries (rows ``dim``
    wide) lose the features ``reservoir_features(dim)`` leaves out, and rows no wider than a
    reservoir row (kept already, or a narrow input's) stay as they are. For every reader of
    whole queries' codes beside a client's rows: the steps null's reference, the extraction
    proxy's validation set and pool, the campaign lineage, a state stored whole.

    >>> kept_columns(np.zeros((2, 64), np.uint8)).shape, kept_columns(np.zeros((2, 20), np.uint8)).shape
    ((2, 32), (2, 20))
    """
    features = reservoir_features(codes.shape[1])
    return np.ascontiguousarray(codes if features is None else codes[:, features], dtype=np.uint8)


def reservoir_capacity(dim: int, classes: int = 0) -> int:
    """Past queries a client's reservoir holds: the byte budget, less what working rows wider
    than WORKING_ALLOWANCE and more than CLASS_ALLOWANCE class counts (``classes``) take,
    over the bytes of a row (its codes and label), at most 128; 72 for an input of 32 to 64
    features, 61 from 256.

    >>> reservoir_capacity(64), reservoir_capacity(20), reservoir_capacity(128), reservoir_capacity(784)
    (72, 114, 68, 61)
    >>> [reservoir_capacity(64, classes=n) for n in (11, 101, 256)]
    [72, 67, 58]
    """
    layout = query_layout(dim)
    working = max(0, 2 * layout.working_width - WORKING_ALLOWANCE)
    counts = min(RESERVOIR_BYTES // 4, CLASS_BYTES * max(0, classes - CLASS_ALLOWANCE))
    return min(128, (RESERVOIR_BYTES - working - counts) // (layout.kept_width + 1))
