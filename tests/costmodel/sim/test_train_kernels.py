"""Training GEMMs from the kernel database: the backward's GEMMs are the forward's transposes, read from the
same measured table; the rest keeps the roofline, and the coverage says which share was measured."""

import pytest

from costmodel.app.kernel_import import training_backend
from costmodel.counts.kernels import KernelPlan
from costmodel.inputs.loader import load_spec
from costmodel.inputs.specs import EngineSpec
from costmodel.sim.train_sim import simulate_training, stack_efficiency_of, training_coverage, training_timers
from costmodel.timing.kernel_timer import ROOFLINE
from tests.conftest import SCENARIOS


@pytest.fixture(scope="module")
def v3_train():
    """DeepSeek-V3's published pre-training layout, its GEMMs timed from SGLang's kernels on H100 SXM (H800's)."""
    v = load_spec("scenario", SCENARIOS / "deepseek-v3-pretrain.yaml").variants[0]
    t = v.training.model_copy(update={"kernel_database": EngineSpec(name="sglang")})
    return v.model, t, training_backend(v.model, t)


def test_a_gemm_backward_is_its_input_and_weight_gradient_gemms():
    """Y[m,n] = X[m,k] W[k,n]: dX = dY W^T is (m, k, n), dW = X^T dY is (k, n, m)."""
    plan = KernelPlan("fp8_block", "fp8_block", "bfloat16", "bfloat16", "bfloat16", ep=1, n_experts=1)
    shape = {"m": 4096, "n": 2112, "k": 7168}
    assert [(s["m"], s["n"], s["k"], p) for _, s, p in plan.passes("gemm", shape, "fwd_bwd")] == \
        [(4096, 2112, 7168, "fwd"), (4096, 7168, 2112, "fwd"), (7168, 2112, 4096, "fwd")]
    ffn = plan.passes("ffn", {"tokens": 4096, "hidden": 7168, "inter": 2048}, "bwd")
    assert [(op, p) for op, _, p in ffn] == [("elementwise", "bwd"), *[("gemm", "fwd")] * 2, ("elementwise", "bwd"),
                                             *[("gemm", "fwd")] * 2]


def test_a_training_ffn_is_six_measured_gemms_over_the_stack_efficiency(v3_train):
    """The shared expert's forward and backward: gate+up and down, each forward, dX and dW from the GEMM
    table (divided by the stack efficiency), and its norm and SwiGLU on the roofline."""
    m, t, measured = v3_train
    gemm_timer, _ = training_timers(m, t, None, measured)
    shape = {"tokens": 4096, "hidden": 7168, "inter": 2048}
    gemms = [(4096, 4096, 7168), (4096, 7168, 4096), (7168, 4096, 4096),  # gate+up: fwd, dX, dW
             (4096, 7168, 2048), (4096, 2048, 7168), (2048, 7168, 4096)]  # down
    by_hand = sum(measured.time("gemm", {"m": a, "n": b, "k": c, "dtype": "fp8_block"}) for a, b, c in gemms)
    parts = gemm_timer.parts("ffn", shape, "fwd_bwd")
    assert sum(s for fam, s in parts if fam == "gemm") == pytest.approx(by_hand / stack_efficiency_of(t))
    assert [fam for fam, _ in parts].count(ROOFLINE) == 4  # two elementwise kernels, forward and backward


def test_training_coverage_adds_up_and_is_reported(v3_train):
    m, t, measured = v3_train
    c = training_coverage(m, t, measured)
    assert sum(c["per_family"].values()) == pytest.approx(1.0)
    assert c["measured_share"] == pytest.approx(1 - c["per_family"][ROOFLINE])
    assert c["per_family"]["gemm"] > 0.1 and c["per_family"]["moe_experts"] > 0.1  # dense GEMMs and experts' forward
    r = simulate_training("v3", m, t, measured=measured)
    assert r.timing_coverage == c
    assert simulate_training("v3", m, t.model_copy(update={"kernel_database": None})).timing_coverage is None
