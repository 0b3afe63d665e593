"""Client summaries: their wire form and what a holder of many keeps of each."""

from __future__ import annotations

from dataclasses import replace

import msgpack

from querywatch.detector.engine.grouping import NO_KEYS, GroupingKeys
from querywatch.detector.engine.summaries import ClientSummary, IndicatorCounts, example_summary


def test_the_counts_keep_their_wire_form_a_dict_by_name() -> None:
    summary = example_summary()
    plain = msgpack.unpackb(summary.to_bytes(), raw=False)
    assert plain["counts"] == {"ood": 1, "far": 0, "boundary": 2, "scored": 16, "steps": 3, "exact": 0}
    assert list(plain["counts"]) == list(IndicatorCounts._fields)  # the order older releases wrote


def test_counts_a_summary_lacks_are_zero_and_unknown_ones_are_dropped() -> None:
    plain = msgpack.unpackb(example_summary().to_bytes(), raw=False)
    plain["counts"] = {"ood": 4, "scored": 9, "novel": 2}
    back = ClientSummary.from_bytes(msgpack.packb(plain, use_bin_type=True))
    assert back.counts == IndicatorCounts(ood=4, scored=9)
    assert back.counts.steps == 0 and not hasattr(back.counts, "novel")


def test_clients_with_no_source_share_one_keys_value() -> None:
    assert GroupingKeys.of([], [], None) is NO_KEYS
    assert GroupingKeys.of([], [], None, salt="s") is NO_KEYS
    assert GroupingKeys.of(["203.0.113.7"], [], None) != NO_KEYS
    blank = replace(example_summary(), keys=GroupingKeys())
    assert ClientSummary.from_bytes(blank.to_bytes()).keys is NO_KEYS
