"""`migrator lint`: squawk and our own rules over each revision's SQL, before it ever runs.

Each revision is rendered offline (migrator/plan.py) exactly as `migrator upgrade --sql`
prints it, BEGIN/COMMIT included, and squawk (the PostgreSQL migration linter) reads that SQL
with the checked-in `.squawk.toml`. Our own rules cover what squawk cannot see from one
file: a SET NOT NULL is only safe when a CHECK (col IS NOT NULL) was validated earlier,
possibly revisions earlier; and a backfill (UPDATE/DELETE) in the same transaction as a
lock that blocks writes on that table stalls the app for the whole backfill.

A rule can be set aside for one statement, after review, with a comment in the revision on
the line of the call that emits it, or in the comment lines right above that call:

    # lint: allow require-concurrent-index-creation -- the table is created above
    op.create_index(...)

The reason after `--` is required, and an opt-out that no longer matches a finding is an
error, so opt-outs cannot outlive what they excused.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from migrator.chain import load_chain
from migrator.config import Settings
from migrator.errors import ConfigError
from migrator.plan import LOCKS, Context, RenderedRevision, Statement, render

OWN_RULES = {
    "set-not-null-without-check": "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE: "
    "first add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it in a later transaction, then SET "
    "NOT NULL (no scan) and drop the check",
    "backfill-under-lock": "this UPDATE/DELETE runs in the same transaction as a lock that "
    "blocks the app's writes to the table, so the app waits for the whole backfill: move the "
    "backfill to its own revision and batch it",
}
META_RULES = ("allow-without-reason", "unused-allow", "render-failed")
_MARKER = re.compile(r"#\s*lint:\s*allow\s+(?P<rules>[\w\-, ]+?)\s*(?:--\s*(?P<reason>.*?))?\s*$")


@dataclass
class Marker:
    line: int
    rules: set[str]
    reason: str
    used: set[str] = field(default_factory=set)


@dataclass
class Finding:
    revision: str
    file: str
    line: int | None  # in the revision file
    rule: str
    origin: str  # squawk or migrator
    message: str
    sql: str
    allowed: str | None = None  # the reviewed reason, when an opt-out covers it

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        sql = " ".join(self.sql.split())
        sql = f"\n      {sql[:117] + '...' if len(sql) > 120 else sql}" if sql else ""
        return f"  {where} [{self.rule}, {self.origin}] {self.message}{sql}"


@dataclass
class Report:
    revisions: int
    statements: int
    findings: list[Finding]

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.allowed is None]

    def as_dict(self) -> dict[str, Any]:
        return {"revisions": self.revisions, "statements": self.statements,
                "failures": [asdict(f) for f in self.failures],
                "allowed": [asdict(f) for f in self.findings if f.allowed is not None]}

    def message(self) -> str:
        if not self.failures:
            allowed = len(self.findings)
            return (f"lint: {self.revisions} revision(s), {self.statements} statement(s): clean"
                    + (f" ({allowed} finding(s) allowed by reviewed opt-outs)" if allowed else ""))
        revisions = len({f.revision for f in self.failures})
        return "\n".join([f"lint: {len(self.failures)} problem(s) in {revisions} revision(s):",
                          *map(str, self.failures)])


def squawk_binary() -> str:
    """squawk from the same environment as this Python (the squawk-cli wheel), else PATH."""
    here = Path(sys.executable).parent / "squawk"
    found = str(here) if here.exists() else shutil.which("squawk")
    if not found:
        raise ConfigError("squawk is not installed", "pip install squawk-cli (it is in the "
                          "project's test extras: pip install -e '.[test]')")
    return found


def default_config(settings: Settings) -> Path:
    """The checked-in .squawk.toml: next to the migrations folder, else the project's."""
    for candidate in (settings.migrations_dir.parent / ".squawk.toml",
                      Path(__file__).resolve().parent.parent / ".squawk.toml"):
        if candidate.is_file():
            return candidate
    raise ConfigError("no .squawk.toml found", "pass --config PATH")


def markers(source: str) -> dict[int, Marker]:
    """`# lint: allow RULE[, RULE] -- reason` comments, by line number (1-based)."""
    found = {}
    for number, line in enumerate(source.splitlines(), 1):
        match = _MARKER.search(line)
        if match:
            rules = {r for r in re.split(r"[,\s]+", match.group("rules")) if r}
            found[number] = Marker(number, rules, (match.group("reason") or "").strip())
    return found


def _covering(lines: list[str], source_lines: tuple[int, ...], found: dict[int, Marker],
              ) -> list[Marker]:
    """Markers on a call's own line or in the comment lines right above it."""
    covering = []
    for line in source_lines:
        if line in found:
            covering.append(found[line])
        above = line - 1
        while above >= 1 and lines[above - 1].strip().startswith("#"):
            if above in found:
                covering.append(found[above])
            above -= 1
    return covering


def _own_findings(item: RenderedRevision) -> list[tuple[str, Statement]]:
    found: list[tuple[str, Statement]] = []
    write_blocked: dict[int, set[str]] = {}  # transaction -> tables whose writes wait
    for statement in item.statements:
        effect = statement.effect
        if "new_table" in effect.flags:
            continue
        if "unproven_not_null" in effect.flags:
            found.append(("set-not-null-without-check", statement))
        blocked = write_blocked.setdefault(statement.transaction, set())
        if "dml" in effect.flags and statement.transaction >= 0 and blocked & effect.locks.keys():
            found.append(("backfill-under-lock", statement))
        blocked |= {t for t, mode in effect.locks.items()
                    if LOCKS.index(mode) >= LOCKS.index("SHARE")}
    return found


def _squawk(items: list[RenderedRevision], config: Path) -> dict[str, list[dict[str, Any]]]:
    """squawk's findings for each revision's SQL, by revision id."""
    with tempfile.TemporaryDirectory(prefix="migrator-lint-") as tmp:
        files = {}
        for item in items:
            path = Path(tmp) / f"{item.revision.path.stem}.sql"
            path.write_text(item.sql, encoding="utf-8")
            files[str(path)] = item.revision.id
        if not files:
            return {}
        proc = subprocess.run([squawk_binary(), "--config", str(config), "--reporter", "json",
                               *files], capture_output=True, text=True, timeout=120)
    try:
        violations = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise ConfigError(f"squawk failed (exit {proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[:500]}",
                          f"check {config}") from None
    by_revision: dict[str, list[dict[str, Any]]] = {}
    for violation in violations:
        by_revision.setdefault(files.get(violation["file"], ""), []).append(violation)
    return by_revision


def _at(item: RenderedRevision, line: int) -> Statement | None:
    return next((s for s in item.statements if s.sql_line <= line <= s.sql_line_end), None)


def run(settings: Settings, config: Path | None = None) -> Report:
    """Lint every revision of the chain, in order (rules may depend on earlier revisions)."""
    chain = load_chain(settings.migrations_dir)
    root = settings.migrations_dir.parent

    def shown(path: Path) -> str:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    rendered = render(settings, list(chain.revisions), Context())
    items = [item for item in rendered if item.error is None]
    findings = [Finding(item.revision.id, shown(item.revision.path), None, "render-failed",
                        "migrator", f"offline rendering failed: {item.error}", "")
                for item in rendered if item.error is not None]
    squawked = _squawk(items, config or default_config(settings))
    for item in items:
        source = item.revision.path.read_text(encoding="utf-8")
        lines, found = source.splitlines(), markers(source)
        raw: list[tuple[str, str, str, Statement | None, str]] = []
        for v in squawked.get(item.revision.id, []):
            statement = _at(item, v["line"])
            text = statement.sql if statement else item.sql.splitlines()[v["line"]]
            help_ = f" ({v['help']})" if v.get("help") else ""
            raw.append((v["rule_name"], "squawk", v["message"] + help_, statement, text))
        for rule, statement in _own_findings(item):
            raw.append((rule, "migrator", OWN_RULES[rule], statement, statement.sql))
        for rule, origin, message, statement, text in raw:
            lines_hit = statement.source_lines if statement else ()
            finding = Finding(item.revision.id, shown(item.revision.path),
                              lines_hit[0] if lines_hit else None, rule, origin, message, text)
            for marker in _covering(lines, lines_hit, found):
                if rule in marker.rules and marker.reason:
                    marker.used.add(rule)
                    finding.allowed = marker.reason
            findings.append(finding)
        for marker in found.values():
            if not marker.reason:
                findings.append(Finding(item.revision.id, shown(item.revision.path),
                                        marker.line, "allow-without-reason", "migrator",
                                        "an opt-out needs its reviewed reason: "
                                        "`# lint: allow RULE -- why this is safe here`", ""))
            for rule in sorted(marker.rules - marker.used) if marker.reason else ():
                findings.append(Finding(item.revision.id, shown(item.revision.path),
                                        marker.line, "unused-allow", "migrator",
                                        f"`lint: allow {rule}` matches no finding here: "
                                        "remove it (or fix the rule name)", ""))
    statements = sum(len(i.statements) for i in items)
    return Report(len(chain.revisions), statements, findings)
