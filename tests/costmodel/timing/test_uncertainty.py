"""Uncertainty bands: ordered percentiles, zero width for an exact timing model, and the draw itself."""

import math

import pytest

from costmodel.app.study import train_bands
from costmodel.inputs.loader import load_scenario
from costmodel.inputs.profiles import Profile, ProfilePoint
from costmodel.sim.train_sim import simulate_training
from costmodel.timing.uncertainty import (
    SOURCED_TIME_RANGE,
    TimingErrors,
    bands,
    profile_errors,
    sourced_errors,
)
from tests.conftest import SCENARIOS

V2 = load_scenario(SCENARIOS / "deepseek-v2-paper.yaml").variants[0]


def test_training_bands_are_ordered_and_straddle_the_point_estimate():
    b = train_bands(V2, sourced_errors(), draws=6)
    point = simulate_training(V2.name, V2.model, V2.training)
    for metric in ("step_time_s", "gpu_hours_per_trillion_tokens"):
        q = b[metric]
        assert q["p10"] <= q["p50"] <= q["p90"]
        assert q["p90"] > q["p10"]  # the sourced ranges are not all of zero width
    # every sourced range is at or above 1 except the MoE GEMM's, which the step barely depends on here
    assert b["step_time_s"]["p90"] >= point.step_time_s * 0.97


def test_an_exact_timing_model_gives_zero_width_bands():
    exact = TimingErrors(ranges={op: (1.0, 1.0) for op in SOURCED_TIME_RANGE})
    b = train_bands(V2, exact, draws=3)
    point = simulate_training(V2.name, V2.model, V2.training)
    for q in ("p10", "p50", "p90"):
        assert b["step_time_s"][q] == pytest.approx(point.step_time_s, rel=1e-12)
        assert b["gpu_hours_per_trillion_tokens"][q] == pytest.approx(point.gpu_hours_per_trillion_tokens, rel=1e-12)


def test_log_uniform_draws_by_hand():
    """An error log-uniform on [1, 4]: median 2, p10 4**0.1, p90 4**0.9."""
    b = bands(lambda scale: {"t": scale["gemm"]}, TimingErrors(ranges={"gemm": (1.0, 4.0)}), draws=4000)
    assert b["t"]["p50"] == pytest.approx(2.0, rel=0.03)
    assert b["t"]["p10"] == pytest.approx(4**0.1, rel=0.03)
    assert b["t"]["p90"] == pytest.approx(4**0.9, rel=0.03)


def test_profile_errors_are_the_held_out_ratios():
    """A profile on an exact power law: every held-out ratio is 1, so the band has zero width."""
    pts = [ProfilePoint("gemm", "fwd", "float32", {"m": m, "n": 256, "k": 256}, 2 * m * 256 * 256 / 1e11) for m in
           (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)]
    header = {"peak_matmul_flops_per_s": "1e11", "peak_copy_bytes_per_s": "1e15", "dtype": "float32"}
    errors = profile_errors(Profile("synthetic.csv", header, pts, 0))
    assert errors.ratios["gemm"] and all(math.isclose(r, 1.0, rel_tol=0.02) for r in errors.ratios["gemm"])
    assert "gemm" not in errors.ranges and "moe" in errors.ranges  # unprofiled ops keep their sourced range
