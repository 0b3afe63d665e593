"""querywatch adapters: configuration, events, engine, Kafka, storage, delivery, API and CLI.

The pure computation lives in the sibling packages ``features`` and ``models``.
"""

__version__ = "0.1.0"
