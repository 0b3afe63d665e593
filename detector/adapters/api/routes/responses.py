"""The problem responses routes declare, so the OpenAPI document lists every status they return."""

from __future__ import annotations

from typing import Any

from querywatch.detector.adapters.api.problems import PROBLEM_JSON
from querywatch.detector.adapters.api.schemas import Problem


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Bad request (e.g. a cursor this API did not return).",
        401: "Missing, unknown or revoked API key.",
        403: "The API key's role does not allow this.",
        404: "No such resource.",
        409: "The resource is not in a state that allows this action.",
        422: "The request does not match the schema.",
        503: "The database is unreachable or not migrated.",
    }
    return {
        status: {"model": Problem, "description": descriptions[status], "content": {PROBLEM_JSON: {}}}
        for status in statuses
    }


READ = problems(401, 422)
ADMIN = problems(401, 403, 422)
