"""The benchmark's slope row (bench/suite.py): fitted over every run, printed with its
spread, and never turned into a ratio when a slope is not clearly above the noise."""

from __future__ import annotations

import random

import pytest

from bench.suite import fit, slope_row

LENGTHS = (27, 52, 102, 152, 202)


def line(per_revision: float, fixed: float, noise: float, seed: int) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(n, fixed + per_revision * n + rng.uniform(-noise, noise))
            for n in LENGTHS for _ in range(3)]


def test_fit_recovers_a_line_and_its_spread() -> None:
    exact = fit([(n, 0.5 + 0.004 * n) for n in LENGTHS for _ in range(3)])
    assert exact is not None
    assert exact.slope == pytest.approx(0.004)
    assert exact.intercept == pytest.approx(0.5)
    assert exact.stderr == pytest.approx(0, abs=1e-9)
    noisy = fit(line(0.004, 0.5, 0.05, seed=1))
    assert noisy is not None and noisy.stderr > 0


def test_fit_needs_two_lengths_and_three_points() -> None:
    assert fit([(10, 1.0), (20, 2.0)]) is None
    assert fit([(10, 1.0), (10, 1.1), (10, 1.2)]) is None


def test_clear_slopes_get_a_ratio_and_a_spread() -> None:
    row = slope_row(line(0.006, 0.6, 0.02, seed=2), line(0.004, 0.5, 0.02, seed=3))
    assert row.ratio == pytest.approx(1.5, rel=0.15)
    assert "±" in row.ours and "±" in row.alembic
    assert "5 lengths" in row.scenario and "x 3 runs" in row.scenario


def test_a_slope_lost_in_noise_gets_no_ratio() -> None:
    """The issue's "15.1 ms vs -0.8 ms, -17.79x": a flat, noisy tool has no ratio."""
    flat = line(0.0, 1.5, 0.3, seed=4)
    row = slope_row(line(0.006, 0.6, 0.02, seed=5), flat)
    assert row.ratio is None
    assert "±" in row.alembic
    assert "noise" in row.target
    assert row.cells()[3] == "-"
