"""A small two-class profile (8 inputs, 8 cells) shared by the campaign stage's unit tests."""

from __future__ import annotations

import numpy as np
import pytest

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.profiles import build_profile
from querywatch.models.profile import ReferenceProfile


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    X = rng.random((3000, 8))
    labels = (X[:, 0] > 0.5).astype(int)
    scores = np.stack([1.0 - X[:, 0], X[:, 0]], axis=1)
    settings = DetectionSettings(codebook_size=8, pca_components=4)
    return build_profile(X, model_id="m", settings=settings, labels=labels.tolist(), scores=scores)
