"""Layers timed as the sum of their kernels from the kernel database, and the share that was measured."""

import pytest

from costmodel.app.kernel_import import measured_backend
from costmodel.counts.kernels import KernelPlan, equal_work_isl
from costmodel.counts.opcounts import attention_shape
from costmodel.inputs.loader import load_spec
from costmodel.timing.kernel_timer import ROOFLINE
from costmodel.timing.serve_costs import step_model_for, timing_coverage
from tests.conftest import SCENARIOS


@pytest.fixture(scope="module")
def r1():
    """The 8xH200 DP8 + EP8 DeepSeek-R1 instance with SGLang's kernels, and its measured backend."""
    scenario = load_spec("scenario", SCENARIOS / "deepseek-r1-h200-engines.yaml")
    v = next(v for v in scenario.variants if v.name == "r1-h200-sglang")
    return v.model, v.inference, measured_backend(v.model, v.inference)


def test_equal_work_prompt_length_by_hand():
    """1,024 new tokens after 1,024 cached: 1024 x 1024 + 1024 x 1025 / 2 = 1,573,376 pairs; a prompt of s
    tokens has s(s+1)/2, so s = 1773 (1,572,651 pairs; 1774 would give 1,574,425)."""
    assert equal_work_isl(1024, 2048) == 1773
    assert equal_work_isl(512, 512) == 512  # no prefix: the prompt itself


def test_absorbed_mla_decode_is_ten_kernels_of_the_model_widths():
    v3 = load_spec("model", SCENARIOS / "models" / "deepseek-v3.yaml")
    plan = KernelPlan("fp8_block", "fp8_block", "bfloat16", "bfloat16", "bfloat16", ep=8, n_experts=256)
    kernels = plan.layer(*attention_shape(v3, 1, 16, 1, 4096, "absorbed"))
    assert kernels[3][1] == {"tokens": 16, "width": 1536, "dtype": "bfloat16"}
    assert [op for op, _ in kernels] == ["elementwise", "gemm", "gemm", "elementwise", "elementwise", "elementwise",
                                         "mla_bmm", "mla_generation", "mla_bmm", "gemm"]
    # attn_norm over 7168, q and kv norms over 1536 and 512, rope over 129 x 64 (128 heads' q_pe and one k_pe)
    assert [s["width"] for op, s in kernels if op == "elementwise"] == [7168, 1536, 512, 129 * 64]
    assert [(s["n"], s["k"]) for op, s in kernels if op == "gemm"] == [(2112, 7168), (24576, 1536), (7168, 16384)]
    assert kernels[7][1] == {"b": 16, "ctx": 4096, "heads": 128, "dtype": "bfloat16", "kv_dtype": "bfloat16"}


def test_a_layer_is_the_sum_of_its_kernels(r1):
    m, inf, measured = r1
    timer = step_model_for(m, inf, measured=measured).timer
    op, shape = attention_shape(m, 1, 32, 1, 2048, "absorbed")
    parts = timer.parts(op, shape)
    assert timer.time(op, shape) == pytest.approx(sum(s for _, s in parts))
    kinds = [kop for kop, _ in timer.plan.layer(op, shape)]
    # every kernel of V3's decode attention is in the database but its norms and rotary embedding, which sit
    # on the launch floor: no kernel the profile measured ran faster than its fastest
    assert [kop for (fam, _), kop in zip(parts, kinds, strict=True) if fam == ROOFLINE] == ["elementwise"] * 4
    assert min(t for fam, t in parts if fam == ROOFLINE) == measured.fastest_s
    each = {fam: measured.time(kop, kshape) for (fam, _), (kop, kshape) in
            zip(parts, timer.plan.layer(op, shape), strict=True) if fam == "mla_generation"}
    assert each["mla_generation"] == dict(parts)["mla_generation"]


def test_families_add_up_to_the_iteration_without_overlap(r1):
    """Without two-batch overlap an iteration is a sum of kernel times, so its families' seconds add up to
    it exactly; the R1 instance's iterations are at least 80% measured (the issue's bar)."""
    m, inf, measured = r1
    cov = timing_coverage(m, inf, measured, decode_batch=1024, ctx=2048, chunk_tokens=1024)
    for it in ("decode", "prefill"):
        assert sum(cov[it]["per_family"].values()) == pytest.approx(1.0)
        assert cov[it]["measured_share"] >= 0.8
    args = ([], 1024, 1024 * 2048)
    whole = step_model_for(m, inf, measured=measured).time(*args)
    summed = sum(step_model_for(m, inf, measured=measured, only=f).time(*args) for f in cov["decode"]["per_family"])
    assert summed == pytest.approx(whole, rel=1e-9)


def test_deepep_fed_experts_fall_back_to_the_fused_kernel(r1):
    """EP8's experts behind DeepEP's normal kernels are DeepGEMM's contiguous ones, measured by SGLang
    0.5.10 (backward-filled); at an EP the DeepEP tables lack the fused kernel's rows answer."""
    m, inf, measured = r1
    shape = {"tokens": 8192, "hidden": 7168, "inter": 2048, "top_k": 8, "experts": 256, "ep": 8, "tp": 1,
             "dtype": "fp8_block"}
    assert measured.lookup("moe_experts", {**shape, "kernel": "deepep_contiguous"}) is not None
    timer = step_model_for(m, inf, measured=measured).timer
    layer = {"tokens": 1024, "hidden": 7168, "experts": 32, "top_k": 8, "inter": 2048, "shared_inter": 0, "a2a": "normal"}
    fam_s = dict(timer.parts("moe", layer))
    assert fam_s["moe_experts"] == measured.time("moe_experts", {**shape, "kernel": "deepep_contiguous"})


def test_a_per_tensor_fp8_kernel_the_profile_lacks_is_timed_by_the_block_scaled_one(r1):
    m, inf, measured = r1
    timer = step_model_for(m, inf.model_copy(update={"fp8_moe_scaling": "tensor"}), measured=measured).timer
    layer = {"tokens": 1024, "hidden": 7168, "experts": 32, "top_k": 8, "inter": 2048, "shared_inter": 0, "a2a": "normal"}
    (_, shape), = [k for k in timer.plan.layer("moe", layer) if k[0] == "moe_experts"]
    assert shape["dtype"] == "fp8" and measured.lookup("moe_experts", shape) is None  # SGLang measured no per-tensor rows
    assert dict(timer.parts("moe", layer))["moe_experts"] == measured.time("moe_experts", {**shape, "dtype": "fp8_block"})


def test_ep_inside_attention_tp_moves_no_tokens(r1):
    """TP8 + EP8 on 8 GPUs: every rank holds the tokens after attention's all-reduce, so no dispatch or
    combine runs; DP8 + EP8 must send each token to its experts' ranks."""
    m, inf, measured = r1
    tp8 = inf.model_copy(update={"parallelism": inf.parallelism.model_copy(update={"tp": 8, "dp": 1})})
    for instance, moves in ((tp8, False), (inf, True)):
        moe = step_model_for(m, instance, measured=measured).moe
        assert moe.all_to_all is moves
        assert (moe.comm_s(256, decode_only=True) > 0) is moves


def test_the_expert_kernel_roofline_reads_only_the_experts_its_tokens_reach():
    """8 tokens x top-8 over 256 experts on EP8: a rank's 32 experts each get a token with probability
    1 - (1 - 8/256)^8 = 0.2240, so 7.17 of them are read, not 32."""
    from costmodel.counts.kernels import kernel_counts

    shape = {"tokens": 8, "hidden": 7168, "inter": 2048, "top_k": 8, "experts": 256, "ep": 8, "tp": 1, "dtype": "fp8"}
    _, nbytes = kernel_counts("moe_experts", shape, 2)
    touched = 32 * (1 - (1 - 8 / 256) ** 8)
    assert nbytes == pytest.approx(touched * 3 * 7168 * 2048 + 8 * 8 / 8 * 2 * 7168)


def test_expert_tp_inside_attention_tp_reads_the_databases_tp_rows(r1):
    """TP8 attention with the experts split TP8 (moe_tp 8, moe_ep 1, as TensorRT-LLM runs R1): no tokens
    move, and every GPU's expert kernel is the database's moe_tp 8 row over all the group's tokens."""
    m, inf, measured = r1
    par = inf.parallelism.model_copy(update={"tp": 8, "dp": 1, "ep": 1, "etp": 8})
    sm = step_model_for(m, inf.model_copy(update={"parallelism": par}), measured=measured)
    assert not sm.moe.all_to_all and sm.moe.comm_s(256, decode_only=True) == 0.0
    assert sm.group_tokens(256) == 256  # one expert group of all 8 GPUs sees every token
    layer = {"tokens": sm.moe.busiest_tokens(256), "hidden": 7168, "experts": 256, "top_k": 8, "inter": 2048,
             "shared_inter": 0, **sm.moe.expert_tp_key()}
    (_, shape), = [k for k in sm.timer.plan.layer("moe", layer) if k[0] == "moe_experts"]
    assert (shape["tokens"], shape["ep"], shape["tp"]) == (256, 1, 8)
    assert measured.lookup("moe_experts", shape) is not None


def test_the_moe_roofline_counts_one_slice_of_each_expert_under_expert_tp():
    """1/etp of every expert's width: the routed FLOPs and weight bytes divide by etp, the router's do not."""
    from costmodel.counts.opcounts import op_counts

    shape = {"tokens": 64, "hidden": 7168, "experts": 256, "top_k": 8, "inter": 2048, "shared_inter": 0}
    (f1, _), (f8, _) = op_counts("moe", shape), op_counts("moe", {**shape, "tp": 8})
    router = 2 * 64 * 7168 * 256
    assert f1 - router == pytest.approx(8 * (f8 - router)) and f1 - router == 6 * 64 * 8 * 7168 * 2048
