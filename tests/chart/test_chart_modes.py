"""migrations.mode: Helm hook, Argo CD PreSync hook, or no Job at all."""

from __future__ import annotations

from chart_render import FULLNAME, Rendered, hook_annotations, render


def test_argocd_mode_uses_presync_hooks_and_no_helm_hooks() -> None:
    rendered = render({"migrations": {"mode": "argocd", "hookWeight": 2}})
    job = rendered.job()
    assert hook_annotations(job) == {
        "argocd.argoproj.io/hook": "PreSync",
        "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation,HookSucceeded",
        "argocd.argoproj.io/sync-wave": "2",
    }
    hooks = [o for o in rendered.objects if hook_annotations(o)]
    assert {o["kind"] for o in hooks} == {"Job", "ServiceAccount"}
    for obj in hooks:
        assert not any(k.startswith("helm.sh/") for k in obj["metadata"]["annotations"])
        if obj["kind"] != "Job":
            assert obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "1"


def test_none_mode_renders_no_job_but_the_api_still_waits() -> None:
    rendered = render({"migrations": {"mode": "none"}, "networkPolicy": {"enabled": True}})
    assert rendered.of_kind("Job") == []
    assert [o for o in rendered.objects if hook_annotations(o)] == []
    assert rendered.find("ServiceAccount", f"{FULLNAME}-migrations") is None
    (init,) = rendered.api()["spec"]["template"]["spec"]["initContainers"]
    assert init["args"][:2] == ["check", "--wait"]
    assert "no Job was run" in rendered.notes


def test_helm_mode_is_the_default(default: Rendered) -> None:
    assert default.values["migrations"]["mode"] == "helm"
    assert "helm.sh/hook" in default.job()["metadata"]["annotations"]
