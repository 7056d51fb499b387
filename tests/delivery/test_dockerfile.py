"""migrator/Dockerfile and .dockerignore, statically: hadolint, a digest-pinned base, and a
build context that carries only what the image needs (never secrets or local state)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "migrator" / "Dockerfile"
HADOLINT = REPO / ".venv" / "bin" / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HADOLINT), "--no-color", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_hadolint_is_clean() -> None:
    proc = hadolint(DOCKERFILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_does_catch_mistakes(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install alembic\nWORKDIR app\n")
    proc = hadolint(bad)
    assert proc.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3000"):
        assert rule in proc.stdout, rule


def test_base_image_is_pinned_by_digest_and_says_how_to_update() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", base.group(1)), base.group(1)
    assert "imagetools inspect" in text  # the comment on how to bump the digest
    assert text.count("FROM ${BASE_IMAGE}") == 2  # both stages on the same pinned base


def test_runtime_is_non_root_and_read_only_ready() -> None:
    runtime = DOCKERFILE.read_text().split(" AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime
    assert "MIGRATOR_MIGRATIONS_DIR=/app/migrations" in runtime
    assert 'ENTRYPOINT ["migrator"]' in runtime
    for label in ("source", "version", "revision"):
        assert f"org.opencontainers.image.{label}=" in runtime, label


def test_build_context_is_an_allow_list() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "deny everything, then allow what the image needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "migrator", "migrations"}
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE.read_text(), re.M))
    assert {c.rstrip("/") for c in copied} <= allowed
