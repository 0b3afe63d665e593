"""One frozen Settings object, from defaults, an optional TOML file and ``QUERYWATCH_*`` variables.

Nested sections use a double underscore: ``QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS``,
``QUERYWATCH_DATABASE__URL``. Build it once in ``main()`` (``sources.load_settings``) or the
app's lifespan and pass it down; nothing reads the environment at import time.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from querywatch.detector.config.alerts import AlertSettings
from querywatch.detector.config.api import ApiSettings
from querywatch.detector.config.campaigns import CampaignSettings
from querywatch.detector.config.database import DatabaseSettings
from querywatch.detector.config.detection import DetectionSettings
from querywatch.detector.config.inputs import InputSettings
from querywatch.detector.config.kafka import KafkaSettings
from querywatch.detector.config.outages import OutageSettings
from querywatch.detector.config.residency import ResidencySettings
from querywatch.detector.config.sources import customised_sources
from querywatch.detector.config.stream import StreamSettings
from querywatch.detector.config.webhooks import WebhookSettings


class Settings(BaseSettings):
    """Everything querywatch can be told, with its environment variable and default."""

    model_config = SettingsConfigDict(
        env_prefix="QUERYWATCH_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    detection: DetectionSettings = DetectionSettings()
    alerts: AlertSettings = AlertSettings()
    campaigns: CampaignSettings = CampaignSettings()
    database: DatabaseSettings = DatabaseSettings()
    kafka: KafkaSettings = KafkaSettings()
    api: ApiSettings = ApiSettings()
    webhooks: WebhookSettings = WebhookSettings()
    inputs: InputSettings = InputSettings()
    outages: OutageSettings = OutageSettings()
    stream: StreamSettings = StreamSettings()
    residency: ResidencySettings = ResidencySettings()
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="`consume` and `dispatch` serve Prometheus metrics at /metrics on this port "
        "(no key needed; the API serves its own). Unset: none.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the metrics port of `consume` and `dispatch` binds."
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR.")
    log_json: bool = Field(True, description="Structured JSON logs on stderr.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Defaults < the config file < ``*_FILE`` secrets < environment < arguments in code."""
        return customised_sources(settings_cls, init_settings, env_settings)
