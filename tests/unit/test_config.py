"""Settings from the environment and flags, and secrets kept out of text."""

from __future__ import annotations

import pytest

from migrator.cli import build_parser
from migrator.config import ENV_NAMES, load_settings
from migrator.conninfo import redact
from migrator.errors import ALL_ERRORS, ConfigError, exit_code_table

URL = "postgresql://app:hunter2@db:5432/yomu"


def test_migration_url_wins_and_flags_win_over_env() -> None:
    settings = load_settings(
        {"lock_wait_s": 5.0},
        env={"DATABASE_URL": URL, "MIGRATION_DATABASE_URL": "postgresql://owner:pw@db/yomu",
             "MIGRATOR_LOCK_WAIT": "30", "MIGRATOR_LOCK_TIMEOUT_MS": "50"},
    )
    assert settings.database_url.startswith("postgresql://owner:")
    assert settings.lock_wait_s == 5.0
    assert settings.lock_timeout_ms == 50


def test_defaults_keep_the_app_safe() -> None:
    settings = load_settings(env={"DATABASE_URL": URL})
    assert settings.lock_timeout_ms == 100 and settings.lock_timeout_cap_ms == 250
    assert settings.statsd_host is None


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MIGRATOR_LOCK_TIMEOUT_MS": "500"}, "above its cap"),
        ({"MIGRATOR_LOCK_TIMEOUT_MS": "0"}, "lock timeout of 0"),
        ({"MIGRATOR_LOCK_TIMEOUT_MS": "0", "MIGRATOR_LOCK_TIMEOUT_CAP_MS": "0"},
         "lock timeout of 0"),
        ({"MIGRATOR_LOCK_TIMEOUT_CAP_MS": "0"}, "above its cap"),
        ({"MIGRATOR_LOCK_RETRIES": "0"}, "at least one attempt"),
        ({"MIGRATOR_CONNECT_TIMEOUT": "-1"}, "must not be negative"),
        ({"MIGRATOR_LOG_FORMAT": "xml"}, "log format"),
        ({"MIGRATOR_MIGRATIONS_DIR": "/nonexistent"}, "no migrations found"),
        ({"STATSD_PORT": "udp"}, "STATSD_PORT"),
    ],
)
def test_bad_settings_are_config_errors(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(env={"DATABASE_URL": URL, **env})


def test_settings_never_show_the_password() -> None:
    settings = load_settings(env={"DATABASE_URL": URL})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.public())
    assert settings.public()["database_url"] == "postgresql://app:***@db:5432/yomu"


@pytest.mark.parametrize(
    "text",
    [
        "could not connect postgresql://u:hunter2@h/db",
        "dsn: host=h password=hunter2 dbname=x",
        "password = 'hunter2'",
    ],
)
def test_redact(text: str) -> None:
    assert "hunter2" not in redact(text)


def test_every_error_has_its_own_exit_code_in_help() -> None:
    codes = [e.exit_code for e in ALL_ERRORS]
    assert len(codes) == len(set(codes))
    table = exit_code_table()
    for error in ALL_ERRORS:
        assert f"{error.exit_code:<2} {error.kind}" in table
    help_text = build_parser().format_help()
    assert "exit codes:" in help_text and "examples:" in help_text
    for env_name in ENV_NAMES.values():
        assert env_name in help_text
