"""A trusted profile completed from live answers (``models.answers``)."""

from __future__ import annotations

import numpy as np

from querywatch.models.answers import with_live_answers
from querywatch.models.profile import ReferenceProfile, fit_profile


def _trusted(rng: np.random.Generator) -> ReferenceProfile:
    saturated = np.ones(2000)  # every answer's top score 1.0: no boundary to learn from
    return fit_profile(rng.normal(size=(2000, 6)), model_id="m", version="v", margins=saturated, cells=8)


def _live(profile: ReferenceProfile, X: np.ndarray, rng: np.random.Generator) -> ReferenceProfile:
    owners = np.repeat(np.arange(len(X) // 20), 20)
    return with_live_answers(profile, X, owners, None, rng.uniform(size=len(X)))


def test_live_traffic_unlike_the_file_is_said_in_the_profiles_reason() -> None:
    rng = np.random.default_rng(0)
    trusted = _trusted(rng)
    assert trusted.answers == "pending"
    alike = _live(trusted, rng.normal(size=(1000, 6)), rng)
    noisier = _live(trusted, rng.normal(size=(1000, 6)) * 1.6, rng)
    assert alike.answers == noisier.answers == "live" and alike.margin_threshold > 0
    assert alike.refresh_reason is not None and "may not describe" not in alike.refresh_reason
    assert noisier.refresh_reason is not None and "may not describe" in noisier.refresh_reason
    # The file's geometry stays whatever the live traffic looks like.
    assert noisier.ood_threshold == alike.ood_threshold == trusted.ood_threshold


def _two_clusters(rng: np.random.Generator, gap: float, cells: int) -> tuple[np.ndarray, ReferenceProfile]:
    """Centres of two clusters ``gap`` apart (along the second input), and a trusted profile
    (no labels, saturated answers) of a file holding 1,000 inputs of each."""
    centres = np.zeros((2, 6))
    centres[1, 1] = gap
    file_rows = centres[np.repeat([0, 1], 1000)] + rng.normal(size=(2000, 6))
    return centres, fit_profile(file_rows, model_id="m", version="v", margins=np.ones(2000), cells=cells)


def _validation_share(
    trusted: ReferenceProfile, live: np.ndarray, labels: list[int], rng: np.random.Generator
) -> tuple[ReferenceProfile, float]:
    """The profile completed from live answers ``labels``, and the share of class 1 in its
    extraction validation set (the model's answers that "agreement" is measured on)."""
    owners = np.repeat(np.arange(len(live) // 20), 20)
    completed = with_live_answers(trusted, live, owners, labels, rng.uniform(size=len(live)))
    assert completed.extraction is not None
    return completed, float(np.mean(completed.extraction.labels == completed.classes.index("1")))


def test_agreement_is_measured_on_inputs_distributed_as_the_files() -> None:
    # The file holds two kinds of input alike; live clients send the second one in ten times.
    rng = np.random.default_rng(1)
    centres, trusted = _two_clusters(rng, gap=6.0, cells=8)
    kinds = (rng.random(3000) < 0.1).astype(int)
    _, second = _validation_share(trusted, centres[kinds] + rng.normal(size=(3000, 6)), kinds.tolist(), rng)
    assert 0.4 < second < 0.6  # half of each kind, as the file is


def test_the_validation_set_follows_the_files_inputs_within_a_cell() -> None:
    # Two cells (clusters far apart); within each, the first input's sign is the answer. Live
    # clients send positive inputs nine times as often, in both cells alike: weighing events by
    # their cell would keep that, matching each file input to its nearest event does not.
    rng = np.random.default_rng(2)
    centres, trusted = _two_clusters(rng, gap=12.0, cells=2)
    assert trusted.extraction is None and len(trusted.natural) > 0  # no labels: the sample is kept
    live = centres[rng.integers(0, 2, 3000)] + rng.normal(size=(3000, 6))
    live[:, 0] = np.abs(live[:, 0]) * np.where(rng.random(3000) < 0.1, -1.0, 1.0)
    completed, positive = _validation_share(trusted, live, (live[:, 0] > 0).astype(int).tolist(), rng)
    assert len(completed.natural) == 0
    assert 0.35 < positive < 0.65  # the file's half, not live traffic's nine in ten
