"""2026 parts and precisions: NVFP4 weights, FlashMLA's FP8 cache, FP4 peaks, NVLink domains."""

import pytest

from costmodel.counts.kvcache import flashmla_fp8_bytes_per_layer, kv_bytes_per_token
from costmodel.counts.memory import serving_memory
from costmodel.counts.params import params_total
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.loader import load_spec
from costmodel.inputs.specs import ClusterSpec, InferenceSpec, stored_bits
from costmodel.timing.operators import Device
from costmodel.timing.serve_costs import kernel_plan
from tests.conftest import SCENARIOS


def gpu(name):
    return load_spec("gpu", SCENARIOS / "gpus" / f"{name}.yaml")


def test_nvfp4_stores_four_and_a_half_bits_a_weight():
    """An E2M1 value a weight and an E4M3 scale a block of 16: 4 + 8 / 16 = 4.5 bits (NVFP4)."""
    assert stored_bits(4) == 4.5 and stored_bits(8) == 8 and stored_bits(16) == 16


def test_four_bit_weights_fill_memory_at_nvfp4s_size(models):
    """Kimi-K2 on 8 GB200s, EP8: every parameter once over the 8 GPUs at 4.5 bits."""
    kimi = models["kimi-k2"]
    inf = InferenceSpec(cluster={"gpu": gpu("gb200"), "gpus_per_node": 8, "nodes": 1}, weight_bits=4,
                        parallelism={"dp": 8, "ep": 8, "zero_stage": 0})
    dense_share = serving_memory(kimi, inf).weights_bytes
    eight = serving_memory(kimi, inf.model_copy(update={"weight_bits": 8})).weights_bytes
    assert dense_share == pytest.approx(eight * 4.5 / 8)
    assert params_total(kimi) * 4.5 / 8 / 8 < dense_share < params_total(kimi) * 4.5 / 8  # dense layers replicated


def test_flashmlas_fp8_cache_is_656_bytes_a_token_and_layer(models):
    """512 FP8 latent values, four FP32 scales (one per 128), 64 BF16 RoPE values: 512 + 16 + 128 (FMLA)."""
    v3 = models["deepseek-v3"]
    assert flashmla_fp8_bytes_per_layer(v3) == 656
    assert kv_bytes_per_token(v3, 8) == 656 * 61
    assert kv_bytes_per_token(v3, 16) == 576 * 2 * 61  # BF16: 576 values of 2 bytes
    assert kv_bytes_per_token(v3, 6) == 576 * 6 / 8 * 61  # V2's mixed 6-bit average stays per element


def test_fp4_peaks_where_the_part_has_fp4_tensor_cores():
    b200, h200 = gpu("b200"), gpu("h200")
    assert b200.compute_precision("fp4") == "fp4" and h200.compute_precision("fp4") == "fp8"
    dev = Device.from_gpu(b200, "fp4")
    assert (dev.peak_flops_per_s, dev.dtype_bytes) == (9.0e15, 4.5 / 8)
    assert Device.from_gpu(h200, "fp4").dtype_bytes == 1  # dequantised to FP8 math, said by compute_precision


def test_four_bit_weights_read_the_databases_nvfp4_kernels(models):
    inf = InferenceSpec(cluster={"gpu": gpu("b200"), "gpus_per_node": 8, "nodes": 1}, weight_bits=4,
                        parallelism={"tp": 8, "ep": 8, "zero_stage": 0})
    plan = kernel_plan(models["deepseek-v3"], inf)
    assert (plan.gemm_dtype, plan.moe_dtype) == ("nvfp4", "nvfp4")


def test_an_nvlink_domain_larger_than_the_part_comes_in_is_refused():
    """GB200 comes in racks of 72: 72 in one domain is one NVL72; 80 is not a domain; an HGX B200's is 8."""
    assert ClusterSpec(gpu=gpu("gb200"), gpus_per_node=72).num_gpus == 72
    for name, gpus in (("gb200", 80), ("b200", 16)):
        with pytest.raises(ValueError, match="gpus_per_node"):
            ClusterSpec(gpu=gpu(name), gpus_per_node=gpus)


def test_a_too_large_domain_in_a_cluster_file_is_one_error_naming_the_field(tmp_path):
    (tmp_path / "rack.yaml").write_text("name: big\ngpu: gb200\ngpus_per_node: 80\nnodes: 1\n")
    with pytest.raises(PlannerError) as e:
        load_spec("cluster", tmp_path / "rack.yaml")
    assert e.value.field == "gpus_per_node" and "at most 72" in e.value.problem


def test_expert_tp_is_written_moe_tp_as_the_engines_name_it():
    from costmodel.inputs.specs import Parallelism

    assert Parallelism.model_validate({"tp": 8, "moe_tp": 8}).etp == Parallelism(tp=8, etp=8).etp == 8


def test_ep48_in_an_nvl72_rack_sends_no_rdma_bytes(models):
    """DeepSeek-V3 decode at EP48 inside one GB200 rack: every expert rank is in the NVLink domain, so
    DeepEP's normal and low-latency kernels move no byte over the NIC; on 8-GPU B200 nodes EP48 does."""
    from costmodel.counts.deepep import low_latency_bytes, normal_bytes
    from costmodel.timing.serve_costs import MoELayer, step_model_for

    v3 = models["deepseek-v3"]
    def rdma(part: str, gpus_per_node: int) -> tuple[float, float]:
        inf = InferenceSpec(cluster={"gpu": gpu(part), "gpus_per_node": gpus_per_node, "nodes": 48 // gpus_per_node},
                            parallelism={"dp": 48, "ep": 48, "zero_stage": 0}, weight_bits=8, redundant_experts=32)
        moe: MoELayer = step_model_for(v3, inf).moe
        return (normal_bytes(64, 7168, 1, moe.fan, gpus_per_node)[0],
                low_latency_bytes(64, 8, 7168, 48, gpus_per_node)[0])
    assert rdma("gb200", 48) == (0.0, 0.0)
    assert all(b > 0 for b in rdma("b200", 8))


def test_nvfp4_experts_beside_fp8_attention(models):
    """moe_weight_bits 4 with weight_bits 8: the routed experts at 4.5 bits, the rest at 8; the experts'
    kernels are the database's nvfp4, the other GEMMs FP8; the report's bytes split the same way."""
    from costmodel.counts.params import all_layer_params
    from costmodel.counts.report import variant_report
    from costmodel.inputs.specs import Variant

    v3 = models["deepseek-v3"]
    base = InferenceSpec(cluster={"gpu": gpu("b200"), "gpus_per_node": 8, "nodes": 1}, weight_bits=8,
                         parallelism={"dp": 8, "ep": 8, "zero_stage": 0})
    mixed = base.model_copy(update={"moe_weight_bits": 4})
    routed = sum(lp.routed_experts for lp in all_layer_params(v3))
    assert serving_memory(v3, base).weights_bytes - serving_memory(v3, mixed).weights_bytes == \
        pytest.approx(routed / 8 * (8 - 4.5) / 8)
    plan = kernel_plan(v3, mixed)
    assert (plan.gemm_dtype, plan.moe_dtype) == ("fp8_block", "nvfp4")
    total = variant_report(Variant(name="v", model=v3, inference=mixed)).weight_bytes_total
    assert total == pytest.approx((params_total(v3) - routed) + routed * 4.5 / 8)


def test_a_disaggregated_unit_inside_a_rack_moves_its_kv_over_nvlink():
    """1 prefill instance of 4 GB200s and 2 decode instances of 8: 20 GPUs of one NVL72 rack, so the KV
    crosses NVLink; the same unit of B200 HGX nodes (domains of 8) crosses the NIC."""
    from costmodel.app.serving import kv_link
    from costmodel.inputs.specs import PrefillPool

    def unit(part: str) -> InferenceSpec:
        pool = PrefillPool(gpus_per_node=4, parallelism={"dp": 4, "ep": 4, "zero_stage": 0}, decode_instances=2)
        return InferenceSpec(cluster={"gpu": gpu(part), "gpus_per_node": 8, "nodes": 1}, prefill_pool=pool,
                             parallelism={"dp": 8, "ep": 8, "zero_stage": 0})
    assert (kv_link(unit("gb200")), kv_link(unit("b200"))) == ("nvlink", "nic")


def test_fp8_attention_math(models):
    """attention_bits 8: MLA's absorbed matmuls and core in FP8 in the kernel plan (the database's fp8
    matmul rows), and the roofline's attention at the FP8 peak and 1 byte an element."""
    from costmodel.timing.serve_costs import step_model_for

    v3 = models["deepseek-v3"]
    inf = InferenceSpec(cluster={"gpu": gpu("h200"), "gpus_per_node": 8, "nodes": 1}, weight_bits=8,
                        attention_bits=8, parallelism={"dp": 8, "ep": 8, "zero_stage": 0})
    plan = kernel_plan(v3, inf)
    assert (plan.attn_dtype, plan.bmm_dtype) == ("fp8", "fp8")
    assert kernel_plan(v3, inf.model_copy(update={"attention_bits": 16})).bmm_dtype == "bfloat16"
    assert step_model_for(v3, inf).attn_timer.device.dtype_bytes == 1


def test_nvfp4_weights_on_a_gpu_without_fp4_move_their_stored_bytes(models):
    """On an H200 (no FP4 tensor cores) 4-bit weights run FP8 math but are read at NVFP4's 4.5 bits."""
    from costmodel.timing.serve_costs import step_model_for

    inf = InferenceSpec(cluster={"gpu": gpu("h200"), "gpus_per_node": 8, "nodes": 1}, weight_bits=4,
                        parallelism={"dp": 8, "ep": 8, "zero_stage": 0})
    dev = step_model_for(models["deepseek-v3"], inf).timer.device
    assert (dev.peak_flops_per_s, dev.dtype_bytes) == (gpu("h200").peak_flops_per_s.fp8.value, 4.5 / 8)


def test_deepep_rows_describe_only_groups_as_wide_as_the_nodes_they_were_measured_on(models):
    """The database measured DeepEP on HGX nodes of 8 and on GB200 trays of 4 (its system files): EP48
    inside an NVL72 rack takes the link model, EP4 in the rack and EP8 on a B200 node the measurements."""
    from costmodel.inputs import kernel_db
    from costmodel.timing.serve_costs import step_model_for

    assert (kernel_db.node_gpus("gb200"), kernel_db.node_gpus("b200_sxm")) == (4, 8)
    def moe(part: str, ep: int):
        inf = InferenceSpec(cluster={"gpu": gpu(part), "gpus_per_node": ep, "nodes": 1}, weight_bits=8,
                            parallelism={"dp": ep, "ep": ep, "zero_stage": 0}, redundant_experts=(-256) % ep)
        return step_model_for(models["deepseek-v3"], inf).moe
    assert [moe(p, ep).deepep_measurable(ep) for p, ep in (("gb200", 48), ("gb200", 4), ("b200", 8))] == \
        [False, True, True]
