"""Translate ``KafkaSettings`` into keyword arguments for kafka-python's clients.

One place decides how querywatch talks to Kafka (servers, TLS, SASL), so that the consumer,
the producers and the admin client connect the same way. Security options are passed
through unchanged: kafka-python validates them and reports what is wrong.
"""

from __future__ import annotations

from typing import Any

from querywatch.detector.client.sinks import broker_addresses
from querywatch.detector.config import KafkaSettings
from querywatch.detector.errors import ConfigError

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def connection_kwargs(settings: KafkaSettings, *, role: str) -> dict[str, Any]:
    """Arguments every kafka-python client needs: servers, client id and security.

    ``role`` ("consumer", "producer", "admin" ...) is appended to the client id, so that
    broker logs and quotas tell querywatch's clients apart.

    >>> from querywatch.detector.config import KafkaSettings
    >>> kw = connection_kwargs(KafkaSettings(bootstrap_servers="b1:9092,b2:9092"), role="admin")
    >>> kw["bootstrap_servers"], kw["client_id"], kw["security_protocol"]
    (['b1:9092', 'b2:9092'], 'querywatch-admin', 'PLAINTEXT')
    """
    if not settings.bootstrap_servers:
        raise ConfigError("no Kafka brokers configured: set QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS")
    try:
        servers = broker_addresses(settings.bootstrap_servers)
    except ValueError as exc:
        raise ConfigError(
            f"kafka.bootstrap_servers: {exc}",
            hint="comma-separated host:port pairs, e.g. kafka-0:9092,kafka-1:9092",
        ) from None
    protocol = settings.security_protocol.upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"kafka.security_protocol {settings.security_protocol!r} is not one of {SECURITY_PROTOCOLS}"
        )
    kwargs: dict[str, Any] = {
        "bootstrap_servers": servers,
        "client_id": f"{settings.client_id}-{role}",
        "security_protocol": protocol,
    }
    if protocol.startswith("SASL"):
        if not settings.sasl_mechanism:
            raise ConfigError(f"kafka.security_protocol {protocol} needs kafka.sasl_mechanism")
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        if settings.sasl_username is not None:
            kwargs["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            kwargs["sasl_plain_password"] = settings.sasl_password
    if protocol in ("SSL", "SASL_SSL"):
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(settings, name)
            if value is not None:
                kwargs[name] = value
    return kwargs


def consumer_kwargs(settings: KafkaSettings, *, heartbeats_per_session: int = 3) -> dict[str, Any]:
    """A consumer-group member with manual commits that never skips data on a missing offset.

    Offsets come from the database (see ``querywatch.detector.adapters.db.checkpoints``); Kafka-side commits
    are only informational, so auto-commit is off. ``start_from`` covers partitions nobody
    has checkpointed yet. A member hears of a rebalance at its next heartbeat, sent
    ``heartbeats_per_session`` times per session timeout (Kafka's usual three; the campaign
    aggregator's standby takes ten, to hear sooner that the active one died).

    >>> from querywatch.detector.config import KafkaSettings
    >>> settings = KafkaSettings(bootstrap_servers="b:9092", session_timeout_ms=6000)
    >>> [consumer_kwargs(settings, heartbeats_per_session=n)["heartbeat_interval_ms"] for n in (3, 10)]
    [2000, 600]
    """
    return {
        **connection_kwargs(settings, role="consumer"),
        "group_id": settings.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": settings.start_from,
        "max_poll_records": settings.max_poll_records,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": max(100, settings.session_timeout_ms // heartbeats_per_session),
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "key_deserializer": None,
        "value_deserializer": None,
    }


def producer_kwargs(settings: KafkaSettings, *, role: str = "producer") -> dict[str, Any]:
    """A producer that waits for all in-sync replicas and retries without reordering."""
    return {
        **connection_kwargs(settings, role=role),
        "acks": "all",
        "linger_ms": 5,
        "max_in_flight_requests_per_connection": 1,
    }
