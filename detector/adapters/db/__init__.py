"""All SQL of querywatch: tables, plain storage functions, checkpoints, dead letters and
the delivery outbox (SQLAlchemy; SQLite embedded, PostgreSQL in production).

Nothing outside this package (and ``querywatch.migrations``) imports SQLAlchemy: the other
layers use the names re-exported by ``session`` (``Session``, ``SessionFactory``,
``DatabaseError``).
"""
