"""The docs hold what the code promises: a troubleshooting section for every exit code, links
that land, and an index that lists every document.

The CLI, the alerts and the deploy summary all send people to `docs/troubleshooting.md#<code>`;
a missing anchor is a dead end at the worst moment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from migrator.errors import ALL_ERRORS

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
ANCHOR = re.compile(r'<a id="([^"]+)"></a>')


def anchors(path: Path) -> set[str]:
    """Explicit <a id> anchors plus GitHub's slugs of the headings."""
    text = path.read_text()
    found = set(ANCHOR.findall(text))
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_exit_code_has_a_section() -> None:
    text = TROUBLESHOOTING.read_text()
    codes = {0: "success", 2: "usage"} | {e.exit_code: e.kind for e in ALL_ERRORS}
    for code, kind in codes.items():
        match = re.search(rf'<a id="{code}"></a>\n## {code} — ([^\n]+)', text)
        assert match, f'troubleshooting.md needs <a id="{code}"></a> and a "## {code} — " heading'
        assert kind in match.group(1), f"section {code} should name its kind {kind!r}"
        section = text[match.end():].split('<a id="', 1)[0]
        for part in ("**Cause.**", "**Do.**"):
            assert part in section, f"section {code} lacks {part}"


def test_every_troubleshooting_link_in_the_code_lands() -> None:
    targets = anchors(TROUBLESHOOTING)
    sources = [*REPO.glob("migrator/*.py"), *REPO.glob("chart/files/*"),
               *REPO.glob(".github/scripts/*"), *DOCS.glob("*.md")]
    seen = 0
    for source in sources:
        for anchor in re.findall(r"troubleshooting\.md#([\w-]+)(?![\w<-])", source.read_text()):
            seen += 1
            assert anchor in targets, f"{source.relative_to(REPO)} links to missing #{anchor}"
    assert seen > 10


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        assert resolved.exists(), f"{path.name}: broken link {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{path.name}: no anchor #{anchor} in {file_part}"


def test_index_lists_every_document() -> None:
    index = (DOCS / "README.md").read_text()
    listed = {target.partition("#")[0] for target in LINK.findall(index)}
    for doc in sorted(DOCS.glob("*.md")):
        if doc.name != "README.md":
            assert doc.name in listed, f"add {doc.name} to the table in docs/README.md"


def test_architecture_has_a_diagram_of_the_whole_path() -> None:
    text = (DOCS / "architecture.md").read_text()
    assert "```mermaid" in text
    for node in ("helm", "hook", "migrator", "PostgreSQL", "statsd_exporter", "Prometheus",
                 "Alertmanager", "init container"):
        assert node.lower() in text.lower(), node
