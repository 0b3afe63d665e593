"""Alembic migrations of the querywatch schema, shipped inside the package.

Run them with ``querywatch db upgrade`` (see ``querywatch.detector.adapters.db.migrate``), or with the
``alembic`` command: ``alembic -c migrations/alembic.ini upgrade head``.
"""
