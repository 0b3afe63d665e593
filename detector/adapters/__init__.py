"""Everything that talks to the outside: the database (``db``, the only SQL), Kafka,
alert delivery, the HTTP API and the dashboard. Adapters call down into the pipeline and
the engine; nothing below imports them.
"""
