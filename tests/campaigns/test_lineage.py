"""Shared lineage between two clients' samples, and the bound on the work a summary costs: a
sample is compared with the newest ``BUCKET_ROWS`` live rows of each cell only, and the table
keeps no more."""

from __future__ import annotations

import numpy as np
import pytest

from querywatch.detector.engine.campaigns import lineage
from querywatch.detector.engine.campaigns.lineage import LineageIndex, code_cells
from querywatch.models.profile import ReferenceProfile


def _family(profile: ReferenceProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parents in one cell, their children (three features moved by 20 codes: a structured
    step, in the same cell) and a filler row of that cell that is no step from any child."""
    codes = profile.view(np.random.default_rng(1).random((400, 8))).quantized
    children = codes.copy()
    children[:, :3] = np.minimum(children[:, :3].astype(int) + 20, 255).astype(np.uint8)
    cells, child_cells = code_cells(profile, codes), code_cells(profile, children)
    cell = np.bincount(cells[cells == child_cells]).argmax()
    room = codes[:, :3].max(axis=1) < 230  # no move clipped at the top of the range
    keep = np.flatnonzero((cells == cell) & (child_cells == cell) & room)[:12]
    filler = keep[-1]
    return codes[keep[:-1]], children[keep[:-1]], np.repeat(codes[filler : filler + 1], 4, axis=0)


def test_a_child_account_is_linked_to_its_parents_account(profile: ReferenceProfile) -> None:
    parents, children, _ = _family(profile)
    index = LineageIndex(profile, null=1e-3)
    assert index.update("parent", parents).relations == {}
    found = index.update("child", children)
    assert found.relations == {"parent": len(children)}
    assert index.hits["parent"] == {"child": len(children)}
    assert index.trials("parent", "child") == len(parents) * len(children)
    index.remove("parent")
    assert index.hits["child"] == {} and index.trials("parent", "child") == 0


def test_a_summary_meets_only_the_newest_rows_of_its_cell(
    profile: ReferenceProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lineage, "BUCKET_ROWS", 16)
    parents, children, filler = _family(profile)
    index = LineageIndex(profile, null=1e-3)
    index.update("parent", parents)
    for k in range(5):  # 20 newer rows in the parents' cell
        index.update(f"filler-{k}", filler)
    assert index.update("child", children).relations == {}
    index.update("parent", parents)  # its next sample: the newest rows again
    assert index.update("child", children).relations == {"parent": len(children)}
    index._compact(extra=0)
    live = index._owners[: index._used] >= 0
    assert np.bincount(index._cells[: index._used][live]).max() <= 16


def test_an_exported_index_loads_back_with_the_same_newest_rows_counts_and_hits(
    profile: ReferenceProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lineage, "BUCKET_ROWS", 16)
    parents, children, filler = _family(profile)
    index = LineageIndex(profile, null=1e-3)
    index.update("parent", parents)
    index.update("child", children)
    for k in range(5):  # newer rows in the cell: the parents' fall out of its newest 16
        index.update(f"filler-{k}", filler)
    index.remove("filler-0")
    loaded = LineageIndex(profile, null=1e-3)
    loaded.load(index.export())
    assert loaded.hits == index.hits and len(loaded) == len(index)
    assert loaded.trials("parent", "child") == index.trials("parent", "child")
    # the same newest rows: the parents are not among them, until their next sample
    assert loaded.update("child-2", children).relations == index.update("child-2", children).relations == {}
    index.update("parent", parents)
    loaded.update("parent", parents)
    assert loaded.update("child-3", children).relations == index.update("child-3", children).relations
    assert "parent" in index.hits["child-3"]


def test_one_record_related_to_many_members_is_one_relation_with_them(profile: ReferenceProfile) -> None:
    """A campaign deals one seed's children over its accounts: a client that sent the seed
    relates to every account that holds one, yet by one row of its own; a client that sent
    every account's seed relates by as many rows as there are accounts."""
    parents, children, _ = _family(profile)
    index = LineageIndex(profile, null=1e-3)
    members = [f"member-{k}" for k in range(5)]
    for member in members:  # each holds a child of the first seed
        index.update(member, children[:1])
    one_seed = index.update("sent-one-seed", parents[:1])
    assert one_seed.relations == dict.fromkeys(members, 1)
    assert one_seed.with_clients(members) == 1
    dealt = [f"dealt-{k}" for k in range(len(children))]
    for account, child in zip(dealt, children, strict=True):  # one child of each seed
        index.update(account, child[None, :])
    every_seed = index.update("sent-every-seed", parents)
    assert every_seed.with_clients(dealt) == len(children)


def test_a_wide_inputs_rows_are_compared_on_the_features_a_reservoir_row_keeps() -> None:
    from querywatch.detector.config import DetectionSettings
    from querywatch.detector.engine.profiles import build_profile
    from querywatch.features.layout import reservoir_features

    rng = np.random.default_rng(3)
    X = rng.random((3000, 64))
    settings = DetectionSettings(codebook_size=8, pca_components=4)
    wide = build_profile(X, model_id="w", settings=settings, labels=(X[:, 0] > 0.5).astype(int).tolist())
    features = reservoir_features(64)
    assert features is not None and lineage.reference_null(wide) is not None
    codes = wide.view(rng.random((40, 64))).quantized
    children = codes.copy()
    children[:, features[:8]] = np.minimum(children[:, features[:8]].astype(int) + 20, 255).astype(np.uint8)
    index = LineageIndex(wide, null=1e-3)
    index.update("parent", codes[:, features])  # a summary's sample: reservoir rows
    # whole queries (a summary of a release that kept them) are compared on the same features
    found = index.update("child", children)
    assert sum(found.relations.values()) > 0 and index._codes.shape[1] == len(features)
    old = index.export()
    old["codes"] = np.vstack([codes, children]).tobytes()  # an index exported with whole rows
    loaded = LineageIndex(wide, null=1e-3)
    loaded.load(old)
    assert np.array_equal(loaded._codes[: loaded._used], index._codes[: index._used])
