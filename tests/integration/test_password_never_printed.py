"""Property: whatever the password (any characters, percent-encoded in the URL or not, or in
key=value form), no piece of it is ever printed, by any verb, in any output format.

The oracle: a 4-character piece of the password may appear in a run's output only if the
same run with a different, disjoint password printed it too (then it is ordinary text, like
`data` in `database`). Numbers are compared as `0` on both sides (durations, ports and pids
differ between runs), and the two per-run random fields (`run_id`, `timestamp`) are left out.
The baseline is chosen to take the same path as the password under test: in a raw URI, an
`@` or `/` is refused as ambiguous, a space or a stray `%` is unreadable, a valid `%XX`
decodes into another password; otherwise the password works.

Each example runs the real CLI against real PostgreSQL: the role's password is set to the
generated one (so the success paths run), or to a third one (authentication fails), or the
URL points at a closed port (unreachable).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pgtest import run_migrator, superuser_dsn
from psycopg import sql

from migrator.chain import load_chain
from migrator.config import default_migrations_dir
from migrator.localdb import LocalPostgres, free_port

ROLE, TEMPLATE, DATABASE = "leak_owner", "leak_template", "leak_run"
PREVIOUS = load_chain(default_migrations_dir()).revisions[-2].id
VERBS: dict[str, list[str]] = {
    "upgrade": ["upgrade"], "downgrade": ["downgrade", PREVIOUS], "status": ["status"],
    "check": ["check"], "history": ["history"], "plan": ["plan"], "lint": ["lint"],
    "upgrade --sql": ["upgrade", "--sql"],
}
OFFLINE = ("lint",)  # it never reads the URL, but the URL is in its environment
FORMATS = ("json", "text", "--json")  # the log formats, and a JSON document on stdout
# uri_quoted: copied from a .env file, quotes and all; jdbc_raw: a Java service's URL.
FORMS = ("uri_encoded", "uri_raw", "uri_raw", "kv", "uri_quoted", "jdbc_raw")
SCENARIOS = ("success", "auth_failure", "unreachable")
# The server's password in the auth_failure scenario.
OTHER = "Zy-8-Wv-7-Ut"
# One baseline password per path a password can take (see `path_of`).
BASELINES = {"works": "JqvXkzWyHb", "ambiguous": "Jqv@Xkz/Wy", "unreadable": "Jqv Xkz%Wy",
             "decoded": "Jqv%41Xkz", "refused": "JqvXkz-WyHb"}
PASSWORDS = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
            min_size=4, max_size=24),
    st.text(st.sampled_from("@/%: ?#&=,'\\\"[]+~é€\n\tAbc1"), min_size=4, max_size=16),
)


def path_of(password: str, form: str) -> str:
    """What libpq makes of the password: it works, or the URL is refused or misread."""
    if form in ("uri_quoted", "jdbc_raw"):
        return "refused"
    if form != "uri_raw":
        return "works"
    if "@" in password or "/" in password:
        return "ambiguous"
    if " " in password or re.search(r"%(?![0-9A-Fa-f]{2})", password):
        return "unreadable"
    decoded = unquote_to_bytes(password)
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return "unreadable"
    if b"\0" in decoded:
        return "unreadable"
    return "decoded" if "%" in password else "works"


def expected_exit(verb: str, path: str, scenario: str) -> int:
    if verb in OFFLINE:
        return 0
    if path in ("ambiguous", "unreadable", "refused"):
        return 3
    if scenario == "unreachable":
        return 0 if verb == "plan" else 4  # plan falls back to every revision, offline
    if scenario == "auth_failure" or path == "decoded":
        return 5
    return 0


def grams(text: str) -> set[str]:
    return {text[i:i + 4] for i in range(len(text) - 3)}


def _norm(text: str) -> str:
    """Every number as `0`: durations, ports and pids differ from run to run."""
    return re.sub(r"\d+", "0", text)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in ("run_id", "timestamp"):
                yield str(key)
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    else:
        yield str(value)


def printed(result: subprocess.CompletedProcess[str]) -> str:
    """Everything the run printed, JSON lines decoded (a non-ASCII piece is escaped there)."""
    parts = []
    for line in (result.stdout + "\n" + result.stderr).split("\n"):
        try:
            parts.extend(_strings(json.loads(line)))
        except ValueError:
            parts.append(line)
    return _norm("\n".join(parts))


@dataclass(repr=False)  # hypothesis prints the arguments of a failing example
class Lab:
    """A role and a database at head on the session's server, and the runs made so far."""

    server: LocalPostgres
    admin: str
    baselines: dict[tuple[str, ...], str] = field(default_factory=dict)

    def set_password(self, password: str) -> None:
        """ALTER ROLE with a SCRAM verifier computed here: the password is never SQL text."""
        with psycopg.connect(self.admin, autocommit=True) as conn:
            verifier = conn.pgconn.encrypt_password(password.encode(), ROLE.encode(),
                                                    b"scram-sha-256")
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(verifier.decode())))

    def fresh_database(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DATABASE} TEMPLATE {TEMPLATE} OWNER {ROLE}")

    def url(self, password: str, form: str, port: int, database: str = DATABASE) -> str:
        if form == "kv":
            quoted = password.replace("\\", "\\\\").replace("'", "\\'")
            return (f"host=127.0.0.1 port={port} dbname={database} user={ROLE} "
                    f"password='{quoted}'")
        if form == "uri_quoted":
            return f'"postgresql://{ROLE}:{password}@127.0.0.1:{port}/{database}?sslmode=disable"'
        if form == "jdbc_raw":
            return f"jdbc:postgresql://{ROLE}:{password}@127.0.0.1:{port}/{database}?sslmode=disable"
        secret = quote(password, safe="") if form == "uri_encoded" else password
        return f"postgresql://{ROLE}:{secret}@127.0.0.1:{port}/{database}"

    def run(self, verb: str, fmt: str, form: str, scenario: str,
            password: str) -> subprocess.CompletedProcess[str]:
        """One CLI run; the database is at head before and after it."""
        if verb != "downgrade":
            return self._run(verb, fmt, form, scenario, password)
        self.fresh_database()
        try:
            return self._run(verb, fmt, form, scenario, password)
        finally:
            self.fresh_database()

    def _run(self, verb: str, fmt: str, form: str, scenario: str,
             password: str) -> subprocess.CompletedProcess[str]:
        self.set_password(password if scenario == "success" else OTHER)
        port = free_port() if scenario == "unreachable" else self.server.port
        args = [*VERBS[verb], *(["--json"] if fmt == "--json" else [])]
        # Unreachable: give up after half a second; otherwise a loaded machine gets time.
        timeout = "0.5" if scenario == "unreachable" else "30"
        return run_migrator(*args, timeout=120, env={
            "DATABASE_URL": self.url(password, form, port),
            "MIGRATOR_LOG_FORMAT": "json" if fmt == "--json" else fmt,
            "MIGRATOR_CONNECT_TIMEOUT": timeout, "PYTHONUTF8": "1"})

    def baseline(self, verb: str, fmt: str, form: str, scenario: str, path: str) -> str:
        """The same run with the baseline password of that path (once per combination)."""
        key = (verb, fmt, form, scenario, path)
        if key not in self.baselines:
            password = BASELINES[path]
            result = self.run(verb, fmt, form, scenario, password)
            assert result.returncode == expected_exit(verb, path, scenario), _show(result)
            out = printed(result)
            assert not [g for g in grams(password) if _norm(g) in out], _show(result)
            self.baselines[key] = out
        return self.baselines[key]


def _show(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.fixture(scope="module")
def lab(pg_server: LocalPostgres) -> Iterator[Lab]:
    admin = superuser_dsn(pg_server)
    lab = Lab(pg_server, admin)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {ROLE} LOGIN")
        conn.execute(f"CREATE DATABASE {TEMPLATE} OWNER {ROLE}")
    lab.set_password(BASELINES["works"])
    migrated = run_migrator("upgrade", env={
        "DATABASE_URL": lab.url(BASELINES["works"], "uri_encoded", pg_server.port, TEMPLATE)})
    assert migrated.returncode == 0, _show(migrated)
    lab.fresh_database()
    yield lab
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in (DATABASE, TEMPLATE):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"DROP ROLE {ROLE}")


@pytest.mark.parametrize("verb", list(VERBS))
@settings(max_examples=4, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(password=PASSWORDS, fmt=st.sampled_from(FORMATS), form=st.sampled_from(FORMS),
       scenario=st.sampled_from(SCENARIOS))
def test_no_piece_of_the_password_is_ever_printed(lab: Lab, verb: str, password: str, fmt: str,
                                                  form: str, scenario: str) -> None:
    path = path_of(password, form)
    assume(not grams(password) & (grams(BASELINES[path]) | grams(OTHER)))
    result = lab.run(verb, fmt, form, scenario, password)
    assert result.returncode == expected_exit(verb, path, scenario), _show(result)
    out, baseline = printed(result), lab.baseline(verb, fmt, form, scenario, path)
    leaked = sorted(g for g in grams(password) if _norm(g) in out and _norm(g) not in baseline)
    assert not leaked, f"pieces of the password {password!r} printed: {leaked}\n{_show(result)}"


def test_a_password_that_is_an_ordinary_word_leaves_ordinary_messages_whole(lab: Lab) -> None:
    """`head` as the password: scrubbed from the URL, not from `(head 0002)` in the message."""
    result = lab.run("upgrade", "text", "uri_encoded", "success", "head")
    assert result.returncode == 0, _show(result)
    assert f"(head {load_chain(default_migrations_dir()).head})" in result.stdout, _show(result)
    assert f"{ROLE}:***@" in result.stdout and f"{ROLE}:head@" not in result.stdout
