"""The detection engine: events in, per-(client, model) state, outcomes out. No I/O.

``events`` validates raw messages, ``detector`` keeps each client's state and scores it
with the pure core (``querywatch.features``, ``querywatch.models``), ``outcomes`` are the
values it emits (risk updates, alerts), ``profiles`` builds a model's reference profile.
"""
