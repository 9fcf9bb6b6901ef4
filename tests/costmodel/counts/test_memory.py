"""Per-GPU memory: hand computations on a tiny layout, and the ZeRO / recompute / schedule orderings."""

import pytest

from costmodel.counts.memory import (
    BYTES_ACT,
    activation_elements_per_token,
    in_flight_microbatches,
    serving_memory,
    sglang_reserved_bytes,
    stage_layers,
    training_memory,
)
from costmodel.counts.params import embedding_params, head_params, layer_params
from costmodel.inputs.loader import load_spec
from costmodel.inputs.specs import ClusterSpec, GPUSpec, InferenceSpec, ModelSpec, Parallelism, TrainingSpec
from tests.conftest import SCENARIOS

GPU = GPUSpec.model_validate({
    "name": "toy", "peak_flops_per_s": {"bf16": {"value": 1e12, "source": "test"}},
    **{k: {"value": v, "source": "test"} for k, v in [("hbm_bytes", 80e9), ("hbm_bw_bytes_per_s", 1e12),
       ("nvlink_bw_bytes_per_s", 1e11), ("nic_bw_bytes_per_s", 1e10), ("price_usd_per_hour", 1.0)]},
})
DENSE = ModelSpec(name="tiny", attention="mha", ffn="dense", vocab_size=1000, hidden_size=64,
                  num_hidden_layers=4, num_attention_heads=4, intermediate_size=256)


def train(par: Parallelism, model=DENSE, seqs=8, seq_len=16):
    return TrainingSpec(cluster=ClusterSpec(gpu=GPU, gpus_per_node=par.world_size, nodes=1),
                        parallelism=par, seq_len=seq_len, global_batch_seqs=seqs)


def test_stage_layers_uneven():
    assert [len(r) for r in stage_layers(60, 16)] == [4] * 12 + [3] * 4
    assert stage_layers(4, 2) == [range(0, 2), range(2, 4)]


def test_single_gpu_by_hand():
    t = train(Parallelism(zero_stage=0, micro_batches=2))
    mem = training_memory(DENSE, t)
    n = sum(layer_params(DENSE, i).dense for i in range(4)) + embedding_params(DENSE) + head_params(DENSE)
    assert mem.weights_bytes == 2 * n and mem.grads_bytes == 2 * n and mem.optimizer_bytes == 12 * n
    # 4 sequences of 16 tokens per micro-batch, 1F1B with pp=1 keeps one in flight; plus the logits
    per_token = sum(activation_elements_per_token(DENSE, i, "none") for i in range(4))
    assert mem.activations_bytes == BYTES_ACT * 64 * (per_token + 1000)


def test_zero_stages_shard_what_they_should():
    mems = [training_memory(DENSE, train(Parallelism(dp=4, zero_stage=z))) for z in range(4)]
    assert mems[1].optimizer_bytes == mems[0].optimizer_bytes / 4 and mems[1].grads_bytes == mems[0].grads_bytes
    assert mems[2].grads_bytes == mems[0].grads_bytes / 4 and mems[2].weights_bytes == mems[0].weights_bytes
    assert mems[3].weights_bytes == mems[0].weights_bytes / 4


def test_recompute_and_schedule_order(models):
    m = models["deepseek-v2"]
    levels = [activation_elements_per_token(m, 5, r) for r in ("none", "selective", "full")]
    assert levels[0] > levels[1] > levels[2] == m.hidden_size
    assert in_flight_microbatches("gpipe", 16, 144) == 144
    assert in_flight_microbatches("1f1b", 16, 144) == 16
    assert in_flight_microbatches("dualpipe", 16, 144) == 17


def test_expert_parallel_shards_experts(models):
    m = models["deepseek-v2-lite"]
    one = training_memory(m, train(Parallelism(dp=8, ep=1), model=m, seqs=8, seq_len=128))
    eight = training_memory(m, train(Parallelism(dp=8, ep=8), model=m, seqs=8, seq_len=128))
    experts = sum(layer_params(m, i).routed_experts for i in range(m.num_hidden_layers))
    assert one.weights_bytes - eight.weights_bytes == pytest.approx(2 * experts * 7 / 8)


def test_serving_memory_v2_node(models):
    from costmodel.inputs.loader import load_spec
    from tests.conftest import SCENARIOS

    node = load_spec("cluster", SCENARIOS / "clusters" / "h800-node.yaml")
    inf = InferenceSpec(cluster=node, parallelism=Parallelism(dp=8, ep=8, zero_stage=0), weight_bits=8, kv_bits=6)
    mem = serving_memory(models["deepseek-v2"], inf)
    # KV room = (0.9 * 80 GB - weights) / 25,920 B per token
    assert mem.kv_capacity_tokens == pytest.approx((0.9 * 80e9 - mem.weights_bytes) / 25_920)
    assert 35e9 < mem.weights_bytes < 45e9


def _r1_instance(gpu: str, gpus: int, tp: int, dp: int, ep: int, engine: str | None):
    spec = load_spec("gpu", SCENARIOS / "gpus" / f"{gpu}.yaml")
    return InferenceSpec(cluster={"gpu": spec, "gpus_per_node": gpus, "nodes": 1},
                         parallelism={"tp": tp, "dp": dp, "ep": ep, "zero_stage": 0}, weight_bits=8, max_running=128,
                         **({"engine": {"name": engine}} if engine else {}))


def test_sglang_reserve_by_hand():
    """SGL's rule, H200, DP8 attention (SGLang's tp_size 8), 128 graph slots, 8K chunks: 512 + 8192 x 1.5 +
    128 x 2 + 8/8 x 1024 + 128 x 8 x 3 = 17,152 MiB, above the 10 GiB floor. At 4,096 running a rank the
    graphs stop at SGLang's 512 slots: 512 + 12,288 + 1,024 + 1,024 + 512 x 8 x 4.5 = 33,280 MiB. TP2 alone
    at 4,096 (256 slots, no DP term): 512 + 12,288 + 512 + 2/8 x 1024 = 13,568 MiB."""
    inf = _r1_instance("h200", 8, 1, 8, 8, "sglang")
    assert sglang_reserved_bytes(inf.cluster.gpu.hbm_bytes.value, inf) == 17_152 * 2**20
    busy = inf.model_copy(update={"max_running": 4096})
    assert sglang_reserved_bytes(inf.cluster.gpu.hbm_bytes.value, busy) == 33_280 * 2**20
    tp2 = _r1_instance("h200", 2, 2, 1, 2, "sglang").model_copy(update={"max_running": 4096})
    assert sglang_reserved_bytes(141e9, tp2) == 13_568 * 2**20


def test_sglang_reserve_counts_the_launchers_chunk_not_a_ranks():
    """SGLang divides its chunked_prefill_size among DP-attention ranks after it sizes the reserve: a per-rank
    budget of 2,048 at DP8 is a launcher's 16,384, 8,192 x 1.5 MiB more than the default's 8,192."""
    inf = _r1_instance("h200", 8, 1, 8, 8, "sglang")
    assert inf.batch_tokens == 1024  # SGLang's 8,192 on an H200 (under 160 GiB), over 8 DP ranks
    wide = inf.model_copy(update={"max_batch_tokens": 2048})
    extra = sglang_reserved_bytes(141e9, wide) - sglang_reserved_bytes(141e9, inf)
    assert extra == 8192 * 1.5 * 2**20


def test_each_engine_memory_rule_on_r1_fp8_over_4_b200():
    """DeepSeek-R1 FP8 on 4 x B200 (180 GB): 167.8 GB of weights per GPU. vLLM's 0.9 of HBM (162 GB) and
    SGLang's pool (180 GB less a 14.2 GB reserve: 8K chunks, 128 graph slots, TP4) refuse it; TensorRT-LLM fits it and gives the
    cache 0.9 of the 12.2 GB left."""
    v3 = load_spec("model", SCENARIOS / "models" / "deepseek-v3.yaml")
    fits = {e: serving_memory(v3, _r1_instance("b200", 4, 4, 1, 4, e)) for e in (None, "vllm", "sglang", "trtllm")}
    assert [fits[e].fits for e in (None, "vllm", "sglang", "trtllm")] == [False, False, False, True]
    trt = fits["trtllm"]
    assert trt.kv_budget_bytes == pytest.approx(0.9 * (180e9 - trt.weights_bytes))


def test_expert_tp_holds_the_same_expert_bytes_as_ep_over_as_many_gpus(models):
    """Eight GPUs hold the routed experts once whether split by expert (ep 8) or by width (etp 8)."""
    v3, h200 = models["deepseek-v3"], load_spec("gpu", SCENARIOS / "gpus" / "h200.yaml")
    def weights(**par):
        inf = InferenceSpec(cluster={"gpu": h200, "gpus_per_node": 8, "nodes": 1}, weight_bits=8,
                            parallelism={"tp": 8, "zero_stage": 0, **par})
        return serving_memory(v3, inf).weights_bytes
    experts = sum(layer_params(v3, i).routed_experts for i in range(v3.num_hidden_layers))
    assert weights(etp=8) == pytest.approx(weights(ep=8))
    assert weights(etp=1) - weights(etp=8) == pytest.approx(experts * 7 / 8)  # 1 byte a weight
