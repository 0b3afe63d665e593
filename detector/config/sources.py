"""Where settings come from: defaults < a TOML file < ``*_FILE`` secrets < environment.

``load_settings`` is what commands call. The TOML file (``--config FILE`` or
``QUERYWATCH_CONFIG_FILE``) uses the section names of ``Settings``::

    log_level = "DEBUG"
    [kafka]
    bootstrap_servers = "kafka-1:9092"

Secrets can come from files instead of the environment (Docker and Kubernetes secrets):
``QUERYWATCH_DATABASE__URL_FILE=/run/secrets/db-url`` reads the URL from that file.
A ``QUERYWATCH_*`` variable that names no setting is reported with the closest one, since
pydantic would ignore it silently.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError

from querywatch.detector.config.database import shown_url
from querywatch.detector.errors import InputError, UsageError

PREFIX = "QUERYWATCH_"
CONFIG_FILE_VARIABLE = PREFIX + "CONFIG_FILE"
#: Settings whose value may be read from a file named by ``<variable>_FILE``.
SECRET_SETTINGS = (("database", "url"), ("kafka", "sasl_password"))
#: Variables of the test suite, not settings.
RESERVED_PREFIXES = (PREFIX + "TEST_",)

_config_file: ContextVar[Path | None] = ContextVar("querywatch_config_file", default=None)


def variable(path: tuple[str, ...]) -> str:
    """The environment variable of a setting.

    >>> variable(("kafka", "bootstrap_servers"))
    'QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS'
    """
    return PREFIX + "__".join(path).upper()


def leaf_paths(
    model: type[BaseModel], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    """Every leaf setting's path (section, name) and field, in declaration order."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from leaf_paths(annotation, (*path, name))
        else:
            yield (*path, name), field


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML file's values, or an ``InputError`` that names the file and the problem."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not a readable TOML config file: {exc}") from None


def _secret_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in SECRET_SETTINGS:
        name = variable(path) + "_FILE"
        if name not in environ:
            continue
        try:
            secret = Path(environ[name]).read_text().strip()
        except OSError as exc:
            raise InputError(f"{name}: cannot read {environ[name]}: {exc.strerror}") from None
        values.setdefault(path[0], {})[path[1]] = secret
    return values


class _WholeSource(PydanticBaseSettingsSource):
    """A source whose ``__call__`` returns all its values at once (no per-field look-up)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False


class ConfigFileSource(_WholeSource):
    """The TOML file chosen by ``load_settings`` (none outside it)."""

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        return read_config_file(path) if path is not None else {}


class SecretFileSource(_WholeSource):
    """``QUERYWATCH_<SETTING>_FILE`` variables of the settings in ``SECRET_SETTINGS``."""

    def __call__(self) -> dict[str, Any]:
        return _secret_values(os.environ)


class EnvironmentSource(_WholeSource):
    """The environment, less the ``*_FILE`` variables (they name files, not values)."""

    def __init__(self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._env = env

    def __call__(self) -> dict[str, Any]:
        values = self._env()
        for section, name in SECRET_SETTINGS:
            if isinstance(values.get(section), dict):
                values[section].pop(f"{name}_file", None)
        return values


def customised_sources(
    settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource, env: PydanticBaseSettingsSource
) -> tuple[PydanticBaseSettingsSource, ...]:
    """Highest first: arguments in code, the environment, secret files, the config file."""
    return (
        init,
        EnvironmentSource(settings_cls, env),
        SecretFileSource(settings_cls),
        ConfigFileSource(settings_cls),
    )


def config_file_from(config_file: Path | None, environ: Mapping[str, str]) -> Path | None:
    """``--config`` if given, else ``QUERYWATCH_CONFIG_FILE``, else none."""
    if config_file is not None:
        return config_file
    named = environ.get(CONFIG_FILE_VARIABLE)
    return Path(named) if named else None


def load_settings(config_file: Path | None = None) -> Any:
    """The Settings of a command: defaults, the config file, secret files and the environment.

    An invalid value is a ``UsageError`` that names the setting and where it came from.
    """
    from querywatch.detector.config.settings import Settings

    chosen = config_file_from(config_file, os.environ)
    token = _config_file.set(chosen)
    try:
        return Settings()
    except SettingsError as exc:  # a list or mapping that is not JSON, before any validation
        raise UsageError(
            f"invalid setting: {_not_json(Settings, os.environ) or exc}",
            hint='a list is written as JSON, e.g. ["127.0.0.1", "10.0.0.0/8"]; a mapping as {"name": value}',
        ) from None
    except ValidationError as exc:
        leaves = [path for path, _ in leaf_paths(Settings)]
        known = sorted({".".join(path) for path in leaves} | {path[0] for path in leaves})
        problems = "; ".join(
            _problem(tuple(str(p) for p in error["loc"]), error["msg"], error["type"], chosen, known)
            for error in exc.errors()
        )
        raise UsageError(
            f"invalid setting: {problems}",
            hint="`querywatch config show` lists every setting and its variable, once this one is fixed",
        ) from None
    finally:
        _config_file.reset(token)


def _not_json(model: type[BaseModel], environ: Mapping[str, str]) -> str | None:
    """The variable of a list, tuple or mapping setting whose value is not JSON, which is what
    pydantic-settings reports as a parsing error of the whole section, naming no variable.

    >>> from querywatch.detector.config.settings import Settings
    >>> _not_json(Settings, {"QUERYWATCH_WEBHOOKS__ALLOW_HOSTS": "127.0.0.1"})
    "QUERYWATCH_WEBHOOKS__ALLOW_HOSTS: '127.0.0.1' is not JSON"
    """
    for path, field in leaf_paths(model):
        raw = environ.get(variable(path))
        kinds = {get_origin(a) or a for a in (field.annotation, *get_args(field.annotation))}
        if raw is None or not kinds & {tuple, list, dict, set, frozenset}:
            continue
        try:
            json.loads(raw)
        except ValueError:
            return f"{variable(path)}: {raw!r} is not JSON"
    return None


def _problem(
    path: tuple[str, ...], message: str, kind: str, config_file: Path | None, known: list[str]
) -> str:
    """One invalid setting, named as the user wrote it: a variable, or a key of the config file,
    with the setting it most likely meant when it names none.

    >>> _problem(("detection", "alert_rsk"), "Extra inputs are not permitted", "extra_forbidden",
    ...          Path("qw.toml"), ["detection.alert_risk", "api.port"])
    'detection.alert_rsk in qw.toml: Extra inputs are not permitted; did you mean detection.alert_risk?'
    """
    name = variable(path)
    if name in os.environ or config_file is None:
        where = name
    elif name + "_FILE" in os.environ:
        where = f"{name}_FILE ({os.environ[name + '_FILE']})"
    else:
        where = f"{'.'.join(path)} in {config_file}"
    close = (
        difflib.get_close_matches(".".join(path), known, n=1, cutoff=0.6) if kind == "extra_forbidden" else []
    )
    return f"{where}: {message}" + (f"; did you mean {close[0]}?" if close else "")


def unknown_variables(environ: Mapping[str, str], known: list[str]) -> list[tuple[str, str | None]]:
    """``QUERYWATCH_*`` variables that name no setting, each with the closest setting's name.

    >>> unknown_variables({"QUERYWATCH_KAFKA_TOPIC": "x", "HOME": "/"}, ["QUERYWATCH_KAFKA__TOPIC"])
    [('QUERYWATCH_KAFKA_TOPIC', 'QUERYWATCH_KAFKA__TOPIC')]
    """
    accepted = {*known, *(name + "_FILE" for name in known), CONFIG_FILE_VARIABLE}
    found = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in accepted or name.startswith(RESERVED_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        found.append((name, close[0] if close else None))
    return found


def _masked(path: tuple[str, ...], value: Any) -> str:
    """A secret setting as ``config show`` prints it: a database URL as ``shown_url`` shows
    it (which database is used still shows), any other secret as ``***``.

    >>> _masked(("database", "url"), "sqlite:///var/lib/qw.db"), _masked(("kafka", "sasl_password"), "x")
    ('sqlite:///var/lib/qw.db', '***')
    """
    return shown_url(str(value)) if path == ("database", "url") else "***"


def setting_sources(
    settings: BaseModel, config_file: Path | None, environ: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Each leaf setting's variable, effective value and source, for ``querywatch config show``.

    Secret settings show ``"***"`` when set; a database URL shows all but its password.
    """
    file_values = read_config_file(config_file) if config_file is not None else {}
    secrets = {variable(path) for path in SECRET_SETTINGS}
    rows = []
    for path, _field in leaf_paths(type(settings)):
        name = variable(path)
        value: Any = settings
        for part in path:
            value = getattr(value, part)
        in_file: Any = file_values
        for part in path:
            in_file = in_file.get(part, {}) if isinstance(in_file, dict) else {}
        if name in environ:
            source = "environment"
        elif name + "_FILE" in environ and name in secrets:
            source = f"file {environ[name + '_FILE']}"
        elif not isinstance(in_file, dict) or in_file != {}:
            source = f"config {config_file}"
        else:
            source = "default"
        shown = _masked(path, value) if name in secrets and value else value
        rows.append(
            {"variable": name, "value": list(shown) if isinstance(shown, tuple) else shown, "source": source}
        )
    return rows
