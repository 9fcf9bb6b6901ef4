"""Megatron's interleaved 1F1B (virtual stages): the order by hand, the bubble's closed form, the
in-flight activations' factor, and the layout checks."""

import pytest
from click.testing import CliRunner

from costmodel.counts.memory import in_flight_microbatches, rank_layers
from costmodel.counts.schedules import interleaved_1f1b
from costmodel.sim.train_sim import run_pipeline
from tests.costmodel.sim.test_train_sim import uniform


def test_the_order_is_megatrons():
    """pp 2, 4 micro-batches, 2 chunks, rank 0: 2(2-0-1) + (2-1)2 = 4 warm-up forwards, micro-batches in
    groups of pp through chunk 0 then chunk 1; backwards through the chunks in reverse."""
    F = [("F", mb, c) for mb, c in ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1))]
    B = [("B", mb, c) for mb, c in ((0, 1), (1, 1), (0, 0), (1, 0), (2, 1), (3, 1), (2, 0), (3, 0))]
    assert interleaved_1f1b(0, 2, 4, 2) == F[:4] + [F[4], B[0], F[5], B[1], F[6], B[2], F[7], B[3]] + B[4:]
    last = interleaved_1f1b(1, 2, 4, 2)  # 2 warm-up forwards on the last rank
    assert last[:3] == [F[0], F[1], F[2]] and last[3] == B[0]


@pytest.mark.parametrize("pp, chunks, m", [(4, 2, 16), (8, 3, 24), (2, 4, 2)])
def test_each_rank_runs_every_chunk_of_every_micro_batch_once_each_way(pp, chunks, m):
    for rank in range(pp):
        order = interleaved_1f1b(rank, pp, m, chunks)
        want = {(mb, c) for mb in range(m) for c in range(chunks)}
        assert sorted((mb, c) for k, mb, c in order if k == "F") == sorted(want)
        assert sorted((mb, c) for k, mb, c in order if k == "B") == sorted(want)


@pytest.mark.parametrize("pp", [4, 8])
@pytest.mark.parametrize("chunks", [1, 2, 4])
def test_the_bubble_is_pp_minus_one_over_v_m(pp, chunks):
    """Equal chunks (F 1 s, B 2 s of a whole stage, so 1/V and 2/V a chunk), no p2p: the bubble is
    (pp - 1)/(V m) of the passes (MLM §2.2.2)."""
    m = 2 * pp
    costs = uniform(pp * chunks, 1.0 / chunks, 2.0 / chunks, 0.0)
    r = run_pipeline(costs, "1f1b", m, chunks=chunks)
    passes_s = m * 3.0  # per rank: m micro-batches through all its chunks
    assert r.bubble_s / passes_s == pytest.approx((pp - 1) / (chunks * m), rel=0.02)


def test_interleaving_holds_more_activations_by_megatrons_factor():
    """Rank 0 holds 2(pp - 1) + (V - 1) pp + 1 chunks in flight = pp (1 + (pp - 1)/(pp V)) stages' worth
    (SAR §4.2.3): pp 8, V 4 -> 8 x (1 + 7/32) = 9.75, against 1F1B's 8."""
    assert in_flight_microbatches("1f1b", 8, 64, 4) == pytest.approx(8 * (1 + 7 / 32))
    assert in_flight_microbatches("1f1b", 8, 64, 1) == 8
    assert in_flight_microbatches("1f1b", 4, 4, 2) == 4  # m = pp: every forward first, all m in flight


def test_a_rank_holds_every_pp_th_chunk():
    # 16 layers, pp 2, 4 chunks of 2 layers: rank 0 holds chunks 0, 2, 4, 6 -> layers 0-1, 4-5, 8-9, 12-13
    assert rank_layers(16, 2, 4, 0) == [0, 1, 4, 5, 8, 9, 12, 13]
    assert rank_layers(16, 2, 1, 1) == list(range(8, 16))


@pytest.mark.parametrize("change, field", [
    (("        schedule: zero-bubble # V2P §3.1.3 (Qi et al. 2023)\n",
      "        schedule: zero-bubble\n        virtual_stages: 2\n"), "variants.0.training.parallelism.virtual_stages"),
    (("        micro_batches: 288    # micro-batch of 1 sequence (4608 / 16 replicas)\n",
      "        micro_batches: 288\n        virtual_stages: 2\n"), None),
])
def test_megatrons_interleaving_rules_are_checked(tmp_path, change, field):
    """Interleaving on zero-bubble is refused naming virtual_stages; on the 67B's 1F1B (pp 8, 288
    micro-batches, a multiple of 8) it runs."""
    from planner.cli import cli
    from tests.conftest import SCENARIOS

    text = (SCENARIOS / "deepseek-v2-paper.yaml").read_text()
    old, new = change[0], change[1]
    assert old in text
    path = tmp_path / "v.yaml"
    path.write_text(text.replace(old, new, 1))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    if field is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2 and field in result.output and "1f1b" in result.output, result.output


def test_combined_1f1b_pairs_each_steady_forward_with_the_backward_before_it():
    """No pipelining, 4 micro-batches; F = 1 s compute + 0.2 s all-to-all, B = 2 s + 0.2 s. Combined 1F1B
    runs F0, then (F1, B0), (F2, B1), (F3, B2) as pairs, then B3. A pair's 3 s of compute runs beside its
    0.4 s of all-to-all, slowed by the SMs that holds (fraction f): 3 + 0.4 f (overlap_span)."""
    from costmodel.counts.deepep import COMM_SM_FRACTION as f
    from costmodel.timing.train_costs import PassCost, StageCost

    F, B, W = PassCost(1.2, 1.0, 0.2, 0.2, ()), PassCost(2.2, 2.0, 0.2, 0.2, ()), PassCost(0.0, 0.0, 0.0, 0.0, ())
    costs = [StageCost(F, B, W, 0.0, 0.0, 0.0, 1)]
    plain, paired = (run_pipeline(costs, "1f1b", 4, overlap_a2a=o) for o in (False, True))
    assert plain.step_time_s == pytest.approx(4 * 3.4)
    assert paired.step_time_s == pytest.approx(1.2 + 3 * (3.0 + 0.4 * f) + 2.2)
    assert interleaved_1f1b(0, 1, 4, 1, overlap=True) == [("F", 0, 0), ("F", 1, 0), ("B", 0, 0), ("F", 2, 0),
                                                          ("B", 1, 0), ("F", 3, 0), ("B", 2, 0), ("B", 3, 0)]


def test_sequence_parallel_experts_see_a_tp_ranks_share_of_the_tokens():
    """V3 with tp 2: each TP rank routes 2,048 of a micro-batch's 4,096 tokens (sequence parallel,
    MCMOE), so its experts and all-to-all are the tp 1 model's at 2,048 tokens."""
    from costmodel.inputs.loader import load_spec
    from costmodel.inputs.specs import ClusterSpec, Parallelism, TrainingSpec
    from costmodel.sim.train_sim import training_timers
    from costmodel.timing.train_costs import _moe_times, op_times
    from tests.conftest import SCENARIOS

    m, gpu = load_spec("model", SCENARIOS / "models" / "deepseek-v3.yaml"), load_spec("gpu", SCENARIOS / "gpus" / "h100-sxm.yaml")
    t = TrainingSpec(cluster=ClusterSpec(gpu=gpu, gpus_per_node=8, nodes=16), tokens=1e12, seq_len=4096,
                     global_batch_seqs=64, precision="fp8",
                     parallelism=Parallelism(tp=2, pp=1, dp=64, ep=64, micro_batches=1, recompute="selective"))
    timers = training_timers(m, t)
    o = op_times(m, t, *timers)
    routed_f, _, dispatch, combine = _moe_times(m, t, 2048, timers[0])
    assert (o.routed_f, o.dispatch, o.combine) == pytest.approx((routed_f, dispatch, combine))
    assert o.dispatch < _moe_times(m, t, 4096, timers[0])[2]


@pytest.mark.parametrize("full, field", [(False, "parallelism.virtual_stages"), (True, "parallelism.recompute")])
def test_combined_1f1b_follows_megatrons_rules(tmp_path, full, field):
    """V2's zero-bubble layout with overlap_moe_a2a: refused for want of virtual stages on 1F1B (and, with
    full recompute, for that too), each naming its field; shared-expert overlap must be off as well."""
    from planner.cli import cli
    from tests.conftest import SCENARIOS

    text = (SCENARIOS / "deepseek-v2-paper.yaml").read_text()
    old = "        schedule: zero-bubble # V2P §3.1.3 (Qi et al. 2023)\n"
    path = tmp_path / "v.yaml"
    text = text.replace(old, old + "        overlap_moe_a2a: true\n", 1)
    if full:
        text = text.replace("        recompute: selective  # V2P", "        recompute: full  # V2P", 1)
    path.write_text(text)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and field in result.output and "overlap_shared_experts" in result.output, result.output


def test_folding_lays_ep_over_tp_x_dp():
    """tp 2, dp 64, ep 64, placement [tp, dp, pp]: carved out of DP, EP members are tp = 2 ranks apart (4 a
    node, 16 nodes); folded over tp x dp they are neighbours (8 a node, 8 nodes). Either way every GPU holds
    whole experts, so each expert has tp x dp / ep = 2 replicas whose gradients are reduced together."""
    from costmodel.counts.placement import groups
    from costmodel.inputs.specs import Parallelism

    carved, folded = (Parallelism(tp=2, pp=8, dp=64, ep=64, moe_folding=f) for f in (False, True))
    assert (groups(carved)["ep"].stride, groups(carved)["ep"].peers_in_node(8) + 1, groups(carved)["edp"].size) == (2, 4, 2)
    assert (groups(folded)["ep"].stride, groups(folded)["ep"].peers_in_node(8) + 1, groups(folded)["edp"].size) == (1, 8, 2)
    assert folded.expert_data_parallel == 2 and Parallelism(tp=2, dp=32, ep=64, moe_folding=True).expert_data_parallel == 1


def test_an_explicit_layer_split_places_the_layers():
    from costmodel.counts.memory import virtual_stage_layers

    assert virtual_stage_layers(7, 2, 2, [1, 2, 4, 0]) == [range(0, 1), range(1, 3), range(3, 7), range(7, 7)]
    assert virtual_stage_layers(7, 2, 2) == [range(0, 2), range(2, 4), range(4, 6), range(6, 7)]


def test_a_layer_split_that_does_not_add_up_is_refused(tmp_path):
    from planner.cli import cli
    from tests.conftest import SCENARIOS

    text = (SCENARIOS / "deepseek-v2-paper.yaml").read_text()
    old = "        micro_batches: 288    # micro-batch of 1 sequence (4608 / 16 replicas)\n"
    path = tmp_path / "v.yaml"
    path.write_text(text.replace(old, old + "        layer_split: [10, 10, 10, 10, 10, 10, 10, 10]\n", 1))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and "parallelism.layer_split" in result.output and "95" in result.output, result.output


def test_folded_all_to_all_bytes_by_hand():
    """V3, TP2 PP8 DP64 EP64 folded: 8 EP ranks a node, 32 experts a node, which is one of V3's 8 expert
    groups, so node-limited routing (top-4 groups) sends each token to exactly 4 nodes, 3.5 of them not
    its own (uniform routing). A TP rank dispatches its 2,048 tokens (sequence parallel) at the busiest
    rank's load: 2,048 x load x 3.5 x 7,168 x 2 B (BF16) over the NIC, NVLink's share being smaller.
    Carved out of DP (4 a node, a group over 2 nodes), more of them cross the NICs."""
    from costmodel.counts.comm import links_of
    from costmodel.sim.train_sim import training_timers
    from costmodel.timing.train_costs import op_times, training_load_factor
    from tests.costmodel.sim.test_context_parallel import v3

    m, t = v3(1)

    def layout(folding: bool):
        par = t.parallelism.model_copy(update={"moe_folding": folding, "overlap_moe_a2a": False})
        return t.model_copy(update={"parallelism": par})

    folded, carved = layout(True), layout(False)
    assert folded.dispatch_bits == 16
    nic = links_of(t.cluster.gpu)["nic"]
    by_hand_s = 2048 * training_load_factor(m, folded, 2048) * 3.5 * 7168 * 2 / nic.effective_bw
    dispatch_s = op_times(m, folded, *training_timers(m, folded)).dispatch
    assert dispatch_s == pytest.approx(by_hand_s, rel=0.01)
    assert op_times(m, carved, *training_timers(m, carved)).dispatch > 1.3 * dispatch_s
