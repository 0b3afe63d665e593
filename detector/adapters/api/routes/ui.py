"""What the dashboard needs besides the resource API: the thresholds it draws and how often
it refreshes. Included by :func:`querywatch.detector.adapters.ui.mount.mount_ui`, next to the static files."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from querywatch.detector.adapters.api.deps import ReaderKey, SettingsDep
from querywatch.detector.adapters.api.routes.responses import READ

router = APIRouter(prefix="/v1/ui", tags=["dashboard"])

#: Seconds between two refreshes of an open dashboard view (one indexed query each).
REFRESH_SECONDS = 5.0


class DashboardConfig(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "alert_risk": 0.8,
                    "clear_risk": 0.5,
                    "degrade_risk": 0.5,
                    "block_risk": 0.9,
                    "refresh_seconds": 5.0,
                }
            ]
        }
    )

    alert_risk: float = Field(description="Risk at which an alert opens (drawn on the risk plot).")
    clear_risk: float = Field(description="Risk below which an open alert closes.")
    degrade_risk: float = Field(description="Risk at which the serving decision becomes 'degrade'.")
    block_risk: float = Field(description="Risk at which the serving decision becomes 'block'.")
    refresh_seconds: float = Field(description="How often open views poll the API.")


@router.get("/config", response_model=DashboardConfig, responses=READ)
def dashboard_config(settings: SettingsDep, _key: ReaderKey) -> DashboardConfig:
    """Thresholds and refresh interval for the dashboard (any valid key)."""
    return DashboardConfig(
        alert_risk=settings.detection.alert_risk,
        clear_risk=settings.detection.clear_risk,
        degrade_risk=settings.api.degrade_risk,
        block_risk=settings.api.block_risk,
        refresh_seconds=REFRESH_SECONDS,
    )
