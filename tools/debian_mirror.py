"""Print the Debian archive this machine's apt uses for SUITE, for `make base-image`.

The repository names no package mirror: every machine has its own (a company mirror, a
cache, a snapshot) and apt already knows it. The sources are read in apt's order:
`sources.list`, then `sources.list.d/*.list` (one-line format) and `*.sources` (deb822) by
name; the first `deb` source of SUITE with the `main` component wins, so third-party
repositories (their own suites) and `SUITE-security` are passed over.

    python3 tools/debian_mirror.py bookworm [/etc/apt]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

# (types, URIs, suites, components) of one source
Source = tuple[list[str], list[str], list[str], list[str]]


def one_line(text: str) -> Iterator[Source]:
    """`deb [options] URI SUITE COMPONENT...` lines."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        kind, rest = words[0], words[1:]
        if rest and rest[0].startswith("["):  # options: `[arch=amd64 signed-by=...]`
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) >= 3:
            yield [kind], [rest[0]], [rest[1]], rest[2:]


def deb822(text: str) -> Iterator[Source]:
    """Stanzas of `Types:`, `URIs:`, `Suites:`, `Components:` (and `Enabled: no`)."""
    for stanza in text.split("\n\n"):
        fields: dict[str, list[str]] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:  # a continuation line
                fields[key] += line.split()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.split()
        if fields.get("enabled", ["yes"])[0].lower() != "no":
            yield (fields.get("types", []), fields.get("uris", []), fields.get("suites", []),
                   fields.get("components", []))


def sources(apt: Path) -> Iterator[Source]:
    parts = apt / "sources.list.d"
    listed = sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources")) \
        if parts.is_dir() else []
    for path in [apt / "sources.list", *listed]:
        if path.is_file():
            text = path.read_text(errors="replace")
            yield from deb822(text) if path.suffix == ".sources" else one_line(text)


def mirror(suite: str, apt: Path = Path("/etc/apt")) -> str | None:
    for types, uris, suites, components in sources(apt):
        if "deb" in types and suite in suites and "main" in components and uris:
            return uris[0].rstrip("/")
    return None


def main(argv: list[str]) -> int:
    suite = argv[1] if len(argv) > 1 else "bookworm"
    apt = Path(argv[2]) if len(argv) > 2 else Path("/etc/apt")
    found = mirror(suite, apt)
    if found is None:
        print(f"no Debian {suite} archive (main) in {apt}/sources.list*: "
              "set DEBIAN_MIRROR=http://<your mirror>/debian", file=sys.stderr)
        return 1
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
