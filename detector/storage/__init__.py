"""Durable storage of everything the engine decides: tables, migrations and plain crud functions."""
