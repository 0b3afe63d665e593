"""Kafka adapters: the consumer group that drives the engine, its checkpoints, dead letters and outputs.

Kafka does the distributing (partitions, group membership, rebalances); the database is the
state store. See ``detector.kafka.consumer`` for the exactly-once argument.
"""
