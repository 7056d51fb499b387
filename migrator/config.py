"""Environment variables and flags folded into one frozen Settings object.

Every knob has one name in the environment (what the Helm chart sets) and one flag (what a
person types); the flag wins. Parsing happens once, up front, so a bad value is a
configuration error before anything touches the database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from migrator import conninfo
from migrator.conninfo import ConnInfo
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
URL_NAMES = ("MIGRATION_DATABASE_URL", "DATABASE_URL")  # the first one set wins


def default_migrations_dir() -> Path:
    """Next to the package in a checkout; the image sets MIGRATOR_MIGRATIONS_DIR."""
    return Path(__file__).resolve().parent.parent / "migrations"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(repr=False)  # as given; connect with `conninfo`
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
    # The URL as libpq parsed it (None when the verb needs no database).
    conninfo: ConnInfo | None = field(default=None, repr=False, compare=False)

    @property
    def redacted_url(self) -> str:
        """The connection string as libpq understood it, without its secrets."""
        return self.conninfo.display() if self.conninfo else ""

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


def database_url_from(env: Mapping[str, str]) -> tuple[str, ConnInfo]:
    """MIGRATION_DATABASE_URL (an owner role) wins over DATABASE_URL (the app's).

    Both are read: the one not used still holds a password this process must never print.
    """
    names = [name for name in URL_NAMES if env.get(name)]
    if not names:
        raise ConfigError(
            "no database to migrate: DATABASE_URL is not set",
            "set DATABASE_URL (or MIGRATION_DATABASE_URL) to postgresql://user:password@host/db, "
            "or run `make migrate` for a local database",
        )
    conninfo.parse_quietly(env[name] for name in names[1:])
    return env[names[0]], conninfo.parse(env[names[0]], names[0])


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
    conninfo.remember_environment(env)
    values: dict[str, object] = {"database_url": ""}
    if need_database:
        values["database_url"], values["conninfo"] = database_url_from(env)
    else:  # not used, but in the environment: its secrets are still not to be printed
        conninfo.parse_quietly(env[name] for name in URL_NAMES if env.get(name))
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
    if settings.lock_retries < 1:
        raise ConfigError(f"MIGRATOR_LOCK_RETRIES={settings.lock_retries}: a revision needs "
                          "at least one attempt", "set MIGRATOR_LOCK_RETRIES to 1 or more "
                          "(default 40)")
    if not (settings.migrations_dir / "versions").is_dir():
        raise ConfigError(
            f"no migrations found at {settings.migrations_dir}/versions",
            "set MIGRATOR_MIGRATIONS_DIR to the folder holding env.py and versions/",
        )
    return settings
