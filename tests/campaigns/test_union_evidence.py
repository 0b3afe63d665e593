"""The calibrated tests on a campaign's union are fused as a client's are: nested tests (every
far query is out of profile) count once, by the stronger, not once each."""

from __future__ import annotations

import numpy as np
import pytest

from querywatch.detector.engine.campaigns.campaign import union_evidence
from querywatch.detector.engine.campaigns.held import HeldSummary
from querywatch.detector.engine.campaigns.lineage import LineageIndex
from querywatch.detector.engine.summaries import ClientSummary, IndicatorCounts, cell_bitmap
from querywatch.models.profile import ReferenceProfile
from querywatch.models.registry import EVIDENCE_TESTS


def _far_account(client: str, version: str, queries: int = 300) -> HeldSummary:
    """Every query far from the data, hence also out of profile; no steps (as the stage holds it)."""
    counts = IndicatorCounts(ood=queries, far=queries, scored=queries)
    return HeldSummary.of(
        ClientSummary(
            "m",
            client,
            version,
            1.0,
            queries,
            0.1,
            False,
            counts,
            cell_bitmap(np.ones(8)),
            (1, 1),
            b"",
            8,
            False,
        )
    )


def test_far_queries_are_not_counted_again_as_out_of_profile(profile: ReferenceProfile) -> None:
    members = ["a", "b", "c"]
    summaries = {m: _far_account(m, profile.version) for m in members}
    allowance = 2.7
    union = union_evidence(
        members,
        summaries,
        LineageIndex(profile, null=1e-3),  # no samples: no lineage evidence
        EVIDENCE_TESTS.nulls(profile.calibration),
        profile,
        allowance,
        profile.expected_cells(),
    )
    ood, far = union.pooled["out_of_profile"], union.pooled["far"]
    assert ood > allowance and far > allowance  # both tests see the same far queries
    assert union.lineage == 0.0 and union.pooled["steps"] == 0.0
    # One family, counted by its stronger test (a double count would add the weaker beyond the allowance).
    assert union.total == pytest.approx(max(ood, far))
