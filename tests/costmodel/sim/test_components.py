"""Component tests that pin one formula or one scheduling decision each, on hand-computed values. Each
guards a one-line bug that the end-to-end paper tests let through (issue 11): DP gradient sync set to
zero, optimizer traffic of 4 B instead of 28 B per parameter, preemption of the oldest request, a
widened saturation window, and the attention weight-gradient time set to zero."""

from collections import deque

import numpy as np
import pytest
import simpy

from costmodel.inputs.loader import load_spec
from costmodel.inputs.requests import RequestArrays
from costmodel.inputs.specs import ClusterSpec, ModelSpec, Parallelism, TrainingSpec, WorkloadSpec
from costmodel.sim.serve_sim import Engine, Instance, Pool, RequestState, saturated_throughput
from costmodel.timing.operators import Device, Timer
from costmodel.timing.train_costs import _attention_times, build_stage_costs
from tests.conftest import SCENARIOS

H800 = load_spec("gpu", SCENARIOS / "gpus" / "h800.yaml")
NVLINK_BYTES_PER_S = 153e9  # DeepEP's measured 153 of 200 GB/s (comm.NVLINK_EFFICIENCY)
HBM_BYTES_PER_S = 2.7e12  # DeepGEMM's 2.7 of 3.35 TB/s (timing.DEFAULT_EFFICIENCY["gemm"].memory)

# A two-layer MHA model small enough to count by hand: per layer attention 4·h·h = 256, two RMSNorms
# 2·h = 16, SwiGLU 3·h·32 = 768 -> 1,040; embedding 16·8 = 128; head 128 + final norm 8.
TINY = ModelSpec(name="tiny", attention="mha", ffn="dense", vocab_size=16, hidden_size=8, num_hidden_layers=2,
                 num_attention_heads=2, intermediate_size=32)
TINY_PARAMS = 2 * 1040 + 128 + 136


def tiny_training(**par) -> TrainingSpec:
    """dp 4 on one 4-GPU node (NVLink), one stage, ZeRO-1, four sequences of 4 tokens."""
    return TrainingSpec(cluster=ClusterSpec(gpu=H800, gpus_per_node=4, nodes=1),
                        parallelism=Parallelism(dp=4, micro_batches=1, zero_stage=1, **par),
                        seq_len=4, global_batch_seqs=4)


def tiny_costs():
    t = tiny_training()
    return build_stage_costs(TINY, t, Timer(Device.from_gpu(H800)), Timer(Device.from_gpu(H800)))


def test_dp_sync_is_a_ring_reduce_scatter_and_all_gather_of_bf16_gradients():
    (stage,) = tiny_costs()
    ring = 3 / 4 * 2 * TINY_PARAMS / NVLINK_BYTES_PER_S  # (n-1)/n of the 2-byte buffer, over 4 ranks
    assert stage.dp_sync_s == pytest.approx(2 * ring)  # reduce-scatter + all-gather


def test_optimizer_step_moves_28_bytes_per_parameter_of_its_zero_shard():
    (stage,) = tiny_costs()
    # FP32 master, m, v read and written (24 B), BF16 weight written and gradient read (4 B)
    assert stage.optimizer_s == pytest.approx(28 * TINY_PARAMS / 4 / HBM_BYTES_PER_S)


class RooflineStub:
    """A timer whose forward takes 1 s and forward + backward 3 s (compute-bound: backward = 2x)."""

    def time(self, op, shape, pass_="fwd"):
        return {"fwd": 1.0, "fwd_bwd": 3.0}[pass_]


def test_attention_weight_gradient_is_the_projections_share_of_the_backward():
    # one sequence of 4 tokens, 2 heads of 4: projections 2·b·q·h·d·(2·heads + 2·kv) = 2048 FLOPs,
    # scores and weighting 2·heads·(d + d)·pairs with 10 causal pairs = 320 FLOPs. The backward (2 s)
    # is 2·(proj + core); its weight-gradient half is one proj-sized GEMM: 2 s · 2048 / (2 · 2368).
    fwd, dx, dw = _attention_times(TINY, tiny_training(), 1, RooflineStub(), RooflineStub())
    assert fwd == 1.0
    assert dw == pytest.approx(2048 / 2368)
    assert dx == pytest.approx(2 - 2048 / 2368)


def two_decodes_one_free_block() -> tuple[Engine, Pool]:
    """Requests 0 and 1 (admitted in that order) each fill their only 64-token block; one block is free."""
    n, block = 2, 64
    reqs = RequestArrays(np.zeros(n), np.full(n, 64), np.full(n, 10))
    state = RequestState(reqs.prompt_tokens.copy(), reqs.output_tokens.copy(), np.zeros(n))
    state.prefilled[:] = state.ctx[:] = 64
    state.held[:] = 1
    state.generated[:] = 1
    pool = Pool("mixed", Instance(None, kv_capacity_tokens=3 * block, budget_tokens=1024, max_running=8),
                blocks_total=3, final=True)
    pool.free, pool.running = 1, np.array([0, 1])
    w = WorkloadSpec(prompt_tokens={"value": 64}, output_tokens={"value": 10}, arrival="burst", requests=n)
    return Engine(simpy.Environment(), reqs, state, [pool], block, w, None, None, True), pool


def test_preemption_evicts_the_newest_request_first():
    eng, pool = two_decodes_one_free_block()
    dec, needs = eng.preempt(pool)
    assert pool.waiting == deque([1])  # the newest, which has the least invested (vLLM recompute)
    assert pool.running.tolist() == [0] and dec.tolist() == [0] and needs == 1
    assert pool.free == 2 and eng.s.held[1] == 0
    assert eng.s.target[1] == 64 + 1  # recomputed later: its prompt and the token it generated
    assert eng.c.preemptions == 1


def test_saturated_throughput_uses_the_10_to_90_percent_window():
    # 10 tok/s while filling (0-5 s) and draining (95-100 s), 100 tok/s in between; completions spread
    # evenly over 0-100 s, so the 10th-90th percentile window (10-90 s) sees only the steady 100 tok/s
    gen_log = [(0.0, 0), (5.0, 50), (95.0, 50 + 90 * 100), (100.0, 50 + 9000 + 50)]
    finish_s = np.linspace(0, 100, 1001)
    assert saturated_throughput(finish_s, gen_log) == pytest.approx(100.0)
