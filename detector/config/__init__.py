"""Static configuration: one frozen ``Settings`` object, one module per section.

Read from ``QUERYWATCH_*`` environment variables (nested sections use a double underscore).
Each section lives in its own module so that work on one concern does not touch the others;
per-model runtime policy lives in the database, not here.
"""

from __future__ import annotations

from querywatch.detector.config.alerts import AlertSettings
from querywatch.detector.config.api import ApiSettings
from querywatch.detector.config.campaigns import CampaignSettings
from querywatch.detector.config.database import DatabaseSettings
from querywatch.detector.config.detection import DetectionSettings
from querywatch.detector.config.inputs import InputSettings
from querywatch.detector.config.kafka import KafkaSettings
from querywatch.detector.config.outages import OutageSettings
from querywatch.detector.config.residency import ResidencySettings
from querywatch.detector.config.settings import Settings
from querywatch.detector.config.stream import StreamSettings
from querywatch.detector.config.webhooks import WebhookSettings

__all__ = [
    "AlertSettings",
    "ApiSettings",
    "CampaignSettings",
    "DatabaseSettings",
    "DetectionSettings",
    "InputSettings",
    "KafkaSettings",
    "OutageSettings",
    "ResidencySettings",
    "Settings",
    "StreamSettings",
    "WebhookSettings",
]
