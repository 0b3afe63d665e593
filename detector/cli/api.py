"""``querywatch serve`` and ``querywatch apikey create|list|revoke``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db.apikeys import create_api_key, list_api_keys, revoke_api_key
from querywatch.detector.adapters.db.session import (
    check_migrated,
    make_engine,
    make_sessionmaker,
    transaction,
)
from querywatch.detector.adapters.db.tables import API_ROLES
from querywatch.detector.cli.checks import free_port, port_number
from querywatch.detector.cli.output import add_output_options, print_json
from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import Settings
from querywatch.detector.errors import QuerywatchError
from querywatch.detector.logging import configure_logging


def register(subparsers: Any) -> None:
    serve = add_command(subparsers, "serve", summary="run the HTTP API (QUERYWATCH_API__HOST / __PORT)")
    serve.add_argument("--host", help="override QUERYWATCH_API__HOST")
    serve.add_argument("--port", type=port_number, help="override QUERYWATCH_API__PORT")
    serve.set_defaults(run=run_serve)

    apikey = add_command(subparsers, "apikey", summary="create, list or revoke API keys")
    actions = apikey.add_subparsers(dest="apikey_command", required=True, metavar="ACTION")
    create = add_command(actions, "create", summary="create a key and print it (shown only this once)")
    create.add_argument("--role", required=True, choices=API_ROLES)
    create.add_argument("--name", default="", help="who or what uses the key (shown in the audit log)")
    add_output_options(create)
    create.set_defaults(run=run_create)
    listing = add_command(actions, "list", summary="list keys (never their secrets)")
    add_output_options(listing)
    listing.set_defaults(run=run_list)
    revoke = add_command(actions, "revoke", summary="revoke a key by id")
    revoke.add_argument("key_id", type=int)
    revoke.set_defaults(run=run_revoke)


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.api.host
    port = settings.api.port if args.port is None else args.port
    free_port(host, port)
    import uvicorn

    from querywatch.detector.adapters.api.app import create_app

    engine = make_engine(settings.database)
    try:
        check_migrated(engine)  # stop here with a clear message, before uvicorn starts
    finally:
        engine.dispose()
    configure_logging(settings)  # JSON lines as every long-running command writes (uvicorn's own too)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
    return 0


def run_create(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database)
    try:
        check_migrated(engine)
        with transaction(make_sessionmaker(engine)) as session:
            key = create_api_key(session=session, role=args.role, name=args.name or f"{args.role}-key")
            audit.record(
                session=session,
                actor="cli",
                action="apikey.create",
                target=f"apikey:{key.id}",
                detail={"role": key.role},
            )
    finally:
        engine.dispose()
    if args.json:
        print_json(
            "apikey", {"keys": [{"id": key.id, "role": key.role, "name": key.name, "secret": key.secret}]}
        )
        return 0
    print(key.secret, flush=True)  # alone on stdout, so that KEY=$(querywatch apikey create …) is the key
    print(
        f"# key #{key.id} {key.name!r}, role {key.role}: store it now, it is not shown again.",
        file=sys.stderr,
    )
    return 0


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database)
    try:
        check_migrated(engine)
        with make_sessionmaker(engine)() as session:
            keys = list_api_keys(session=session)
    finally:
        engine.dispose()
    if args.json:
        rows = [
            {
                "id": k.id,
                "role": k.role,
                "name": k.name,
                "prefix": k.prefix,
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in keys
        ]
        print_json("apikey", {"keys": rows})
        return 0
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        print(f"{k.id}\t{k.role}\t{state}\tqw_{k.prefix}_…\t{k.name}")
    return 0


def run_revoke(args: argparse.Namespace, settings: Settings) -> int:
    engine = make_engine(settings.database)
    try:
        check_migrated(engine)
        with transaction(make_sessionmaker(engine)) as session:
            revoked = revoke_api_key(session=session, key_id=args.key_id)
            if revoked:
                audit.record(
                    session=session, actor="cli", action="apikey.revoke", target=f"apikey:{args.key_id}"
                )
    finally:
        engine.dispose()
    if not revoked:
        raise QuerywatchError(f"no active key #{args.key_id}", hint="`querywatch apikey list` shows the keys")
    print(f"key #{args.key_id} revoked")
    return 0
