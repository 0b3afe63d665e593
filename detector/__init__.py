"""querywatch's service: configuration, the engine, the pipeline, adapters (database, Kafka,
delivery, API, dashboard) and the command line, in layers whose imports only point down
(``cli`` -> ``adapters`` -> ``pipeline`` -> ``engine`` -> the pure core in
``querywatch.features`` and ``querywatch.models``).

Importing this package loads nothing heavy: the serving tier's client library lives here.
"""

__version__ = "0.1.0"
