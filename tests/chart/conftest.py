"""Fixtures of the chart tests: each values file is rendered once per session."""

from __future__ import annotations

import pytest
from chart_render import ENVIRONMENTS, Rendered, rendered_file


@pytest.fixture(params=ENVIRONMENTS)
def each_env(request: pytest.FixtureRequest) -> Rendered:
    return rendered_file(request.param)


@pytest.fixture(scope="module")
def prod() -> Rendered:
    return rendered_file("prod.yaml")


@pytest.fixture(scope="module")
def dev() -> Rendered:
    return rendered_file("dev.yaml")


@pytest.fixture(scope="module")
def default() -> Rendered:
    return rendered_file("default")
