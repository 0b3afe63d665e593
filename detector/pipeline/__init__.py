"""The processing chain shared by replay and consume: decode -> dedup -> score -> route.

It drives the engine over a source of raw events and hands outcomes to the adapters.
"""
