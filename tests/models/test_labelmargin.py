"""Margins for answers without scores, from the labels of the reference's nearest inputs."""

from __future__ import annotations

import numpy as np

from querywatch.models.answers import with_live_answers
from querywatch.models.labelmargin import LabelNeighbours
from querywatch.models.profile import ReferenceProfile, fit_profile, quantize
from querywatch.models.refresh import Refresh, Window, refresh_profile


def _two_classes(rng: np.random.Generator, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Inputs in the unit square, answered 1 right of x = 0.5."""
    X = rng.uniform(size=(n, 2))
    return X, (X[:, 0] > 0.5).astype(np.int64)


def test_answers_deep_in_a_class_have_high_margins_and_answers_at_the_boundary_low_ones() -> None:
    rng = np.random.default_rng(0)
    X, y = _two_classes(rng)
    codes = quantize(X, np.zeros(2), np.ones(2))
    fitted = LabelNeighbours.fit(codes, y, 3)
    assert fitted is not None
    neighbours, own = fitted
    deep = np.abs(X[:, 0] - 0.5) > 0.2
    edge = np.abs(X[:, 0] - 0.5) < 0.01
    assert own[deep].min() == 1.0 and own[edge].mean() < 0.8
    # An answer its neighbourhood does not give lies below an even vote.
    query = quantize(np.array([[0.1, 0.5], [0.9, 0.5]]), np.zeros(2), np.ones(2))
    margins, entropies = neighbours.margins(query, np.array([1, 0]))
    assert margins.max() < 0.5 and entropies.max() == 0.0
    assert np.isnan(neighbours.margins(query, np.array([-1, -1]))[0]).all()  # no answer, no margin


def test_a_clients_own_rows_do_not_vote_for_its_answers() -> None:
    """One client's 40 copies of an input answered against its neighbourhood (a client of
    another model version, a mislabelled batch): left out by owner, its neighbours say so."""
    rng = np.random.default_rng(1)
    X, y = _two_classes(rng)
    X = np.vstack([X, np.tile([[0.2, 0.5]], (40, 1))])
    y = np.concatenate([y, np.ones(40, dtype=np.int64)])
    owners = np.concatenate([np.arange(3000) % 60, np.full(40, 99)])
    codes = quantize(X, np.zeros(2), np.ones(2))
    by_owner = LabelNeighbours.fit(codes, y, 3, owners=owners)
    by_row = LabelNeighbours.fit(codes, y, 3)
    assert by_owner is not None and by_row is not None
    assert by_owner[1][-40:].max() == 0.0  # every neighbour answers the other class
    assert by_row[1][-40:].min() == 1.0  # its own copies outvote them


def test_a_reference_answered_with_labels_only_ranks_its_answers_by_their_neighbours() -> None:
    """Labels without scores: no boundary threshold (the boundary test stays silent), but
    rank tables for the confidence test, and the neighbours survive a round trip; with
    scores, the neighbours keep tables of their own for answers served without them."""
    rng = np.random.default_rng(2)
    X, y = _two_classes(rng)
    X = np.hstack([X, rng.normal(size=(len(X), 2))])
    profile = fit_profile(X, model_id="m", version="v", labels=y.tolist(), cells=8, components=3)
    assert profile.label_neighbours is not None and profile.margin_threshold == 0.0
    assert profile.calibration is not None and profile.calibration.rank_margins
    loaded = ReferenceProfile.from_bytes(profile.to_bytes())
    assert loaded.label_neighbours is not None
    assert np.array_equal(loaded.label_neighbours.codes, profile.label_neighbours.codes)
    assert np.array_equal(loaded.label_neighbours.classes, profile.label_neighbours.classes)
    scored = fit_profile(
        X,
        model_id="m",
        version="v",
        labels=y.tolist(),
        margins=rng.uniform(size=len(X)),
        cells=8,
        components=3,
    )
    # Scored answers: the boundary as ever, and the neighbours' rank tables for the answers a
    # client asks to get without scores (none where every answer is ranked by its neighbours).
    assert scored.margin_threshold > 0.0 and scored.label_neighbours is not None
    assert scored.label_neighbours.rank_margins and not profile.label_neighbours.rank_margins
    kept = ReferenceProfile.from_bytes(scored.to_bytes()).label_neighbours
    assert kept is not None and kept.rank_margins == scored.label_neighbours.rank_margins
    assert kept.rank_class_means == scored.label_neighbours.rank_class_means


def test_a_trusted_files_live_answers_bring_their_own_neighbours() -> None:
    """A file whose answers wait for live ones (``models.answers``) gets its neighbours from
    those: with scores, tables for the answers served without them; labels only, margins
    every answer is ranked by."""
    rng = np.random.default_rng(3)
    X, _ = _two_classes(rng)
    trusted = fit_profile(X, model_id="m", version="v", margins=np.ones(len(X)), cells=8, components=2)
    assert trusted.answers == "pending" and trusted.label_neighbours is None
    live_X, live_y = _two_classes(rng, 1200)
    owners = np.arange(1200) % 40
    scored = with_live_answers(trusted, live_X, owners, live_y.tolist(), rng.uniform(size=1200))
    labelled = with_live_answers(trusted, live_X, owners, live_y.tolist(), None)
    assert scored.label_neighbours is not None and scored.label_neighbours.beside_scores
    assert scored.margin_threshold > 0.0
    assert labelled.label_neighbours is not None and not labelled.label_neighbours.beside_scores
    assert labelled.margin_threshold == 0.0
    assert labelled.calibration is not None and labelled.calibration.rank_margins


def test_a_refresh_follows_answers_without_scores_to_where_the_labels_are_mixed() -> None:
    """A population pulled onto the boundary between the classes gets neighbour margins below
    the reference's: a refresh takes the rank tables its answers are read by down to the
    sample's, as it does for scores (on a model served with labels only, the calibration's;
    beside scores, the neighbours' own), and a sample deep in the classes moves nothing."""
    rng = np.random.default_rng(4)
    X, y = _two_classes(rng)
    X = np.hstack([X, rng.normal(size=(len(X), 2))])
    owners = np.repeat(np.arange(100), 30)

    def sample(pull: float) -> tuple[np.ndarray, np.ndarray]:
        S, _ = _two_classes(rng)
        S = np.hstack([S, rng.normal(size=(len(S), 2))])
        S[:, 0] = 0.5 + (S[:, 0] - 0.5) * pull
        return S, (S[:, 0] > 0.5).astype(np.int64)

    def tables(p: ReferenceProfile) -> np.ndarray:
        if p.label_neighbours is not None and p.label_neighbours.beside_scores:
            return np.array(p.label_neighbours.rank_margins)
        assert p.calibration is not None
        return np.array(p.calibration.rank_margins)

    for scores in (None, rng.uniform(size=len(X))):
        profile = fit_profile(
            X, model_id="m", version="v", labels=y.tolist(), margins=scores, cells=8, components=3
        )

        def window(
            pull: float, baseline: Window | None, at: float, profile: ReferenceProfile = profile
        ) -> Refresh:
            S, classes = sample(pull)
            unscored = np.full(len(S), np.nan)
            return refresh_profile(
                profile, S, owners, margins=unscored, classes=classes, baseline=baseline, at=at, alpha=1e-4
            )

        first = window(1.0, None, 0.0)
        assert first.window is not None and first.window.unsure is not None
        assert window(1.0, first.window, 1.0).profile is None
        moved = window(0.1, first.window, 2.0).profile
        assert moved is not None and moved.refresh_reason is not None
        old, new = tables(profile), tables(moved)
        assert (new <= old).all() and new.mean() < old.mean() - 0.05
        deep = window(1.0, first.window, 3.0).profile
        assert deep is None or np.array_equal(tables(deep), old)
