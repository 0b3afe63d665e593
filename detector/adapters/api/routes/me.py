"""Who the presented API key is (the dashboard shows admin controls from this)."""

from __future__ import annotations

from fastapi import APIRouter

from querywatch.detector.adapters.api.deps import ReaderKey
from querywatch.detector.adapters.api.routes.responses import READ
from querywatch.detector.adapters.api.schemas import Me

router = APIRouter(prefix="/v1/me", tags=["auth"])


@router.get("", response_model=Me, responses=READ)
def who_am_i(key: ReaderKey) -> Me:
    return Me(key_id=key.key_id, name=key.name, role=key.role)
