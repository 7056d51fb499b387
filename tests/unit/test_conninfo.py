"""Connection strings as libpq reads them: every form users have, what is refused before
connecting, and that nothing of a password survives in what is shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator import conninfo
from migrator.config import load_settings
from migrator.conninfo import CHOICES, parse, redact
from migrator.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_secrets_from_other_tests() -> Iterator[None]:
    """Secrets are remembered for the whole process; each test starts without any."""
    saved = set(conninfo._secrets), conninfo._scrubber
    conninfo._secrets.clear()
    conninfo._scrubber = None
    yield
    conninfo._secrets.clear()
    conninfo._secrets.update(saved[0])
    conninfo._scrubber = saved[1]


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("postgresql://app:pw@db:5432/yomu", "db:5432/yomu"),
        ("postgres://app:pw@db/yomu", "db:5432/yomu"),
        ("postgresql+psycopg://app:pw@db:6432/yomu", "db:6432/yomu"),
        ("postgresql://app:pw@db1:5432,db2:5433/yomu?target_session_attrs=read-write",
         "db1:5432,db2:5433/yomu"),
        ("postgresql://app:pw@[::1]:5432/yomu", "[::1]:5432/yomu"),
        # ?host= wins over the authority, as in libpq
        ("postgresql://app:pw@ignored:5432/yomu?host=10.0.0.9", "10.0.0.9:5432/yomu"),
        ("postgresql://app@/yomu?host=/run/pg", "socket /run/pg/.s.PGSQL.5432, database yomu"),
        ("postgresql:///yomu?host=/cloudsql/p:r:i&port=5433",
         "socket /cloudsql/p:r:i/.s.PGSQL.5433, database yomu"),
        ("host=/run/pg dbname=yomu", "socket /run/pg/.s.PGSQL.5432, database yomu"),
        ("host=db hostaddr=10.0.0.9 port=6432 dbname=yomu user=app password='a b'",
         "db (10.0.0.9):6432/yomu"),
        ("  postgresql://app:pw@db/yomu\n", "db:5432/yomu"),  # a Secret made with `echo`
    ],
)
def test_every_form_names_where_libpq_will_connect(url: str, target: str) -> None:
    assert parse(url).describe() == target


def test_the_parsed_form_is_what_psycopg_gets() -> None:
    info = parse("postgresql+psycopg://us%40er:p%40ss%2Fw%25rd@db:5432/yomu?sslmode=require")
    assert info.connect_params() == {"user": "us@er", "password": "p@ss/w%rd", "host": "db",
                                     "port": "5432", "dbname": "yomu", "sslmode": "require"}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:hunter22@db:5432/yomu", "postgresql://app:***@db:5432/yomu"),
        ("postgresql://app@db/yomu?password=hunter22&sslpassword=hunter33",
         "postgresql://app:***@db/yomu?sslpassword=***"),
        ("postgresql://app:hunter22@/yomu?host=/run/pg",
         "postgresql://app:***@/yomu?host=/run/pg"),
        ("host=db dbname=yomu password='hunter 22'", "password=*** dbname=yomu host=db"),
    ],
)
def test_display_shows_the_parsed_string_without_secrets(url: str, shown: str) -> None:
    assert parse(url).display() == shown
    assert "hunter" not in repr(parse(url))
    assert "hunter" not in redact(f"{url} and again: {url}")


# Passwords typed into the URL without percent-encoding: libpq would cut them apart, or
# quote them in its error. Refused, and nothing of the password is in the message.
@pytest.mark.parametrize(
    "password",
    ["Qxzv@Kjwy9", "Qxzv/Kjwy9", "Qxzv%Kjwy9", "Qxzv Kjwy9", "Qx%FFzvKj", "Q@xz/vK j%wy9",
     "Qx/zv:Kj?w=@y9", "QxzvKjwy9 ", " QxzvKjwy9"],
)
def test_unencoded_passwords_are_refused_without_showing_any_of_them(password: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f"postgresql://app:{password}@db:5432/yomu")
    said = caught.value.message + caught.value.next_step
    assert "percent-encode" in caught.value.next_step and "%40" in caught.value.next_step
    pieces = {password[i:i + 4] for i in range(len(password) - 3)}
    assert not [piece for piece in pieces if piece in said], said
    assert not [piece for piece in pieces if piece in redact(f"x {password} y")]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://app:pw@db/yomu?bogus=1", "unknown parameter 'bogus'"),
        ("postgresql://app@db/yomu?password=ab&cdefgh=1", "not shown"),
        ("host=db dbname=yomu password='a b' bogus=1", "unknown parameter 'bogus'"),
        ("host=db dbname=yomu password=abc bogusly=1", "not shown"),
        ("host=db dbname=yomu host=other", "repeated parameter 'host'"),
        ("postgresql://app:pw@db/yomu?sslmode=bogus", "sslmode must be one of"),
        ("postgresql://app:pw@db/yomu?target_session_attrs=primaryish",
         "target_session_attrs must be one of"),
        ("postgresql://app:pw@db/yomu?keepalives=yes", "keepalives must be a whole number"),
        ("postgresql://app:pw@db:99999/yomu", "invalid port number"),
        ("host=db1,db2 port=1,2,3 dbname=yomu", "libpq refuses"),
        ("postgresql://app:pw@db/yomu?sslnegotiation=direct", "sslnegotiation=direct"),
        ("postgresql://app:pw@db/yomu?require_auth=!password,md5", "cannot be mixed"),
        ("host=db hostaddr=db.example dbname=yomu", "hostaddr must be IP addresses"),
        ("postgresql://app:pw@db", "names no database"),
        ("postgresql://app:pw@/yomu", "names no host"),
        ("mysql://app:pw@db/yomu", "must start with postgresql://"),
        ("postgresql+asyncpg://app:pw@db/yomu", "must start with postgresql://"),
        ("postgresql://app:pw@db!x/yomu", "not a host name"),
        ("host=db dbname='yomu", "not a connection string libpq can read"),
    ],
)
def test_what_libpq_would_refuse_is_refused_before_connecting(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        parse(url)
    assert caught.value.exit_code == 3
    assert "cdefgh" not in caught.value.message and "bogusly" not in caught.value.message


def test_the_value_tables_agree_with_libpq() -> None:
    """Every value we accept, libpq accepts; a value we refuse, libpq refuses too."""
    for key, values in CHOICES.items():
        for value in values:
            extra = {"sslmode": "require"} if (key, value) == ("sslnegotiation", "direct") else {}
            assert conninfo._libpq_refuses({"dbname": "x", key: value, **extra}) is None, key
        if key != "gssencmode":  # not sent to libpq's check: "require" cannot pass on a socket
            assert conninfo._libpq_refuses({"dbname": "x", key: "bogus"}), key


def test_secrets_are_scrubbed_in_every_form_they_are_printed_in() -> None:
    password = "pä$$'wörd\"\n\\01"
    parse("host=db dbname=yomu password='" + password.replace("\\", "\\\\").replace("'", "\\'")
          + "'")
    for form in (password, json.dumps(password)[1:-1], repr(password)[1:-1],
                 json.dumps(password, ensure_ascii=False)[1:-1], ascii(password)[1:-1]):
        assert redact(f"before {form} after") == "before *** after", form
    assert conninfo.redact_data({"k": [f"x{password}y", 3]}) == {"k": ["x***y", 3]}


def test_text_we_did_not_parse_is_scrubbed_too() -> None:
    assert redact("dsn: host=h password=s3cret9 dbname=x") == "dsn: host=h password=*** dbname=x"
    assert redact("could not connect postgresql://u:s3cret9@h/db") == \
        "could not connect postgresql://u:***@h/db"
    assert "s3cret9" not in redact("password = 's3cret9'")


def test_the_url_not_used_is_still_a_secret() -> None:
    load_settings(env={"MIGRATION_DATABASE_URL": "postgresql://owner:0wner-Secret@db/yomu",
                       "DATABASE_URL": "postgresql://app:App-Secret-9@db/yomu",
                       "PGPASSWORD": "Env-Secret-7"})
    assert redact("App-Secret-9 0wner-Secret Env-Secret-7") == "*** *** ***"
    load_settings(env={"DATABASE_URL": "postgresql://app:Offline-Secret@db/yomu"},
                  need_database=False)
    assert redact("Offline-Secret") == "***"


PASSWORDS = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
            min_size=4, max_size=24),
    st.text(st.sampled_from("@/%: ?#&=,'\\\"[]+~é€\n\tAbc1*"), min_size=4, max_size=16),
)
# One password per way libpq reads a raw URI: plain, ambiguous, unreadable, decoded.
OTHERS = ("JqvXkzWyHb", "Jqv@Xkz/Wy", "Jqv Xkz%Wy", "Jqv%41Xkz")


def _url(password: str, form: str) -> str:
    if form == "kv":
        quoted = password.replace("\\", "\\\\").replace("'", "\\'")
        return f"host=db port=5432 dbname=yomu user=app password='{quoted}'"
    if form == "jdbc_raw":  # as a Java service's config has it, `@` and all unencoded
        return f"jdbc:postgresql://app:{password}@db:5432/yomu?sslmode=require"
    if form == "jdbc_query":
        return f"jdbc:postgresql://db:5432/yomu?user=app&password={password}&sslmode=require"
    if form in ("uri_quoted", "uri_single_quoted"):  # copied from a .env file, quotes and all
        mark = '"' if form == "uri_quoted" else "'"
        return f"{mark}postgresql://app:{password}@db:5432/yomu?sslmode=require{mark}"
    secret = quote(password, safe="") if form == "uri_encoded" else password
    return f"postgresql://app:{secret}@db:5432/yomu"


def _said(url: str) -> str:
    """Everything parse() lets out: the error, or the description and display."""
    conninfo._secrets.clear()
    conninfo._scrubber = None
    try:
        info = parse(url)
    except ConfigError as error:
        return redact(f"{error.message}\n{error.next_step}")
    return redact(f"{info.describe()}\n{info.display()}")


@settings(max_examples=300, deadline=None)
@given(password=PASSWORDS, form=st.sampled_from(["uri_encoded", "uri_raw", "kv", "jdbc_raw",
                                                 "jdbc_query", "uri_quoted",
                                                 "uri_single_quoted"]))
def test_parse_never_lets_out_a_piece_of_any_password(password: str, form: str) -> None:
    """In-process, many more passwords than the end-to-end property test can afford: parse
    raises only ConfigError, and says nothing with a 4-character piece of the password that
    it does not also say for other passwords."""
    said = _said(_url(password, form))
    ordinary = "\n".join(_said(_url(other, form)) for other in OTHERS)
    pieces = {password[i:i + 4] for i in range(len(password) - 3)}
    assert not [p for p in pieces if p in said and p not in ordinary], said


@pytest.mark.parametrize("form", ["jdbc_raw", "jdbc_query", "uri_quoted", "uri_single_quoted"])
def test_quoted_and_jdbc_urls_are_refused_without_echoing_the_password(form: str) -> None:
    """The two forms that used to be read as key=value, whose "key" (the URL, password and
    all) libpq's grammar then named in the exit-3 message."""
    password = "Hq7@Wzk9Lp"
    said = _said(_url(password, form))
    assert not [password[i:i + 4] for i in range(7) if password[i:i + 4] in said], said
    assert ("quotes" in said) if "quoted" in form else ("jdbc" in said), said


def test_a_password_that_is_an_ordinary_word_is_scrubbed_only_as_the_password() -> None:
    parse("postgresql://app:head@db:5432/yomu")
    parse("host=db dbname=yomu user=app password=postgres")
    text = "upgraded to head: applied 0002 (head 0002) on postgresql://db/yomu"
    assert redact(text) == text
    assert redact("postgresql://app:head@db/yomu") == "postgresql://app:***@db/yomu"
    assert redact("host=db password=postgres dbname=x") == "host=db password=*** dbname=x"
