"""Kafka adapters: the consumer group that drives the engine, its checkpoints, dead letters and outputs.

Kafka does the distributing (partitions, group membership, rebalances); the database is the
state store. See ``querywatch.detector.adapters.kafka.consumer`` for the exactly-once argument.
"""
