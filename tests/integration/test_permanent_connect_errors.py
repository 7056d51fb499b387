"""Connection failures that will fail the same way on every attempt exit at once, each with
its own code and a next step: never retried until the connect deadline, never exit 4
"connect" with a runbook about the network, and `check --wait` does not spin on them."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import psycopg
import pytest
from pgtest import TEST_PASSWORD, records, run_migrator, superuser_dsn

from migrator.localdb import LocalPostgres

# (case, exit code, words of the message, words of the next step)
CASES = [
    ("nologin", 21, "may not log in (NOLOGIN)", "ALTER ROLE"),
    ("no_connect", 21, "no CONNECT privilege", "GRANT CONNECT ON DATABASE"),
    ("unknown_guc", 22, "does not know a setting the URL's options= sets", "options"),
    ("direct_tls", 22, "does not answer TLS directly", "sslnegotiation=direct"),
    ("no_service", 22, "names a service that is not in the pg_service.conf", "PGSERVICEFILE"),
    ("no_service_file", 22, "the service file libpq reads here does not exist",
     "PGSERVICEFILE"),
]


def _url(server: LocalPostgres, case: str) -> str:
    """A URL that fails as `case` does, against the suite's server (no TLS, scram)."""
    admin = superuser_dsn(server)
    tag = uuid.uuid4().hex[:8]
    base = f"127.0.0.1:{server.port}"
    password = quote(TEST_PASSWORD, safe="")
    with psycopg.connect(admin, autocommit=True) as conn:
        if case == "nologin":
            conn.execute(f"CREATE ROLE nl_{tag} NOLOGIN PASSWORD '{TEST_PASSWORD}'")
            return f"postgresql://nl_{tag}:{password}@{base}/postgres"
        if case == "no_connect":
            conn.execute(f"CREATE ROLE nc_{tag} LOGIN PASSWORD '{TEST_PASSWORD}'")
            conn.execute(f"CREATE DATABASE nc_{tag}")
            conn.execute(f"REVOKE CONNECT ON DATABASE nc_{tag} FROM PUBLIC")
            return f"postgresql://nc_{tag}:{password}@{base}/nc_{tag}"
    userinfo = f"postgres:{password}@{base}/postgres"
    return {
        "unknown_guc": f"postgresql://{userinfo}?options=-c%20nosuch_guc%3D1",
        "direct_tls": f"postgresql://{userinfo}?sslnegotiation=direct&sslmode=require",
        "no_service": f"postgresql://{userinfo}?service=nosuch",
        "no_service_file": f"postgresql://{userinfo}?service=nosuch",
    }[case]


@pytest.mark.parametrize(("case", "code", "says", "next_step"), CASES,
                         ids=[case[0] for case in CASES])
@pytest.mark.parametrize("verb", [["upgrade"], ["check", "--wait", "300"]],
                         ids=["upgrade", "check-wait"])
def test_a_permanent_connection_error_exits_at_once_with_its_own_code(
        pg_server: LocalPostgres, case: str, code: int, says: str, next_step: str,
        verb: list[str]) -> None:
    url = _url(pg_server, case)
    extra = {"PGSERVICEFILE": "/nonexistent/pg_service.conf"} if case == "no_service_file" else {}
    started = time.monotonic()
    result = run_migrator(*verb, env={"DATABASE_URL": url, "MIGRATOR_CONNECT_TIMEOUT": "60",
                                      "HOME": "/nonexistent", **extra}, timeout=90)
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    # At once: one attempt, not the 60 s connect deadline nor check's 300 s wait.
    assert took < 20, f"took {took:.1f}s:\n{output}"
    failed = [r for r in records(result) if r["event"] == "run_failed"][-1]
    assert says in str(failed["message"]), failed
    assert next_step in str(failed["next_step"]), failed
    assert "network" not in str(failed["next_step"]), failed
    assert "connect_retry" not in [r["event"] for r in records(result)]
    assert "check_waiting" not in [r["event"] for r in records(result)]
    assert TEST_PASSWORD not in output
