"""Timing model: roofline and alpha-beta equal hand computations; the interpolator is exact on a power law."""

import pytest

from costmodel.counts.comm import (
    Link,
    all_gather_time,
    all_reduce_time,
    all_to_all_time,
    p2p_time,
    reduce_scatter_time,
)
from costmodel.counts.opcounts import op_counts
from costmodel.inputs.profiles import Profile, ProfilePoint
from costmodel.timing.operators import (
    DEFAULT_EFFICIENCY,
    Device,
    Efficiency,
    MeasuredBackend,
    RooflineBackend,
    Timer,
)


def test_gemm_counts_by_hand():
    assert op_counts("gemm", {"m": 2, "n": 3, "k": 4}, "fwd", 2) == (2 * 2 * 3 * 4, (8 + 12 + 6) * 2)
    assert op_counts("gemm", {"m": 2, "n": 3, "k": 4}, "fwd_bwd", 2) == (3 * 48, 3 * 52)


def test_mla_decode_counts_by_hand():
    s = dict(b=1, q=1, ctx=10, hidden=8, heads=2, q_lora=0, kv_lora=4, nope=2, rope=2, v=2)
    flops, nbytes = op_counts("mla", {**s, "mode": "absorbed"}, "fwd", 2)
    weights = 8 * 2 * 4 + 8 * 6 + 4 * 2 * 4 + 2 * 2 * 8  # q_proj, kv_a, kv_b, o_proj = 64 + 48 + 32 + 32
    proj = 2 * (weights - 32)
    absorb = 2 * 2 * (2 + 2) * 4  # W_UK into the query, W_UV out of the latent output
    core = 2 * 2 * ((4 + 2) + 4) * 10  # 2 h (d_c + d_r + d_c) ctx
    assert flops == proj + absorb + core
    assert nbytes == (weights + 10 * 6 + (2 * 8 + 2 * 6)) * 2


def test_roofline_by_hand():
    dev = Device("toy", peak_flops_per_s=100.0, peak_bytes_per_s=10.0, dtype_bytes=2)
    eff = {**DEFAULT_EFFICIENCY, "gemm": Efficiency(0.5, 0.8, 1e-3)}
    t = RooflineBackend(dev, eff).time("gemm", {"m": 2, "n": 2, "k": 2})
    # 16 FLOPs / (100 * 0.5) = 0.32 s; 24 bytes / (10 * 0.8) = 3 s; + 1 ms
    assert t == pytest.approx(3.001)
    big = RooflineBackend(dev, eff).time("gemm", {"m": 100, "n": 100, "k": 100})
    assert big == pytest.approx(max(2e6 / 50, 60000 / 8) + 1e-3)


def test_alpha_beta_by_hand():
    link = Link(bw_bytes_per_s=100e9, efficiency=0.5, latency_s=2e-6)
    assert p2p_time(1e9, link) == pytest.approx(2e-6 + 0.02)
    assert all_to_all_time(5e8, link) == pytest.approx(2e-6 + 0.01)
    assert reduce_scatter_time(8e9, 8, link) == pytest.approx(7 * 2e-6 + 7 / 8 * 8e9 / 50e9)
    assert all_gather_time(8e9, 8, link) == reduce_scatter_time(8e9, 8, link)
    assert all_reduce_time(8e9, 8, link) == pytest.approx(2 * (7 * 2e-6 + 7 / 8 * 8e9 / 50e9))
    assert all_reduce_time(8e9, 1, link) == 0


def roofline_truth(m: int) -> float:
    """A device that reaches 40% of 1 TFLOP/s, 70% of 100 GB/s and has 20 µs of latency."""
    f, b = op_counts("gemm", {"m": m, "n": 64, "k": 64}, "fwd", 4)
    return max(f / 0.4e12, b / 0.7e11) + 2e-5


def synthetic_profile() -> Profile:
    header = {"device_name": "synthetic", "peak_matmul_flops_per_s": "1e12", "peak_copy_bytes_per_s": "1e11",
              "dtype": "float32"}
    pts = [ProfilePoint("gemm", "fwd", "float32", {"m": m, "n": 64, "k": 64}, roofline_truth(m))
           for m in (16, 64, 256, 1024, 4096)]
    return Profile("synthetic.csv", header, pts, 0)


def test_measured_interpolation_reproduces_a_roofline_device():
    backend = MeasuredBackend(synthetic_profile())
    for m in (16, 256, 4096):  # measured points come back exactly
        assert backend.time("gemm", {"m": m, "n": 64, "k": 64}) == pytest.approx(roofline_truth(m), rel=1e-9)
    for m in (24, 100, 700, 2000, 16384):  # between and beyond them, within 5% (the fit is on a grid)
        assert backend.time("gemm", {"m": m, "n": 64, "k": 64}) == pytest.approx(roofline_truth(m), rel=0.05)


def test_measured_interpolation_is_monotone_despite_noise():
    prof = synthetic_profile()
    noisy = [ProfilePoint(p.op, p.pass_, p.dtype, p.shape, p.median_s * (0.5 if i == 2 else 1.0))
             for i, p in enumerate(prof.points)]
    backend = MeasuredBackend(Profile("n.csv", prof.header, noisy, 0))
    times = [backend.time("gemm", {"m": m, "n": 64, "k": 64}) for m in range(16, 1025, 16)]
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))


def test_timer_uses_measured_where_covered_else_roofline():
    prof = synthetic_profile()
    timer = Timer(Device.from_profile(prof), prof)
    covered = timer.time("gemm", {"m": 64, "n": 64, "k": 64})
    assert covered == pytest.approx(timer.measured.time("gemm", {"m": 64, "n": 64, "k": 64}))
    other = {"m": 64, "n": 128, "k": 64}  # another curve: falls back to the fitted roofline
    assert timer.time("gemm", other) == timer.roofline.time("gemm", other)


def test_gpu_device_uses_the_file_peaks(models):
    from costmodel.inputs.loader import load_spec
    from tests.conftest import SCENARIOS

    h800 = load_spec("gpu", SCENARIOS / "gpus" / "h800.yaml")
    assert Device.from_gpu(h800, "bf16").peak_flops_per_s == 989.4e12
    assert Device.from_gpu(h800, "fp8").peak_flops_per_s == 1978.9e12
    a100 = load_spec("gpu", SCENARIOS / "gpus" / "a100-80gb.yaml")
    assert Device.from_gpu(a100, "fp8").peak_flops_per_s == 312e12  # no FP8 units: BF16 peak
