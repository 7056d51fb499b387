"""The database URL as libpq reads it: parsed once, checked before connecting, described and
redacted from the parsed form, and its secrets scrubbed from everything the process prints.

libpq's own parser (`psycopg.conninfo`) decides what the URL means. A second parser (urlsplit,
a regex) disagrees with it exactly where a password holds an unencoded `@`, `/`, `%` or space,
and that disagreement is where passwords leaked: pieces of the password became the "host" or
the "database" in our messages, and libpq's parse errors quote the offending token. So a URL
libpq cannot read, or reads in a way that splits the password, is refused with one line that
repeats nothing of it; and every secret the process has seen is remembered, so `redact` can
take it out of any text, in any of the forms it is printed in (raw, JSON-escaped, repr).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote, unquote

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from migrator.errors import ConfigError

EXAMPLE = ("use postgresql://user:password@host:5432/db (or host=/socket/dir dbname=db); "
           "see docs/troubleshooting.md#3")
ENCODE = ("percent-encode @ / % : ? # & and spaces in the user name and password "
          "(%40 for @, %2F for /, %25 for %, %20 for a space)")
QUOTE_KV = ("in key=value form, put a value with spaces or quotes in single quotes, and escape "
            "' and \\ in it with \\")
# The forms libpq reads as a URI; SQLAlchemy's spelling names the driver, libpq does not.
URI_PREFIXES = ("postgresql://", "postgres://")
DRIVER_PREFIX = "postgresql+psycopg://"
# Shorter secrets are not scrubbed from free text: they would cut ordinary words apart.
MIN_SECRET = 4
# A secret that is an ordinary word or number (`head`, `postgres`, `12345`) is scrubbed only
# where it stands as the secret (a URL's user info, `password=`), which `redact` does for any
# password: scrubbed from free text, it would cut `head 0002` or `postgresql://` apart.
_ORDINARY = re.compile(r"[^\W\d_]{1,12}|\d{1,12}")

# Values libpq accepts for its enumerated parameters (checked here to name the choices).
CHOICES: dict[str, tuple[str, ...]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "sslnegotiation": ("postgres", "direct"),
    "sslcertmode": ("disable", "allow", "require"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby",
                             "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
    "min_protocol_version": ("3.0", "3.2", "latest"),
    "max_protocol_version": ("3.0", "3.2", "latest"),
}
AUTH_METHODS = frozenset({"password", "md5", "gss", "sspi", "scram-sha-256", "oauth", "none"})
INTEGERS = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
            "keepalives_count", "tcp_user_timeout")
_INTEGER = re.compile(r"\s*[-+]?\d+\s*")
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
# A socket folder no one has: asking libpq to "connect" there checks every option it checks
# before connecting, and fails at once without a packet on the network.
_PROBE_DIR = "/nonexistent/yomu-migrate-conninfo-probe"


@cache
def keywords() -> frozenset[str]:
    """Every connection parameter this libpq knows."""
    return frozenset(o.keyword.decode() for o in pq.Conninfo.get_defaults())


@cache
def secret_keywords() -> frozenset[str]:
    """The parameters libpq itself hides (password, sslpassword, oauth_client_secret...)."""
    return frozenset(o.keyword.decode() for o in pq.Conninfo.get_defaults()
                     if o.dispchar == b"*")


def _default(keyword: str) -> str | None:
    """libpq's default for `keyword` (its PG* environment variable, else compiled in)."""
    for option in pq.Conninfo.get_defaults():
        if option.keyword.decode() == keyword and option.val:
            return option.val.decode()
    return None


# ---- secrets: remembered once, scrubbed from every text --------------------------------------

_secrets: set[str] = set()
_scrubber: re.Pattern[str] | None = None
# Passwords in text we did not parse ourselves (an unrelated URL in an error, a DSN).
_URL_USERINFO = re.compile(r"(://[^:/@\s]*:)(?!password@)[^@\s]*@")  # not our examples
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE)


def remember(*secrets: str | None) -> None:
    """Scrub these (and their escaped forms) from every text from now on."""
    global _scrubber
    forms = {form for secret in secrets
             if secret and not _ORDINARY.fullmatch(secret.strip()) for form in _forms(secret)}
    if forms - _secrets:
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)  # the longest form wins
        _scrubber = re.compile("|".join(map(re.escape, ordered)))


def _forms(secret: str) -> set[str]:
    forms = {secret, secret.strip(), json.dumps(secret)[1:-1], repr(secret)[1:-1],
             ascii(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             quote(secret, safe="")}
    return {form for form in forms if len(form) >= MIN_SECRET}


def redact(text: str) -> str:
    """`text` without any secret the process knows, nor a password in a URL or DSN."""
    if _scrubber is not None:
        text = _scrubber.sub("***", text)
    return _KV_PASSWORD.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", text))


def redact_data(value: Any) -> Any:
    """`redact` over every string in a JSON-like value (log fields, --json documents)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact_data(k): redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(v) for v in value)
    return value


# ---- parsing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnInfo:
    """A connection string as libpq parsed it: `params` are libpq keywords, secrets included."""

    params: Mapping[str, str]
    uri: bool  # written as a URI: shown as one

    def __repr__(self) -> str:  # a debugger, a log of locals: never the secrets
        return f"ConnInfo({self.display()!r})"

    def connect_params(self) -> dict[str, str]:
        """Keyword arguments for psycopg.connect: no second parse of the original text."""
        return dict(self.params)

    def hosts(self) -> list[tuple[str, str, str]]:
        """(host, hostaddr, port) per host libpq will try, defaults filled in."""
        hosts = _split(self.params.get("host") or _default("host") or "")
        addrs = _split(self.params.get("hostaddr", ""))
        count = max(len(hosts), len(addrs), 1)
        ports = _ports(self.params.get("port", ""), count)
        default_port = _default("port") or "5432"
        return [(_at(hosts, i), _at(addrs, i), _at(ports, i) or default_port)
                for i in range(count)]

    def describe(self) -> str:
        """Where libpq will connect, never a secret: `db:5432/yomu`, a socket file, a service."""
        dbname = self.params.get("dbname") or _default("dbname") or ""
        if self.params.get("service") and not self.params.get("host"):
            return f"service {self.params['service']}" + (f", database {dbname}" if dbname else "")
        ends = [_endpoint(host, addr, port) for host, addr, port in self.hosts()]
        if any(end.startswith("socket ") for end in ends):
            return f"{', '.join(ends)}, database {dbname}"
        return f"{','.join(ends)}/{dbname}"

    def display(self) -> str:
        """The whole connection string as libpq understood it, secrets shown as ***."""
        shown = {k: ("***" if k in secret_keywords() else v) for k, v in self.params.items()}
        if not self.uri:
            return " ".join(f"{k}={_kv_quote(v)}" for k, v in shown.items())
        user, password = shown.pop("user", ""), shown.pop("password", "")
        dbname = shown.pop("dbname", "")
        auth = quote(user, safe="") + (":***" if password else "")
        hosts = _split(shown.get("host", ""))
        netloc = ""
        if hosts and all(host and not host.startswith(("/", "@")) for host in hosts):
            ports = _ports(shown.pop("port", ""), len(hosts))
            netloc = ",".join((f"[{h}]" if ":" in h else quote(h, safe=".-_"))
                              + (f":{_at(ports, i)}" if _at(ports, i) else "")
                              for i, h in enumerate(hosts))
            shown.pop("host", None)
        query = "&".join(f"{k}={quote(v, safe='/,:*')}" for k, v in shown.items())
        return (f"postgresql://{auth + '@' if auth else ''}{netloc}/{quote(dbname, safe='')}"
                + (f"?{query}" if query else ""))


def _split(value: str) -> list[str]:
    return value.split(",") if value else []


def _ports(value: str, hosts: int) -> list[str]:
    """The port of each host: libpq takes one port for all hosts, or one per host."""
    ports = _split(value) or [""]
    return ports * hosts if len(ports) == 1 else ports


def _at(items: list[str], index: int) -> str:
    return items[index].strip() if index < len(items) else ""


def _endpoint(host: str, addr: str, port: str) -> str:
    if host.startswith(("/", "@")):
        return f"socket {host.rstrip('/') or '/'}/.s.PGSQL.{port}"
    name = host or addr
    name = f"[{name}]" if ":" in name else name
    return f"{name} ({addr}):{port}" if host and addr else f"{name}:{port}"


def _kv_quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse(raw: str, source: str = "DATABASE_URL") -> ConnInfo:
    """`raw` (a URI or key=value string) as libpq will use it, or a ConfigError that repeats
    nothing of it but the parameter names and the hosts of a string libpq reads cleanly."""
    text = raw.strip()
    if text[:1] in ("'", '"'):
        _refuse_quoted(text, source)
    if text.startswith(DRIVER_PREFIX):
        text = "postgresql://" + text[len(DRIVER_PREFIX):]
    # `jdbc:postgresql://` too: its scheme has a colon, and it must not be read as key=value.
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.:-]*)://", text)
    if scheme:
        _remember_userinfo(text)
    if scheme and not text.startswith(URI_PREFIXES):
        hint = ("drop the jdbc: prefix, and write JDBC's ?user=...&password=... as "
                "postgresql://user:password@host:5432/db; " if scheme[1].startswith("jdbc:")
                else "")
        raise ConfigError(f"{source} must start with postgresql:// (got scheme "
                          f"{scheme[1]!r}; nothing else of it is shown)",
                          f"{hint}{ENCODE}; {EXAMPLE}")
    if scheme:
        _check_uri(text, source)
    else:
        _check_kv(text, source)
    try:
        params = conninfo_to_dict(text)
    except (psycopg.Error, ValueError):  # its message quotes the text: never shown
        raise _unreadable(source, uri=bool(scheme)) from None
    info = ConnInfo({k: str(v) for k, v in params.items()}, uri=bool(scheme))
    remember(*(v for k, v in info.params.items() if k in secret_keywords()))
    _check_params(info, source)
    return info


def _refuse_quoted(text: str, source: str) -> None:
    """A value wrapped in quotes, as copied from a .env file: libpq would read it as one
    key=value pair whose *key* is the whole URL, and name that key in its error."""
    inner = text.strip("'\"").strip()
    if re.match(r"[A-Za-z][A-Za-z0-9+.:-]*://", inner):
        _remember_userinfo(inner)
    for match in _KV_PASSWORD.finditer(inner):
        remember(match[2], match[2].strip("'"), inner[match.start(2):])
    raise ConfigError(f"{source} is wrapped in quotes (as in a .env file); nothing of it is "
                      "shown, it may hold the password",
                      "remove the quotes around the value (a shell or Kubernetes env value "
                      f"needs none); {EXAMPLE}")


def _unreadable(source: str, uri: bool) -> ConfigError:
    return ConfigError(f"{source} is not a connection string libpq can read (nothing of it is "
                       "shown, it may hold the password)",
                       f"{ENCODE if uri else QUOTE_KV}; {EXAMPLE}")


def _split_uri(text: str) -> tuple[str, str]:
    """(user info, the rest) as libpq cuts a URI: the user info ends at the first `@`, unless
    a `/` comes first (then there is none)."""
    rest = text.split("://", 1)[1]
    cut = next((i for i, c in enumerate(rest) if c in "@/"), len(rest))
    return (rest[:cut], rest[cut + 1:]) if rest[cut:cut + 1] == "@" else ("", rest)


def _remember_userinfo(text: str) -> None:
    """The password as libpq will read it, and, when the URI is ambiguous (an `@` after the
    user info), everything up to its last `@`: whatever was meant as the password is there."""
    userinfo, after = _split_uri(text)
    secrets = [userinfo.partition(":")[2]]
    if "@" in after:
        widest = text.split("://", 1)[1].rpartition("@")[0]
        secrets += [widest, widest.partition(":")[2]]
    for item in after.partition("?")[2].split("&"):  # ?password=..., JDBC's spelling too
        key, _, value = item.partition("=")
        if unquote(key, errors="replace") in secret_keywords():
            secrets.append(value)
    for secret in secrets:
        remember(secret, unquote(secret, errors="replace"))


def _check_uri(text: str, source: str) -> None:
    """Refuse a URI that libpq would split inside the password, naming nothing of it.

    Any `@` after the user info means a password (or user) holds an unencoded `@` or `/`:
    pieces of it would become the host, the port or the database. A space is an error
    inside a part, and silently dropped at its ends: a password `secret ` would become
    `secret`, and fail as a wrong password.
    """
    if " " in text:  # libpq refuses a space inside a part, and drops one at either end of it
        raise _unreadable(source, uri=True)
    _, after = _split_uri(text)
    if "@" in after:
        raise ConfigError(
            f"{source} has an @ or / that libpq would read as the end of the password, so "
            "part of the password would be taken for the host or the database (nothing of it "
            "is shown)", f"{ENCODE}; {EXAMPLE}",
        )
    query = after.partition("?")[2]
    secret_seen = False
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        key = unquote(key, errors="replace")
        if key in secret_keywords():
            secret_seen = True
            remember(value, unquote(value, errors="replace"))
        if sep and key not in keywords() and key != "ssl":  # libpq maps ssl=true itself
            if secret_seen:  # a `&` in the password would make this "parameter" out of it
                raise ConfigError(f"{source} has an unknown parameter after a password "
                                  "parameter (not shown: it may be part of the password)",
                                  f"{ENCODE}; {EXAMPLE}")
            raise ConfigError(f"{source} has an unknown parameter {key!r}",
                              "use the parameters of libpq's connection strings "
                              "(https://www.postgresql.org/docs/current/libpq-connect.html)")


def _kv_pairs(text: str) -> list[tuple[str, str, bool]] | None:
    """(keyword, value, quoted) as libpq's key=value grammar splits `text`, None if it cannot."""
    pairs: list[tuple[str, str, bool]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            return pairs
        start = i
        while i < n and not text[i].isspace() and text[i] != "=":
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i == n or text[i] != "=":
            return None
        i += 1
        while i < n and text[i].isspace():
            i += 1
        quoted = i < n and text[i] == "'"
        i += quoted
        value: list[str] = []
        while i < n and (text[i] != "'" if quoted else not text[i].isspace()):
            if text[i] == "\\" and i + 1 < n:
                i += 1
            value.append(text[i])
            i += 1
        if quoted:
            if i == n:
                return None
            i += 1
        pairs.append((key, "".join(value), quoted))


def _check_kv(text: str, source: str) -> None:
    """Name an unknown or repeated keyword only when no unquoted secret could have made it."""
    pairs = _kv_pairs(text)
    if pairs is None:
        for match in _KV_PASSWORD.finditer(text):  # what follows password= is secret
            remember(match[2], match[2].strip("'"), text[match.start(2):])
        return  # libpq refuses it next, with our generic message
    remember(*(value for key, value, _ in pairs if key in secret_keywords()))
    unquoted_secret = any(key in secret_keywords() and not quoted for key, _, quoted in pairs)
    seen: set[str] = set()
    for key, _, _ in pairs:
        if key not in keywords() or key in seen:
            what = "an unknown" if key not in keywords() else "a repeated"
            if unquoted_secret or not re.fullmatch(r"\w+", key):
                raise ConfigError(f"{source} has {what} parameter (not shown: an unquoted "
                                  "password with a space, or a URL, may have made it)",
                                  QUOTE_KV)
            raise ConfigError(f"{source} has {what} parameter {key!r}", QUOTE_KV)
        seen.add(key)


def _check_params(info: ConnInfo, source: str) -> None:
    """What libpq would refuse later (or we must not accept), refused now without connecting."""
    params = info.params
    hosts = _split(params.get("host", "")) + _split(params.get("hostaddr", ""))
    if not any(h.strip() for h in hosts) and not params.get("service") and not _default("host"):
        raise ConfigError(f"{source} names no host (a host name, an IP address, or "
                          "?host=/socket/dir)", EXAMPLE)
    if not (params.get("dbname") or params.get("service") or _default("dbname")):
        raise ConfigError(f"{source} names no database", EXAMPLE)
    for host in _split(params.get("host", "")):
        if host and not _plausible_host(host, info.uri):
            raise ConfigError(f"{source} has a host that is not a host name, an IP address or "
                              "a socket folder (not shown: it may hold part of the password)",
                              f"{ENCODE if info.uri else QUOTE_KV}; {EXAMPLE}")
    for addr in _split(params.get("hostaddr", "")):
        if addr and not _is_ip(addr):
            raise ConfigError(f"{source}: hostaddr must be IP addresses", EXAMPLE)
    for key, allowed in CHOICES.items():
        if key in params and params[key] not in allowed:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(allowed)}", EXAMPLE)
    for key in INTEGERS:
        if key in params and not _INTEGER.fullmatch(params[key]):
            raise ConfigError(f"{source}: {key} must be a whole number", EXAMPLE)
    refused = _libpq_refuses(params)
    if refused:
        raise ConfigError(f"{source} has a parameter libpq refuses: {refused}", EXAMPLE)


def _plausible_host(host: str, uri: bool) -> bool:
    if host.startswith("/"):
        return True
    if host.startswith("@"):  # a Linux abstract socket: never what a URI's '@' means
        return not uri
    return bool(_HOSTNAME.fullmatch(host)) or _is_ip(host)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _libpq_refuses(params: Mapping[str, str]) -> str | None:
    """libpq's own verdict on the options, from a connection attempt to a socket folder that
    does not exist: it checks every option first, and fails at once without a network."""
    hosts = max(len(_split(params.get("host", ""))), len(_split(params.get("hostaddr", ""))), 1)
    skip = {"hostaddr", "gssencmode", "service", *secret_keywords()}  # not checked, or secret
    probe = {k: v for k, v in params.items() if k not in skip}
    probe.update(host=",".join([_PROBE_DIR] * hosts), connect_timeout="1")
    conn = pq.PGconn.connect_start(make_conninfo("", **probe).encode())
    try:
        for _ in range(5):
            if conn.status == pq.ConnStatus.BAD or conn.connect_poll() in (
                    pq.PollingStatus.FAILED, pq.PollingStatus.OK):
                break
        message = conn.get_error_message()
    finally:
        conn.finish()
    if _PROBE_DIR in message or not message.strip():
        return None
    return vocabulary_only(message.strip().splitlines()[0])


def vocabulary_only(message: str) -> str:
    """libpq's words with every quoted fragment that is not one of its own names dropped."""
    known = keywords() | {v for values in CHOICES.values() for v in values} | AUTH_METHODS
    return re.sub(r'"([^"]*)"', lambda m: m[1] if m[1] in known else "(value not shown)",
                  message)


def remember_environment(env: Mapping[str, str] | None = None) -> None:
    """Secrets libpq may read from the environment are secrets of this process too."""
    env = os.environ if env is None else env
    remember(env.get("PGPASSWORD"), env.get("PGSSLPASSWORD"))


def parse_quietly(raws: Iterable[str]) -> None:
    """Remember the secrets of connection strings this run does not use (DATABASE_URL when
    MIGRATION_DATABASE_URL wins): they are in the environment, so they must not be printed."""
    for raw in raws:
        with contextlib.suppress(ConfigError):
            parse(raw)
