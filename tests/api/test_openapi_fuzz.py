"""Property-based run of every operation in the OpenAPI document against a live server.

Schemathesis generates requests from the schema (valid and invalid); with an admin key the
API must never answer 5xx, and every answer must match the documented responses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.seed import seed_client
from tests.api.server import ApiServer, running_api
from tests.storage.databases import KINDS, migrated_database


@pytest.fixture(scope="module", params=KINDS)
def live_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp_path: Path = tmp_path_factory.mktemp("fuzz")
    with migrated_database(str(request.param), tmp_path) as db_settings, running_api(db_settings) as server:
        for i in range(5):
            seed_client(server.sessions, f"acct-{i}", i / 5, alert=i >= 3)
        yield server


@pytest.fixture(scope="module")
def api_schema(live_api: ApiServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live_api.base_url}/openapi.json")


def operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    paths = {op.path for op in operations(api_schema)}
    assert {
        "/v1/clients",
        "/v1/clients/{client_id}/decision",
        "/v1/alerts/{alert_id}/resolve",
        "/readyz",
    } <= paths


def test_no_server_errors_and_documented_responses(
    api_schema: schemathesis.BaseSchema, live_api: ApiServer
) -> None:
    for operation in operations(api_schema):

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call_and_check(case: schemathesis.Case) -> None:
            response = case.call(headers=live_api.admin_headers, timeout=10)
            case.validate_response(
                response,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

        call_and_check()
