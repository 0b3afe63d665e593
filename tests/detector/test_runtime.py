"""The engine's process settings are applied inside the block and undone after it."""

from __future__ import annotations

import gc

from threadpoolctl import threadpool_info

from querywatch.detector.runtime import YOUNG_THRESHOLD, engine_process


def test_engine_process_calms_the_collector_and_restores_it() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with engine_process():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > frozen  # start-up objects are out of the collector's way
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
