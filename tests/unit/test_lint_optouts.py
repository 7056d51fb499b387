"""The opt-out comments of `migrator lint`, and where they apply."""

from __future__ import annotations

from migrator.errors import ALL_ERRORS, LintFailed
from migrator.lint import Finding, Report, _covering, markers

SOURCE = """\
def upgrade() -> None:
    # Adds the index the search page needs.
    # lint: allow require-concurrent-index-creation, ban-drop-column -- users is tiny
    op.create_index("a", "users", ["x"])
    op.create_index("b", "users", ["y"])  # lint: allow require-concurrent-index-creation -- ok
    x = 1
    # lint: allow changing-column-type
    op.alter_column("users", "y", type_=sa.Text())
"""


def test_markers_are_parsed_with_their_rules_and_reason() -> None:
    found = markers(SOURCE)
    assert sorted(found) == [3, 5, 7]
    assert found[3].rules == {"require-concurrent-index-creation", "ban-drop-column"}
    assert found[3].reason == "users is tiny"
    assert found[5].reason == "ok"
    assert found[7].reason == ""


def test_a_marker_covers_the_call_below_its_comment_block_or_on_its_line() -> None:
    lines, found = SOURCE.splitlines(), markers(SOURCE)
    assert [m.line for m in _covering(lines, (4,), found)] == [3]
    assert [m.line for m in _covering(lines, (5,), found)] == [5]
    assert _covering(lines, (6,), found) == []
    # any line of the revision on the stack counts (a helper called from upgrade())
    assert [m.line for m in _covering(lines, (8, 4), found)] == [7, 3]


def test_report_fails_only_on_findings_not_allowed() -> None:
    allowed = Finding("0003", "v/0003.py", 4, "rule-a", "squawk", "m", "SQL", "reviewed")
    failing = Finding("0003", "v/0003.py", 8, "rule-b", "migrator", "m", "SQL")
    assert Report(1, 2, [allowed]).failures == []
    assert "1 finding(s) allowed" in Report(1, 2, [allowed]).message()
    report = Report(1, 2, [allowed, failing])
    assert report.failures == [failing]
    assert "v/0003.py:8 [rule-b, migrator]" in report.message()


def test_lint_has_its_own_exit_code() -> None:
    assert LintFailed.exit_code == 16 and LintFailed.kind == "lint"
    assert len({e.exit_code for e in ALL_ERRORS}) == len(ALL_ERRORS)
