"""Environment variables and flags folded into one frozen Settings object.

Every knob has one name in the environment (what the Helm chart sets) and one flag (what a
person types); the flag wins. Parsing happens once, up front, so a bad value is a
configuration error before anything touches the database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from migrator.errors import ConfigError

# The setting name in the environment for each Settings field that can be set that way.
ENV_NAMES: dict[str, str] = {
    "lock_wait_s": "MIGRATOR_LOCK_WAIT",
    "lock_timeout_ms": "MIGRATOR_LOCK_TIMEOUT_MS",
    "lock_timeout_cap_ms": "MIGRATOR_LOCK_TIMEOUT_CAP_MS",
    "lock_retries": "MIGRATOR_LOCK_RETRIES",
    "retry_deadline_s": "MIGRATOR_RETRY_DEADLINE",
    "statement_timeout_ms": "MIGRATOR_STATEMENT_TIMEOUT_MS",
    "idle_in_transaction_timeout_ms": "MIGRATOR_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "connect_timeout_s": "MIGRATOR_CONNECT_TIMEOUT",
    "log_format": "MIGRATOR_LOG_FORMAT",
    "migrations_dir": "MIGRATOR_MIGRATIONS_DIR",
    "statsd_host": "STATSD_HOST",
    "statsd_port": "STATSD_PORT",
    "statsd_prefix": "STATSD_PREFIX",
    "app_roles": "MIGRATOR_APP_ROLE",
}

LOG_FORMATS = ("auto", "json", "text")


def default_migrations_dir() -> Path:
    """Next to the package in a checkout; the image sets MIGRATOR_MIGRATIONS_DIR."""
    return Path(__file__).resolve().parent.parent / "migrations"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(repr=False)
    lock_wait_s: float = 60.0
    lock_timeout_ms: int = 100
    lock_timeout_cap_ms: int = 250
    lock_retries: int = 40
    retry_deadline_s: float = 120.0
    statement_timeout_ms: int = 60_000
    idle_in_transaction_timeout_ms: int = 60_000
    connect_timeout_s: float = 30.0
    log_format: str = "auto"
    migrations_dir: Path = field(default_factory=default_migrations_dir)
    statsd_host: str | None = None
    statsd_port: int = 8125
    statsd_prefix: str = "yomu_migrate"
    # The API's database role(s): each run grants them what the API needs (migrator/grants.py).
    app_roles: tuple[str, ...] = ()

    @property
    def redacted_url(self) -> str:
        return redact(self.database_url)

    def public(self) -> dict[str, object]:
        """Every setting, safe to log: the URL without its password."""
        return {
            "database_url": self.redacted_url,
            **{name: _plain(getattr(self, name)) for name in ENV_NAMES},
        }


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, Path) else value


def parse_roles(name: str, raw: str) -> tuple[str, ...]:
    """`app, reporting` -> ("app", "reporting"): role names separated by commas."""
    roles = tuple(part.strip() for part in raw.split(","))
    if not all(roles):
        raise ConfigError(f"{name}={raw!r} has an empty role name",
                          "list role names separated by commas, e.g. yomu_app,yomu_reports")
    return tuple(dict.fromkeys(roles))


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with every password in a URL or a `password=` pair replaced."""
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def validate_url(url: str, source: str) -> str:
    """A postgresql:// URL with a host and a database, or a ConfigError naming `source`."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{source} is malformed ({exc}): {redact(url)}") from None
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ConfigError(
            f"{source} must start with postgresql:// (got scheme {parts.scheme!r})",
            "use a URL like postgresql://user:password@host:5432/yomu",
        )
    if not parts.hostname or not parts.path.strip("/"):
        raise ConfigError(
            f"{source} needs a host and a database name: {redact(url)}",
            "use a URL like postgresql://user:password@host:5432/yomu",
        )
    return url


def database_url_from(env: Mapping[str, str]) -> str:
    """MIGRATION_DATABASE_URL (an owner role) wins over DATABASE_URL (the app's)."""
    for name in ("MIGRATION_DATABASE_URL", "DATABASE_URL"):
        if env.get(name):
            return validate_url(env[name], name)
    raise ConfigError(
        "no database to migrate: DATABASE_URL is not set",
        "set DATABASE_URL (or MIGRATION_DATABASE_URL) to postgresql://user:password@host/db, "
        "or run `make migrate` for a local database",
    )


def _convert(name: str, raw: str, kind: type) -> object:
    if kind is tuple:
        return parse_roles(name, raw)
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if kind in (int, float) and value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative")
    return value


def load_settings(
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    need_database: bool = True,
) -> Settings:
    """Settings from the environment, then from flags (`overrides`, None = not given)."""
    env = os.environ if env is None else env
    url = database_url_from(env) if need_database else ""
    values: dict[str, object] = {"database_url": url}
    types = {name: f.type for name, f in Settings.__dataclass_fields__.items()}
    for name, env_name in ENV_NAMES.items():
        kind = {"int": int, "float": float, "Path": Path,
                "tuple[str, ...]": tuple}.get(str(types[name]), str)
        if env.get(env_name):
            values[name] = _convert(env_name, env[env_name], kind)
        if overrides and overrides.get(name) is not None:
            flag = "--" + name.replace("_", "-")
            values[name] = _convert(flag, str(overrides[name]), kind)
    if values.get("log_format", "auto") not in LOG_FORMATS:
        raise ConfigError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.lock_timeout_ms > settings.lock_timeout_cap_ms:
        raise ConfigError(
            f"lock timeout {settings.lock_timeout_ms} ms is above its cap "
            f"{settings.lock_timeout_cap_ms} ms",
            "raise MIGRATOR_LOCK_TIMEOUT_CAP_MS or lower MIGRATOR_LOCK_TIMEOUT_MS",
        )
    if settings.lock_timeout_ms == 0:
        raise ConfigError("a lock timeout of 0 means none: DDL would queue the app behind it",
                          "set MIGRATOR_LOCK_TIMEOUT_MS to 50-500")
    if not (settings.migrations_dir / "versions").is_dir():
        raise ConfigError(
            f"no migrations found at {settings.migrations_dir}/versions",
            "set MIGRATOR_MIGRATIONS_DIR to the folder holding env.py and versions/",
        )
    return settings
