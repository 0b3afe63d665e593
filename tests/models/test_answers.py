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


def test_agreement_is_measured_on_inputs_distributed_as_the_files() -> None:
    # The file holds two kinds of input alike; live clients send the first nine times as often.
    rng = np.random.default_rng(1)
    centres = np.zeros((2, 6))
    centres[1, 0] = 6.0
    file_rows = centres[np.repeat([0, 1], 1000)] + rng.normal(size=(2000, 6))
    trusted = fit_profile(file_rows, model_id="m", version="v", margins=np.ones(2000), cells=8)
    kinds = (rng.random(3000) < 0.1).astype(int)
    live = centres[kinds] + rng.normal(size=(3000, 6))
    owners = np.repeat(np.arange(150), 20)
    completed = with_live_answers(trusted, live, owners, kinds.tolist(), rng.uniform(size=3000))
    assert completed.extraction is not None
    # The validation set (the model's answers that "agreement" is measured on) is half of each
    # kind, as the file is, not the one in ten live traffic sends.
    second = float(np.mean(completed.extraction.labels == completed.classes.index("1")))
    assert 0.4 < second < 0.6


def test_the_validation_set_follows_the_files_inputs_within_a_cell() -> None:
    # Two cells (clusters far apart); within each, the first input's sign is the answer. Live
    # clients send positive inputs nine times as often, in both cells alike: weighing events by
    # their cell would keep that, matching each file input to its nearest event does not.
    rng = np.random.default_rng(2)
    centres = np.zeros((2, 6))
    centres[1, 1] = 12.0
    file_rows = centres[np.repeat([0, 1], 1000)] + rng.normal(size=(2000, 6))
    trusted = fit_profile(file_rows, model_id="m", version="v", margins=np.ones(2000), cells=2)
    assert trusted.extraction is None and len(trusted.natural) > 0  # no labels: the sample is kept
    live = centres[rng.integers(0, 2, 3000)] + rng.normal(size=(3000, 6))
    live[:, 0] = np.abs(live[:, 0]) * np.where(rng.random(3000) < 0.1, -1.0, 1.0)
    labels = (live[:, 0] > 0).astype(int).tolist()
    owners = np.repeat(np.arange(150), 20)
    completed = with_live_answers(trusted, live, owners, labels, rng.uniform(size=3000))
    assert completed.extraction is not None and len(completed.natural) == 0
    positive = float(np.mean(completed.extraction.labels == completed.classes.index("1")))
    assert 0.35 < positive < 0.65  # the file's half, not live traffic's nine in ten
