"""Expressions compare as PostgreSQL spells them, give or take what does not change them.

`check`, `status` and adoption compare the live schema's defaults, CHECKs and index
expressions with the models' as text. Whitespace, parentheses around the whole
expression, schema qualifiers and a cast to the column's own type must not count as drift
(PostgreSQL adds them when it stores an expression); anything else must.
"""

from __future__ import annotations

import pytest

from migrator.schema import Difference, matches, normalize_expr

SAME = {
    "whitespace": ("n  >\n  0", "n > 0"),
    "outer parentheses": ("((n > 0))", "n > 0"),
    "one pair": ("(lower(label))", "lower(label)"),
    "schema qualifiers": ("pg_catalog.lower(public.f(x))", "lower(f(x))"),
    "a parenthesised cast to the column's type": ("('0'::integer)", "0"),
    "a negative decimal literal": ("'-1.50'", "-1.50"),
    "boolean literals": ("'true'", "true"),
}


@pytest.mark.parametrize(("stored", "written"), SAME.values(), ids=list(SAME))
def test_what_postgres_adds_does_not_count(stored: str, written: str) -> None:
    assert normalize_expr(stored, "integer") == normalize_expr(written, "integer")


def test_a_cast_to_the_columns_own_type_does_not_count() -> None:
    assert normalize_expr("'x'::character varying", "character varying") == "'x'"
    assert normalize_expr("'{}'::jsonb", "jsonb") == "'{}'"
    assert normalize_expr("(now())::timestamp with time zone",
                          "timestamp with time zone") == "now()"


DIFFERENT = {
    "a cast to another type": ("'x'::text", "'x'", "character varying"),
    "a cast without knowing the column's type": ("'x'::text", "'x'", None),
    "parentheses that do not wrap everything": ("(a) AND (b)", "a) AND (b", None),
    "a qualifier of another schema": ("audit.f(x)", "f(x)", None),
    "a name that ends like a qualifier": ("mypublic.f(x)", "f(x)", None),
    "another number": ("'10'", "1", None),
    "a quoted word": ("'yes'", "yes", None),
}


@pytest.mark.parametrize(("one", "other", "base"), DIFFERENT.values(), ids=list(DIFFERENT))
def test_what_changes_the_expression_counts(one: str, other: str, base: str | None) -> None:
    assert normalize_expr(one, base) != normalize_expr(other, base)


def test_inner_parentheses_are_kept() -> None:
    assert normalize_expr("((a) AND (b))") == "(a) AND (b)"
    assert normalize_expr("(a + b) * c") == "(a + b) * c"
    assert normalize_expr("(x)") == "x"


def test_no_expression_stays_none() -> None:
    assert normalize_expr(None, "integer") is None


def test_only_warnings_mean_the_schema_matches() -> None:
    warn = Difference("users", "nickname", "extra column", "warn")
    assert matches([]) and matches([warn])
    for action in ("create", "rebuild", "refuse"):
        assert not matches([warn, Difference("users", "x", "problem", action)])  # type: ignore[arg-type]


def test_a_difference_names_its_table_and_item() -> None:
    assert str(Difference("users", "email", "column is missing", "refuse")) == \
        "users.email: column is missing"
    assert str(Difference("notes", None, "table is missing", "create")) == \
        "notes: table is missing"
