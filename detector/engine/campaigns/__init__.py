"""The campaign stage: accounts linked as one theft, from their client summaries.

``lineage`` finds queries of one account that are structured steps from another's,
``campaign`` holds a campaign and the calibrated tests on its union, ``stage`` decides
links, membership and alerts. Pure logic: the aggregator's Kafka and database wiring lives
in the adapters.
"""
