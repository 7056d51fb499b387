"""What each revision will do to the app: its SQL, the lock each statement takes, the risk.

A revision's Python cannot be judged by reading it, but its SQL can: Alembic renders it
offline (`as_sql`), exactly as `migrator upgrade --sql` prints it. Each rendered statement is
classified by a small set of patterns over its normalized text, each one a fact from the
PostgreSQL manual (ALTER TABLE and "Explicit Locking"): the lock it takes on which table,
whether it rewrites or scans the table while holding it, and whether it runs outside the
revision's transaction. `migrator lint` reads the same statements, so the plan and the lint
can never disagree about what a revision does.

While rendering, each statement is tied to the lines of the revision file that emitted it
(the frames on the stack), so a finding can point at the line to fix, and a reviewed opt-out
comment on that line can be honoured (migrator/lint.py).
"""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrator.chain import Revision

if TYPE_CHECKING:
    import psycopg
    from alembic.script import ScriptDirectory
from migrator.config import Settings
from migrator.errors import MigratorError
from migrator.history import VERSION_TABLE

# Lock modes from weakest to strongest, and what each one stops the app from doing.
LOCKS = ("ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE",
         "EXCLUSIVE", "ACCESS EXCLUSIVE")
BLOCKS = {
    "ROW EXCLUSIVE": "only writes to the rows it changes",
    "SHARE UPDATE EXCLUSIVE": "other schema changes and VACUUM; reads and writes go on",
    "SHARE": "writes (reads go on)",
    "SHARE ROW EXCLUSIVE": "writes (reads go on)",
    "EXCLUSIVE": "writes (reads go on)",
    "ACCESS EXCLUSIVE": "every read and write",
}
RISKS = ("none", "low", "medium", "unknown", "high")

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_QNAME = rf"{_IDENT}(?:\.{_IDENT})?"
_TOKENS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\$(\w*)\$.*?\$\1\$|--[^\n]*|/\*.*?\*/|;""", re.S)
_VOLATILE = re.compile(r"\b(?:random|gen_random_uuid|uuid_generate_v\w+|clock_timestamp|"
                       r"timeofday|nextval|txid_current)\s*\(", re.I)
_SERIAL = re.compile(r"^(?:SMALL|BIG)?SERIAL\b")
_NOT_NULL_CHECK = re.compile(rf"^CHECK \(\s*\(?\s*({_IDENT})\s+IS NOT NULL\s*\)?\s*\)", re.I)


def _name(raw: str) -> str:
    """The table or column name of a possibly quoted, possibly schema-qualified identifier."""
    last: str = re.findall(_IDENT, raw)[-1]
    return last[1:-1].replace('""', '"') if last.startswith('"') else last.lower()


def split_statements(sql: str) -> list[tuple[int, str]]:
    """(offset, text) of each statement, cutting at `;` outside quotes and comments."""
    pieces, start = [], 0
    for match in _TOKENS.finditer(sql):
        if match.group() == ";":
            pieces.append((start, sql[start:match.end()]))
            start = match.end()
    if sql[start:].strip():
        pieces.append((start, sql[start:]))
    return [(offset + len(text) - len(text.lstrip()), text.strip()) for offset, text in pieces
            if normalize(text)]


def normalize(sql: str) -> str:
    """Comments removed, whitespace collapsed, the trailing `;` dropped."""
    def keep(match: re.Match[str]) -> str:
        return " " if match.group().startswith(("--", "/*")) else match.group()

    return re.sub(r"\s+", " ", _TOKENS.sub(keep, sql)).strip().rstrip(";").strip()


def _split_top(text: str) -> list[str]:
    """Comma-separated parts of `text` outside parentheses and quotes."""
    parts, depth, start = [], 0, 0
    masked = _TOKENS.sub(lambda m: "x" * len(m.group()), text)
    for i, char in enumerate(masked):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


@dataclass
class Effect:
    """What one statement (or one ALTER TABLE action) does."""

    kind: str
    locks: dict[str, str] = field(default_factory=dict)  # table -> lock mode
    rewrite: bool = False
    scan: bool = False
    risk: str = "low"
    note: str = ""
    flags: set[str] = field(default_factory=set)  # facts for migrator/lint.py


@dataclass
class Context:
    """What earlier statements established; the plan and the lint walk revisions in order."""

    new_tables: set[str] = field(default_factory=set)  # created in the current revision
    not_null_checks: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> col
    proven_not_null: set[tuple[str, str]] = field(default_factory=set)  # validated checks


def _alter_action(table: str, action: str, ctx: Context) -> Effect:
    """One action of an ALTER TABLE, per the PostgreSQL manual's ALTER TABLE page."""
    up = action.upper()
    exclusive = {table: "ACCESS EXCLUSIVE"}
    column = re.match(rf"^ALTER (?:COLUMN )?({_IDENT}) (.*)$", action, re.I)
    if column:
        col, rest = _name(column.group(1)), column.group(2).upper()
        if re.match(r"^(?:SET DATA )?TYPE\b", rest):
            return Effect("ALTER COLUMN TYPE", exclusive, rewrite=True, risk="high",
                          note="rewrites the table and its indexes under ACCESS EXCLUSIVE "
                               "(PostgreSQL skips the rewrite only for binary-compatible "
                               "changes such as a longer varchar); add a new column instead")
        if rest.startswith("SET NOT NULL"):
            if (table, col) in ctx.proven_not_null:
                return Effect("SET NOT NULL", exclusive, note=f"a validated CHECK ({col} IS "
                              "NOT NULL) proves it: no table scan")
            return Effect("SET NOT NULL", exclusive, scan=True, risk="high",
                          flags={"unproven_not_null"},
                          note="scans the whole table under ACCESS EXCLUSIVE; validate a "
                               f"CHECK ({col} IS NOT NULL) NOT VALID constraint first")
        if rest.startswith("DROP NOT NULL"):
            return Effect("DROP NOT NULL", exclusive, note="catalog-only")
        if rest.startswith(("SET DEFAULT", "DROP DEFAULT")):
            return Effect(rest.split(" ")[0] + " DEFAULT", exclusive,
                          note="catalog-only; existing rows keep their values")
        return Effect("ALTER COLUMN", exclusive, risk="unknown", note="not classified: read it")
    constraint = re.match(rf"^ADD (?:CONSTRAINT ({_IDENT}) )?"
                          r"(CHECK|FOREIGN KEY|UNIQUE|PRIMARY KEY|EXCLUDE)\b(.*)$", action, re.I)
    if constraint:
        name = _name(constraint.group(1)) if constraint.group(1) else ""
        what, body = constraint.group(2).upper(), constraint.group(2) + constraint.group(3)
        not_valid = up.endswith("NOT VALID")
        if what == "CHECK":
            nn = _NOT_NULL_CHECK.match(body)
            if nn and not_valid:
                ctx.not_null_checks[name] = (table, _name(nn.group(1)))
            elif nn:
                ctx.proven_not_null.add((table, _name(nn.group(1))))
            if not_valid:
                return Effect("ADD CHECK NOT VALID", exclusive, note="catalog-only; existing "
                              "rows are checked later by VALIDATE CONSTRAINT")
            return Effect("ADD CHECK", exclusive, scan=True, risk="high",
                          note="scans the table under ACCESS EXCLUSIVE; add it NOT VALID, "
                               "then VALIDATE CONSTRAINT in a later transaction")
        if what == "FOREIGN KEY":
            ref = re.search(rf"REFERENCES ({_QNAME})", body, re.I)
            locks = {table: "SHARE ROW EXCLUSIVE"}
            if ref:
                locks.setdefault(_name(ref.group(1)), "SHARE ROW EXCLUSIVE")
            if not_valid:
                return Effect("ADD FOREIGN KEY NOT VALID", locks, note="no scan; existing "
                              "rows are checked later by VALIDATE CONSTRAINT")
            return Effect("ADD FOREIGN KEY", locks, scan=True, risk="high",
                          note="scans the table while blocking writes to both tables; add it "
                               "NOT VALID, then VALIDATE CONSTRAINT in a later transaction")
        if "USING INDEX" in up:
            return Effect(f"ADD {what} USING INDEX", exclusive,
                          note="catalog-only: the index was built before (CONCURRENTLY)")
        return Effect(f"ADD {what}", exclusive, scan=True, risk="high",
                      note="builds an index under ACCESS EXCLUSIVE; build a unique index "
                           "CONCURRENTLY, then ADD ... USING INDEX")
    validate = re.match(rf"^VALIDATE CONSTRAINT ({_IDENT})", action, re.I)
    if validate:
        checked = ctx.not_null_checks.get(_name(validate.group(1)))
        if checked:
            ctx.proven_not_null.add(checked)
        return Effect("VALIDATE CONSTRAINT", {table: "SHARE UPDATE EXCLUSIVE"}, scan=True,
                      flags={"validate"},
                      note="scans the table; reads and writes go on")
    drop_constraint = re.match(rf"^DROP CONSTRAINT (?:IF EXISTS )?({_IDENT})", action, re.I)
    if drop_constraint:
        name = _name(drop_constraint.group(1))
        ctx.not_null_checks.pop(name, None)
        return Effect("DROP CONSTRAINT", exclusive, note="catalog-only; the guarantee is gone")
    add_column = re.match(rf"^ADD (?:COLUMN )?(?:IF NOT EXISTS )?({_IDENT}) (.*)$", action, re.I)
    if add_column:
        rest = add_column.group(2).upper()
        if (_VOLATILE.search(rest) or _SERIAL.match(rest) or " STORED" in rest
                or "AS IDENTITY" in rest):
            return Effect("ADD COLUMN", exclusive, rewrite=True, risk="high",
                          note="a volatile default (or a serial, identity or stored generated "
                               "column) rewrites the table under ACCESS EXCLUSIVE; add it "
                               "nullable, then backfill in batches")
        if "NOT NULL" in rest and "DEFAULT" not in rest:
            return Effect("ADD COLUMN", exclusive, risk="high",
                          note="NOT NULL without a default fails on a table with rows")
        return Effect("ADD COLUMN", exclusive, note="catalog-only (nullable, or a constant "
                      "default)")
    if re.match(r"^DROP (?:COLUMN )?", action, re.I):
        return Effect("DROP COLUMN", exclusive, risk="high",
                      note="catalog-only, but breaks every app version still using the "
                           "column: drop it only after no deployed version reads it")
    if up.startswith("RENAME"):
        return Effect("RENAME", exclusive, risk="high",
                      note="breaks every running app version that uses the old name")
    if re.match(r"^SET (?:LOGGED|UNLOGGED|TABLESPACE)\b", up):
        return Effect("ALTER TABLE SET", exclusive, rewrite=True, risk="high",
                      note="rewrites the table under ACCESS EXCLUSIVE")
    return Effect("ALTER TABLE", exclusive, risk="unknown", note="not classified: read it")


def _merge(effects: list[Effect]) -> Effect:
    merged = Effect(", ".join(dict.fromkeys(e.kind for e in effects)))
    for effect in effects:
        for table, mode in effect.locks.items():
            merged.locks[table] = max(mode, merged.locks.get(table, mode), key=LOCKS.index)
        merged.rewrite |= effect.rewrite
        merged.scan |= effect.scan
        merged.flags |= effect.flags
    merged.risk = max((e.risk for e in effects), key=RISKS.index)
    merged.note = "; ".join(e.note for e in effects if e.note and e.risk == merged.risk)
    return merged


def classify(sql: str, ctx: Context) -> Effect:
    """The effect of one statement; updates `ctx` with what it establishes."""
    text = normalize(sql)
    up = text.upper()
    table = re.match(rf"^CREATE (?:UNLOGGED )?TABLE (?:IF NOT EXISTS )?({_QNAME})", text, re.I)
    if table:
        name = _name(table.group(1))
        ctx.new_tables.add(name)
        if name == VERSION_TABLE:
            return Effect("ALEMBIC VERSION TABLE", risk="none", note="Alembic's bookkeeping")
        refs = {_name(r): "SHARE ROW EXCLUSIVE" for r in
                re.findall(rf"REFERENCES ({_QNAME})", text, re.I)} if " REFERENCES " in up else {}
        refs.pop(name, None)
        return Effect("CREATE TABLE", refs, risk="low" if refs else "none",
                      note="a new, empty table" + ("; briefly blocks writes to the "
                                                   "referenced table(s)" if refs else ""))
    index = re.match(rf"^CREATE (UNIQUE )?INDEX (CONCURRENTLY )?(?:IF NOT EXISTS )?"
                     rf"(?:(?!ON\b){_IDENT} )?ON (?:ONLY )?({_QNAME})", text, re.I)
    if index:
        name, unique = _name(index.group(3)), "UNIQUE " if index.group(1) else ""
        if index.group(2):
            return Effect(f"CREATE {unique}INDEX CONCURRENTLY", {name: "SHARE UPDATE EXCLUSIVE"},
                          scan=True, flags={"concurrently"},
                          note="builds while the app reads and writes; waits for older "
                               "transactions; a failed build leaves an INVALID index "
                               "(migrator.online rebuilds it on the next run)")
        return Effect(f"CREATE {unique}INDEX", {name: "SHARE"}, scan=True, risk="high",
                      note="blocks writes for the whole build; use "
                           "migrator.online.create_index (CONCURRENTLY)")
    drop_index = re.match(rf"^DROP INDEX (CONCURRENTLY )?(?:IF EXISTS )?({_QNAME})", text, re.I)
    if drop_index:
        owner = "(the index's table)"
        if drop_index.group(1):
            return Effect("DROP INDEX CONCURRENTLY", {owner: "SHARE UPDATE EXCLUSIVE"},
                          flags={"concurrently"},
                          note="waits for transactions using the index; the app goes on")
        return Effect("DROP INDEX", {owner: "ACCESS EXCLUSIVE"}, risk="medium",
                      note="brief ACCESS EXCLUSIVE on the table; prefer "
                           "migrator.online.drop_index (CONCURRENTLY)")
    drop_table = re.match(r"^DROP TABLE (?:IF EXISTS )?(.*)$", text, re.I)
    if drop_table:
        names = [_name(n) for n in _split_top(re.sub(r"\s+(?:CASCADE|RESTRICT)$", "",
                                                     drop_table.group(1), flags=re.I))]
        return Effect("DROP TABLE", dict.fromkeys(names, "ACCESS EXCLUSIVE"), risk="high",
                      note="deletes the table and its rows")
    alter = re.match(rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?({_QNAME}) (.*)$", text, re.I)
    if alter:
        name = _name(alter.group(1))
        return _merge([_alter_action(name, a, ctx) for a in _split_top(alter.group(2))])
    dml = re.match(rf"^(UPDATE|DELETE FROM|INSERT INTO) (?:ONLY )?({_QNAME})", text, re.I)
    if dml:
        verb, name = dml.group(1).split(" ")[0].upper(), _name(dml.group(2))
        if name == VERSION_TABLE:
            return Effect("ALEMBIC VERSION STAMP", {name: "ROW EXCLUSIVE"}, risk="none",
                          note="Alembic's bookkeeping")
        if verb == "INSERT":
            return Effect("INSERT", {name: "ROW EXCLUSIVE"})
        return Effect(verb, {name: "ROW EXCLUSIVE"}, scan=" WHERE " not in up, risk="medium",
                      flags={"dml"}, note="locks every row it changes until the revision "
                      "commits; backfill large tables in batches")
    truncate = re.match(rf"^TRUNCATE (?:TABLE )?(?:ONLY )?({_QNAME})", text, re.I)
    if truncate:
        return Effect("TRUNCATE", {_name(truncate.group(1)): "ACCESS EXCLUSIVE"}, risk="high",
                      note="deletes every row")
    if re.match(r"^(?:VACUUM FULL|CLUSTER)\b", up):
        return Effect(up.split(" ")[0], rewrite=True, risk="high",
                      note="rewrites the table under ACCESS EXCLUSIVE")
    if re.match(r"^(?:SET|RESET|SHOW|SELECT|COMMENT ON)\b", up):
        return Effect(up.split(" ")[0], risk="none")
    return Effect(up.split(" ")[0] if up else "EMPTY", risk="unknown",
                  note="not classified: read it")


@dataclass
class Statement:
    """One rendered statement of a revision, where it came from, and what it does."""

    sql: str
    effect: Effect
    outside_transaction: bool
    transaction: int  # which BEGIN..COMMIT of the revision's SQL it runs in; -1: none
    sql_line: int  # first line in the revision's rendered SQL (0-based, as squawk counts)
    sql_line_end: int
    source_lines: tuple[int, ...]  # lines of the revision file on the stack, innermost first

    @property
    def table(self) -> str | None:
        return next(iter(self.effect.locks), None)

    @property
    def lock(self) -> str | None:
        modes = list(self.effect.locks.values())
        return max(modes, key=LOCKS.index) if modes else None

    def as_dict(self, number: int) -> dict[str, Any]:
        e = self.effect
        return {
            "n": number, "sql": self.sql, "kind": e.kind, "table": self.table,
            "lock": self.lock, "locks": [{"table": t, "mode": m} for t, m in e.locks.items()],
            "blocks": BLOCKS.get(self.lock or "", "nothing"), "rewrite": e.rewrite,
            "scan": e.scan, "outside_transaction": self.outside_transaction, "risk": e.risk,
            "note": e.note, "source_line": self.source_lines[0] if self.source_lines else None,
        }


@dataclass
class RenderedRevision:
    revision: Revision
    sql: str
    statements: list[Statement]
    description: str
    error: str | None = None  # why it could not be rendered offline

    @property
    def notes(self) -> list[str]:
        """What the revision says about itself in the SQL (adoption, guarded steps)."""
        return [" ".join(n.split()) for n in re.findall(r"/\*(.*?)\*/", self.sql, re.S)]


@dataclass
class _Chunk:
    text: str
    source_lines: tuple[int, ...]


class _Capture(io.StringIO):
    """Alembic's offline output buffer: keeps each write with the revision lines behind it."""

    def __init__(self, revision_file: Path) -> None:
        super().__init__()
        self.path = str(revision_file.resolve())
        self.chunks: list[_Chunk] = []
        self._resolved: dict[str, str] = {}

    def write(self, text: str) -> int:
        lines = []
        frame = sys._getframe(1)
        while frame is not None:
            name = frame.f_code.co_filename
            if name not in self._resolved:
                self._resolved[name] = str(Path(name).resolve())
            if self._resolved[name] == self.path:
                lines.append(frame.f_lineno)
            frame = frame.f_back  # type: ignore[assignment]
        self.chunks.append(_Chunk(text, tuple(lines)))
        return len(text)


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic logs every revision it renders; here that is noise around the output."""
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def render(settings: Settings, revisions: list[Revision], ctx: Context | None = None,
           script: ScriptDirectory | None = None,
           live: psycopg.Connection[Any] | None = None) -> list[RenderedRevision]:
    """Each revision's offline SQL (range `down:rev`), split and classified, in order;
    with `live`, as it will run on that database (see runner.render_sql).

    A revision that cannot render (it queries the database, or raises) comes back with
    `error` set and no statements: it cannot be reviewed, and the caller says so.
    """
    from migrator.runner import render_sql, script_directory

    script = script or script_directory(settings)
    ctx = ctx or Context()
    rendered = []
    with _quiet_alembic():
        for rev in revisions:
            capture, error = _Capture(rev.path), None
            try:
                render_sql(settings, rev.down, rev.id, capture, script, live)
            except MigratorError as exc:  # it refuses this database (adoption's drift check)
                error = f"will fail with exit {exc.exit_code} ({exc.kind}): {exc.message}"
            except Exception as exc:  # reported per revision, not raised
                error = f"cannot render: {type(exc).__name__}: " + (
                    str(exc).splitlines()[0] if str(exc) else "")
            ctx.new_tables = set()
            module = script.get_revision(rev.id)
            doc = ((module.doc if module is not None else "") or "").strip()
            rendered.append(RenderedRevision(
                rev, "".join(c.text for c in capture.chunks),
                [] if error else _statements(capture.chunks, ctx),
                doc.splitlines()[0] if doc else "", error))
    return rendered


def _statements(chunks: list[_Chunk], ctx: Context) -> list[Statement]:
    statements: list[Statement] = []
    in_transaction, transactions, line = False, 0, 0
    for chunk in chunks:
        for offset, text in split_statements(chunk.text):
            word = normalize(text).upper()
            first = line + chunk.text.count("\n", 0, offset)
            if word in ("BEGIN", "START TRANSACTION"):
                in_transaction, transactions = True, transactions + 1
            elif word in ("COMMIT", "END", "ROLLBACK"):
                in_transaction = False
            else:
                effect = classify(text, ctx)
                if effect.locks and effect.locks.keys() <= ctx.new_tables:
                    effect.risk, effect.note = "none", "only tables created in this revision"
                    effect.flags.add("new_table")
                elif effect.flags & {"concurrently"} and in_transaction:
                    effect.risk, effect.note = "high", ("CONCURRENTLY cannot run inside a "
                                                        "transaction: this fails; use "
                                                        "migrator.online")
                statements.append(Statement(
                    text, effect, not in_transaction, transactions if in_transaction else -1,
                    first, first + text.count("\n"), chunk.source_lines))
        line += chunk.text.count("\n")
    return statements


def plan_data(rendered: list[RenderedRevision]) -> dict[str, Any]:
    """The plan as one JSON-ready document."""
    revisions, every = [], []
    for item in rendered:
        statements = [s.as_dict(i) for i, s in enumerate(item.statements, 1)]
        every += statements
        revisions.append({"revision": item.revision.id, "down_revision": item.revision.down,
                          "file": item.revision.path.name, "description": item.description,
                          "risk": "unknown" if item.error else max(
                              (s["risk"] for s in statements), key=RISKS.index, default="none"),
                          "error": item.error, "notes": item.notes,
                          "statements": statements})
    return {"revisions": revisions, "summary": {
        "revisions": len(revisions), "statements": len(every),
        "high_risk": sum(s["risk"] == "high" for s in every),
        "rewrites": sum(s["rewrite"] for s in every),
        "outside_transaction": sum(s["outside_transaction"] for s in every),
        "access_exclusive": sum(s["lock"] == "ACCESS EXCLUSIVE" for s in every),
    }}


def format_text(data: dict[str, Any], width: int = 72) -> str:
    """The plan as a table for a person (or a PR summary in a code block)."""
    head = (f"plan: {len(data['revisions'])} revision(s) to apply "
            f"(from {data.get('current') or 'base'} to {data.get('head')}; {data['source']})")
    out = [head]
    every = [s for rev in data["revisions"] for s in rev["statements"]]
    lock_w = max([len(s["lock"] or "-") for s in every] + [4])
    table_w = max([len(s["table"] or "-") for s in every] + [5])
    for rev in data["revisions"]:
        out += ["", f"{rev['revision']}  {rev['file']}  risk: {rev['risk']}",
                f"    {rev['description']}",
                *(f"    note: {note}" for note in rev["notes"]),
                *([f"    !! {rev['error']}"] if rev["error"] else []),
                f"  {'#':>2}  {'tx':<3}  {'lock':<{lock_w}}  {'table':<{table_w}}  rewrite  "
                f"{'risk':<7}  statement"]
        for s in rev["statements"]:
            sql = " ".join(s["sql"].split())
            sql = sql if len(sql) <= width else sql[:width - 3] + "..."
            out.append(f"  {s['n']:>2}  {'out' if s['outside_transaction'] else 'in':<3}  "
                       f"{s['lock'] or '-':<{lock_w}}  {s['table'] or '-':<{table_w}}  "
                       f"{'yes' if s['rewrite'] else 'no':<7}  {s['risk']:<7}  {sql}")
            if s["risk"] not in ("none", "low") and s["note"]:
                out.append(f"{'':>6}^ {s['note']}")
    if data.get("grants"):
        out += ["", "grants for the API's role(s), after the revisions (one transaction, "
                "lock_timeout retries):", *(f"  {g}" for g in data["grants"])]
    summary = data["summary"]
    out += ["", f"{summary['statements']} statement(s): {summary['high_risk']} high risk, "
            f"{summary['rewrites']} table rewrite(s), {summary['access_exclusive']} ACCESS "
            f"EXCLUSIVE, {summary['outside_transaction']} outside a transaction"]
    return "\n".join(out)
