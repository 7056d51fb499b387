"""The Kubernetes definitions chart/values.schema.json embeds under `$defs`.

Values passed through to Kubernetes (security contexts, affinity, tolerations, EnvVars, pull
secrets, NetworkPolicy peers) are validated against Kubernetes' own definitions, taken from
the strict schemas bundled with kubernetes-validate and embedded so `$ref`s resolve offline
(Helm would fetch a remote `$ref` at lint/install time). Only the definitions the schema
refers to, and what they refer to in turn, are embedded.

Regenerate after adding a `$ref` or to move to another Kubernetes version:

    .venv/bin/python tests/chart/schema_defs.py [VERSION]

test_chart_lint_schema.py fails when the embedded definitions differ from what this produces.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate

SCHEMA = Path(__file__).resolve().parents[2] / "chart" / "values.schema.json"
COMMENT = ("$defs: the Kubernetes v{version} definitions of kubernetes-validate "
           "(tests/chart/schema_defs.py)")
_COMMENT_RE = re.compile(r"Kubernetes v([0-9.]+) definitions")
_REF_PREFIX = "#/$defs/"


def bundled_definitions(version: str) -> dict[str, Any]:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = root / f"v{version}-local-strict" / "_definitions.json"
    defs: dict[str, Any] = json.loads(path.read_text())["$defs"]
    return defs


def _local(node: Any) -> Any:
    """The same definition with its `$ref`s pointing into this document."""
    if isinstance(node, dict):
        return {k: (_REF_PREFIX + v.rsplit("/", 1)[-1] if k == "$ref" else _local(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_local(v) for v in node]
    return node


def refs(node: Any) -> set[str]:
    """Names of the local `$defs` a schema fragment refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
                found.add(value[len(_REF_PREFIX):])
            else:
                found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def closure(roots: set[str], version: str) -> dict[str, Any]:
    """`roots` and every definition they reach, with local `$ref`s, sorted by name."""
    bundled = bundled_definitions(version)
    out: dict[str, Any] = {}
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = _local(bundled[name])
        todo += sorted(refs(out[name]) - set(out))
    return dict(sorted(out.items()))


def embedded_version(schema: dict[str, Any]) -> str:
    match = _COMMENT_RE.search(schema.get("$comment", ""))
    assert match, "values.schema.json lacks the $comment naming its Kubernetes version"
    return match.group(1)


def expected_defs(schema: dict[str, Any], version: str) -> dict[str, Any]:
    """What `$defs` must hold for the `$ref`s of the rest of the schema."""
    rest = {k: v for k, v in schema.items() if k != "$defs"}
    return closure(refs(rest), version)


def regenerate(version: str) -> None:
    schema = json.loads(SCHEMA.read_text())
    schema["$comment"] = COMMENT.format(version=version)
    schema["$defs"] = expected_defs(schema, version)
    SCHEMA.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    regenerate(sys.argv[1] if len(sys.argv) > 1 else kubernetes_validate.latest_version())
