"""Alembic migrations of the querywatch schema, shipped inside the package.

Run them with ``querywatch db upgrade`` (see ``detector.storage.migrate``), or with the
``alembic`` command: ``alembic -c migrations/alembic.ini upgrade head``.
"""
