"""Rebuild ``profiles/digits-v1.qwprofile``: the example model's answers on its own training data.

Needs ``querywatch[server]``; run from the repository root:
``python -m examples.model_server.make_profile``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from examples.model_server.server import MODEL_ID, answer, train
from querywatch.detector.adapters.files import DirectoryProfileStore
from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.profiles import build_profile

OUT = Path(__file__).resolve().parent / "profiles"


def main() -> None:
    data, _targets = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(data))
    reference = (data[order] / 16.0)[: int(len(data) * 0.6)]
    answers = answer(train(), reference.tolist())
    profile = build_profile(
        np.round(reference, 3),
        model_id=MODEL_ID,
        settings=DetectionSettings(),
        labels=[a["label"] for a in answers],
        scores=np.array([a["scores"] for a in answers]),
    )
    DirectoryProfileStore(OUT).put(profile)
    print(f"{OUT / (MODEL_ID + '.qwprofile')}: version {profile.version}, {profile.reference_size} inputs")


if __name__ == "__main__":
    main()
