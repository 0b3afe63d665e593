"""Served models: profile versions, clients seen and open alerts per model."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from querywatch.detector.adapters.api.deps import ReaderKey, SessionDep
from querywatch.detector.adapters.api.routes.responses import READ
from querywatch.detector.adapters.api.schemas import ModelPublic
from querywatch.detector.adapters.db.profiles import model_summaries

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=list[ModelPublic], responses=READ)
def list_models(session: SessionDep, _key: ReaderKey) -> list[ModelPublic]:
    """Every model known from a stored profile, a client or an alert."""
    return [ModelPublic(**asdict(summary)) for summary in model_summaries(session=session)]
