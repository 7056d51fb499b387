"""The repository names no package registry or mirror: each machine has its own (a company
mirror, a cache), and its apt, pip and npm configuration already say which. `make base-image`
takes the Debian archive from the machine's apt sources."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "debian_mirror.py"
# Domains of public package registries and distribution mirrors (not container registries:
# the project's images are published under its own name). Written as patterns, so that this
# file does not name them either.
REGISTRY = re.compile(r"\b(?:[\w-]+\.)*(?:" + "|".join([
    r"debian\.(?:org|net)", r"ubuntu\.com", r"pypi\.(?:org|io)", r"pythonhosted\.org",
    r"npmjs\.(?:org|com)", r"yarnpkg\.com", r"nodesource\.com", r"rubygems\.org",
    r"crates\.io", r"alpinelinux\.org", r"fedoraproject\.org", r"packages\.cloud\.google",
]) + r")\b", re.IGNORECASE)


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    return [REPO / name for name in names if name and (REPO / name).is_file()]


def test_no_tracked_file_names_a_package_registry() -> None:
    found = []
    for path in tracked_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(REPO)}: {m[0]}" for m in REGISTRY.finditer(text)]
    assert not found, "name no registry or mirror; take it from the machine:\n" + "\n".join(found)


def test_the_check_does_catch_a_registry() -> None:
    debian, npm = "deb.debian" + ".org", "registry.npmjs" + ".org"  # split: not named here
    assert REGISTRY.search(f"DEBIAN_MIRROR ?= http://{debian}/debian")
    assert REGISTRY.search(f'"resolved": "https://{npm}/x/-/x-1.0.0.tgz"')


def test_the_npm_lock_leaves_the_registry_to_npm() -> None:
    lock = json.loads((REPO / "tests" / "delivery" / "package-lock.json").read_text())
    assert not [name for name, pkg in lock["packages"].items() if "resolved" in pkg]


def _apt(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


DEB822 = """Types: deb
URIs: https://third.party.example/apt
Suites: nodistro
Components: main

Types: deb deb-src
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(
    ("files", "mirror"),
    [
        ({"sources.list": "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/"
                          "debian bookworm main\n"}, "http://one.example/debian"),
        ({"sources.list.d/debian.sources": DEB822}, "http://mirror.example/debian"),
        ({"sources.list.d/a-cloud.list": "deb https://cloud.example/apt cloud-sdk-bookworm main\n",
          "sources.list.d/debian.sources": DEB822}, "http://mirror.example/debian"),
        ({"sources.list": "deb-src http://src.example/debian bookworm main\n",
          "sources.list.d/b.sources": "Enabled: no\nTypes: deb\nURIs: http://off.example/d\n"
                                      "Suites: bookworm\nComponents: main\n",
          "sources.list.d/c.list": "deb http://c.example/debian bookworm main\n"},
         "http://c.example/debian"),
        ({"sources.list": "deb http://old.example/debian bullseye main\n"}, None),
    ],
)
def test_the_debian_mirror_is_the_one_apt_uses(tmp_path: Path, files: dict[str, str],
                                              mirror: str | None) -> None:
    apt = _apt(tmp_path, files)
    proc = subprocess.run(["python3", str(TOOL), "bookworm", str(apt)], capture_output=True,
                          text=True, timeout=30)
    assert (proc.stdout.strip() or None) == mirror, proc.stderr
    assert proc.returncode == (0 if mirror else 1)
    if mirror is None:
        assert "set DEBIAN_MIRROR=" in proc.stderr


def test_make_takes_the_mirror_from_apt_and_lets_it_be_overridden(tmp_path: Path) -> None:
    apt = _apt(tmp_path, {"sources.list.d/debian.sources": DEB822})

    def mirror(*args: str) -> str:
        show = "show-mirror: ; @echo $(DEBIAN_MIRROR)"
        return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO),
                               "--eval", show, "show-mirror", *args], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()

    assert mirror(f"APT_DIR={apt}") == "http://mirror.example/debian"
    assert mirror(f"APT_DIR={apt}", "DEBIAN_MIRROR=http://mine.example/debian") == \
        "http://mine.example/debian"
