"""Context parallelism: the ring's bytes and a rank's activations by hand, and the layout checks."""

import pytest

from costmodel.counts.memory import training_memory
from costmodel.inputs.loader import load_scenario
from costmodel.timing.train_costs import cp_ring_bytes
from tests.conftest import SCENARIOS, validate_edit

MEGATRON = SCENARIOS / "deepseek-v3-megatron-h100.yaml"


def v3(cp: int, dp: int = 64):
    v = load_scenario(MEGATRON).variants[0]
    par = v.training.parallelism.model_copy(update={"cp": cp, "dp": dp})
    return v.model, v.training.model_copy(update={"parallelism": par})


def test_the_ring_sends_its_kv_chunk_cp_minus_one_times():
    """V3, TP2, CP4, one 4K sequence a micro-batch: a rank holds 1,024 tokens; MLA's K and V after the
    up-projection are 64 heads (128 / tp 2) x (192 + 128) BF16 values a token; passed on 3 times:
    3 x 1,024 x 64 x 320 x 2 B = 125.8 MB a layer's forward."""
    m, t = v3(4)
    assert cp_ring_bytes(m, t) == pytest.approx(3 * 1024 * 64 * 320 * 2)
    assert cp_ring_bytes(*v3(1)) == 0


def test_a_context_parallel_rank_holds_its_share_of_the_activations():
    """CP2 at the same DP: each rank keeps half of each micro-batch's activations (and logits); the dense
    weights' optimizer state is sharded over DP x CP, so that halves too."""
    (m, one), (_, two) = v3(1), v3(2)
    a, b = training_memory(m, one), training_memory(m, two)
    assert b.activations_bytes == pytest.approx(a.activations_bytes / 2)
    assert b.optimizer_bytes < a.optimizer_bytes


def test_the_world_counts_cp_and_a_sequence_must_split_into_2cp_chunks(tmp_path):
    old = "        dp: 64                  # = 1024 / (2 x 8)\n"
    result = validate_edit(tmp_path, MEGATRON, old, "        dp: 64\n        cp: 2\n")
    assert result.exit_code == 2 and "tp x cp x pp x dp = 2 x 2 x 8 x 64 = 2048" in result.output, result.output
    (tmp_path / "half").mkdir()
    edited = tmp_path / "half" / MEGATRON.name
    edited.write_text(MEGATRON.read_text().replace("seq_len: 4096 ", "seq_len: 4098 ", 1))
    result = validate_edit(tmp_path, edited, old, "        dp: 32\n        cp: 2\n")
    assert result.exit_code == 2 and "parallelism.cp" in result.output and "4098" in result.output, result.output


def test_expert_tp_holds_a_slice_of_each_expert_and_gathers_its_groups_tokens(tmp_path):
    """Folded EP32 x ETP2 holds what EP64 holds: 256 / 32 experts at half width = 256 / 64 whole ones.
    The ETP pair all-gathers the tokens its GPUs received: a ring over 2 GPUs of 2 x R hidden vectors in
    BF16, half of it crossing NVLink."""
    from costmodel.counts.comm import links_of
    from costmodel.timing.train_costs import expert_tp_collective_s

    m, t = v3(1)
    folded = {"moe_folding": True, "overlap_moe_a2a": False}
    ep64 = t.model_copy(update={"parallelism": t.parallelism.model_copy(update=folded)})
    etp2 = t.model_copy(update={"parallelism": t.parallelism.model_copy(update={**folded, "ep": 32, "etp": 2})})
    assert training_memory(m, etp2).weights_bytes == pytest.approx(training_memory(m, ep64).weights_bytes)
    nv = links_of(t.cluster.gpu)["nvlink"]
    R = 10_000
    assert expert_tp_collective_s(etp2, R, 7168) == pytest.approx(nv.latency_s + 0.5 * 2 * R * 7168 * 2 / nv.effective_bw)
    assert expert_tp_collective_s(ep64, R, 7168) == 0
    result = validate_edit(tmp_path, MEGATRON, "        ep: 64                  # 64-way expert parallelism, 4 routed experts a GPU\n",
                           "        ep: 32\n        etp: 2\n")
    assert result.exit_code == 2 and "parallelism.etp" in result.output and "moe_folding" in result.output, result.output


def test_the_ring_runs_beside_attention_once_forward_and_twice_backward():
    """In the step's own passes: each layer's forward holds one ring transfer beside its attention, its
    backward two, both on the CP group's link."""
    from costmodel.counts.comm import p2p_time
    from costmodel.sim.train_sim import training_timers
    from costmodel.timing.train_costs import CP_RING, group_link, layer_segments, op_times

    m, t = v3(2, 32)
    o = op_times(m, t, *training_timers(m, t))
    f, b, _ = layer_segments(m, t, o, 10)

    def rings(segs):
        return [(seg[1][1], seg[2][0]) for seg in segs if seg[0] == "overlap" and seg[1][0] == CP_RING]

    one = p2p_time(cp_ring_bytes(m, t), group_link(t, "cp"))
    assert rings(f) == [(pytest.approx(one), "attention")]
    assert rings(b) == [(pytest.approx(2 * one), "attention dX")]


def test_a_combined_pair_charges_the_ring_only_beyond_its_attention():
    """A pair of passes whose rings (0.1 s) run beside longer attention (1 s) and whose TP collectives
    (0.05 s each) stay in the chain: the pair waits on the TP collectives, not on the rings."""
    from costmodel.sim.train_sim import fb_pair
    from costmodel.timing.train_costs import CP_RING, TP_GATHER, fold

    ring = [("comm", TP_GATHER, 0.05), ("overlap", (CP_RING, 0.1), ("attention", 1.0), 0.0)]
    f, b, w = fold(ring), fold(ring), fold([])
    assert f.in_layer_exposed_s == pytest.approx(0.05) and f.exposed_comm_s == pytest.approx(0.05)
    pair, _ = fb_pair(f, b, w)
    assert pair.total_s == pytest.approx(2.1) and pair.exposed_comm_s == pytest.approx(0.1)
    assert pair.comm_s == pytest.approx(0.3)
    longer = fold([("overlap", (CP_RING, 1.5), ("attention", 1.0), 0.0)])
    assert fb_pair(longer, longer, w)[0].total_s == pytest.approx(3.0)
