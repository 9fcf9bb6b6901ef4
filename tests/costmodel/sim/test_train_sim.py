"""Training simulator: closed forms, determinism, and the DeepSeek-V2 paper's training cost."""

import json

import pytest
from click.testing import CliRunner

from costmodel.counts.comm import Link, all_to_all_time
from costmodel.inputs.loader import load_scenario, load_spec
from costmodel.sim.train_sim import run_pipeline, simulate_training
from costmodel.timing.calibration import (
    TRAINING_A2A_EFFICIENCY,
    TRAINING_STACK_EFFICIENCY,
    a2a_efficiency_from_pd_trace,
    stack_efficiency_from_pd_trace,
)
from costmodel.timing.train_costs import PassCost, StageCost, fold, training_load_factor
from planner.cli import cli
from tests.conftest import SCENARIOS

PAPER = SCENARIOS / "deepseek-v2-paper.yaml"


def uniform(pp: int, f: float, b: float, w: float) -> list[StageCost]:
    def pc(t: float) -> PassCost:
        return PassCost(t, t, 0.0, 0.0, ())
    return [StageCost(pc(f), pc(b), pc(w), 0.0, 0.0, 0.0, 1) for _ in range(pp)]


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
@pytest.mark.parametrize("pp, m", [(4, 8), (8, 32), (4, 2), (16, 144)])
def test_bubble_closed_form(schedule, pp, m):
    r = run_pipeline(uniform(pp, 1.0, 1.5, 0.5), schedule, m)
    assert r.step_time_s == pytest.approx((m + pp - 1) * 3.0)
    assert r.bubble_s / r.step_time_s == pytest.approx((pp - 1) / (m + pp - 1))


def test_without_communication_the_step_is_the_critical_path():
    # one stage: every pass back to back, then the optimizer
    costs = [StageCost(*(PassCost(t, t, 0, 0, ()) for t in (0.2, 0.3, 0.1)), 0.0, 0.0, 0.05, 1)]
    assert run_pipeline(costs, "1f1b", 10).step_time_s == pytest.approx(10 * 0.6 + 0.05)
    # two stages, one micro-batch: F0, p2p, F1, B1 (+W1), p2p, B0 (+W0)
    two = [StageCost(*(PassCost(t, t, 0, 0, ()) for t in (1.0, 2.0, 0.5)), 0.25, 0.0, 0.0, 1) for _ in range(2)]
    assert run_pipeline(two, "1f1b", 1).step_time_s == pytest.approx(1 + 0.25 + 1 + 2.5 + 0.25 + 2.5)


@pytest.mark.parametrize("pp, m, f, b, w", [(4, 8, 1, 1, 1), (8, 32, 1, 1.2, 0.8), (16, 144, 1, 1, 1)])
def test_zero_bubble_beats_1f1b_by_most_of_the_ideal(pp, m, f, b, w):
    one_f = run_pipeline(uniform(pp, f, b, w), "1f1b", m).step_time_s
    zb = run_pipeline(uniform(pp, f, b, w), "zero-bubble", m).step_time_s
    ideal_saving = 2 * (pp - 1) * w  # V3P Table 2: (pp-1)(F+B) -> (pp-1)(F+B-2W), B = full backward
    assert one_f - zb <= ideal_saving + 1e-9
    assert one_f - zb >= 0.6 * ideal_saving  # a greedy, non-preemptive list schedule gets most of it


def test_all_to_all_segment_is_bytes_over_bandwidth_plus_latency():
    link = Link(bw_bytes_per_s=50e9, efficiency=1.0, latency_s=5e-6)
    t = all_to_all_time(100e6, link)
    assert t == pytest.approx(100e6 / 50e9 + 5e-6)
    folded = fold([("compute", "a", 1e-3), ("comm", "dispatch", t),
                   ("overlap", ("combine", 2e-3), ("shared", 1.5e-3), 0.0)])
    assert folded.total_s == pytest.approx(1e-3 + t + 2e-3)
    assert folded.exposed_comm_s == pytest.approx(t + 0.5e-3)


@pytest.mark.parametrize("compute_s, span_s, busy_s", [
    (1.0, 2.0, 1.0 / 0.75),  # slowed to 1.33 s, still under the 2 s of communication
    (1.5, 2.0, 2.0),  # slowed to exactly 2 s
    (1.8, 2.3, 2.3),  # 2 s at 3/4 speed does 1.5 s of work; 0.3 s more at full speed
])
def test_compute_beside_communication_loses_the_sms_it_holds(compute_s, span_s, busy_s):
    """A quarter of the SMs held by 2 s of communication: compute runs at 3/4 speed while it lasts."""
    folded = fold([("overlap", ("dispatch", 2.0), ("shared", compute_s), 0.25)])
    assert folded.total_s == pytest.approx(span_s)
    assert folded.compute_s == pytest.approx(busy_s)
    assert folded.work_s == pytest.approx(compute_s)
    assert folded.exposed_comm_s == pytest.approx(span_s - busy_s)


def test_deterministic():
    v = load_scenario(PAPER).variants[0]
    a, b = (simulate_training(v.name, v.model, v.training) for _ in range(2))
    assert a.model_dump(exclude={"sim_wall_s"}) == b.model_dump(exclude={"sim_wall_s"})


def test_paper_training_cost():
    """V2P §3.2.3: 172.8K vs 300.6K H800 GPU-hours per trillion tokens, a 42.5% saving."""
    s = load_scenario(PAPER)
    r = {v.name: simulate_training(v.name, v.model, v.training) for v in s.variants}
    v2, b67 = r["deepseek-v2"].gpu_hours_per_trillion_tokens, r["deepseek-llm-67b"].gpu_hours_per_trillion_tokens
    assert v2 == pytest.approx(172.8e3, rel=0.15)
    assert b67 == pytest.approx(300.6e3, rel=0.15)
    assert (1 - v2 / b67) * 100 == pytest.approx(42.5, abs=5)


def test_training_constants_are_the_ones_derived_from_the_profile():
    """The two stack constants are re-derived from the profiled chunk pair, and no bundled training
    scenario states its own (so none is fitted to the figures it is checked against)."""
    v3 = load_spec("model", SCENARIOS / "models" / "deepseek-v3.yaml")
    h800 = load_spec("gpu", SCENARIOS / "gpus" / "h800.yaml")
    assert stack_efficiency_from_pd_trace(v3, h800) == pytest.approx(TRAINING_STACK_EFFICIENCY, abs=0.001)
    assert a2a_efficiency_from_pd_trace(v3, h800) == pytest.approx(TRAINING_A2A_EFFICIENCY, abs=0.001)
    for path in (PAPER, SCENARIOS / "deepseek-v3-pretrain.yaml"):
        for v in load_scenario(path).variants:
            assert v.training.stack_efficiency is None and v.training.all_to_all_efficiency is None


def test_cli_json_and_trace(tmp_path):
    trace = tmp_path / "step.json"
    result = CliRunner().invoke(cli, ["simulate", "train", str(PAPER), "--format", "json", "--trace", str(trace),
                                      "--variant", "deepseek-v2"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    (v2,) = out["variants"]
    for key in ("name", "step_time_s", "tokens_per_s_per_gpu", "mfu", "bubble_fraction",
                "gpu_hours_per_trillion_tokens", "cost_usd_per_trillion_tokens", "peak_memory_bytes_per_gpu"):
        assert key in v2
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e["name"].split(" mb")[0] for e in events}
    assert {"attention", "routed experts", "dispatch", "combine"} <= names
    assert max(e["ts"] + e["dur"] for e in events if e["ph"] == "X") == pytest.approx(v2["step_time_s"] * 1e6, rel=1e-6)


def test_layout_that_does_not_fit_is_refused_before_running(tmp_path):
    text = PAPER.read_text().replace("recompute: selective  # V2P", "recompute: none  # V2P")
    path = tmp_path / "oom.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["simulate", "train", str(path)])
    assert result.exit_code == 2
    assert "needs" in result.output and "GB per GPU" in result.output and "recompute" in result.output
    assert "variants.0.training.parallelism" in result.output


def comm_heavy(pp: int, comm: float) -> list[StageCost]:
    def pc(t: float, c: float = 0.0) -> PassCost:
        return PassCost(t + c, t, c, c, ())
    return [StageCost(pc(1.0, comm), pc(1.0, comm), pc(1.0), 0.0, 0.0, 0.0, 1) for _ in range(pp)]


@pytest.mark.parametrize("pp, m", [(4, 8), (8, 32), (16, 144)])
def test_dualpipe_hides_communication_and_shrinks_the_bubble(pp, m):
    # without communication: close to V3P Table 2's (pp/2 - 1)(F&B + B - 3W) bubble, below ZB-H1's
    quiet = {s: run_pipeline(comm_heavy(pp, 0.0), s, m).step_time_s for s in ("zero-bubble", "dualpipe")}
    ideal = m * 3 + (pp // 2 - 1) * (2 + 2 - 3)
    assert ideal <= quiet["dualpipe"] <= ideal + pp / 2 and quiet["dualpipe"] <= quiet["zero-bubble"]
    # with all-to-all as long as half the compute, the F&B pairs hide it
    loud = {s: run_pipeline(comm_heavy(pp, 0.5), s, m) for s in ("zero-bubble", "dualpipe")}
    assert loud["dualpipe"].step_time_s < 0.85 * loud["zero-bubble"].step_time_s


def test_dualpipe_on_the_paper_layout_and_odd_micro_batches(tmp_path):
    # DualPipe keeps two parameter copies and PP + 1 micro-batches: V2 needs full recompute to fit 80 GB
    full = PAPER.read_text().replace("recompute: selective  # V2P", "recompute: full  # V2P")
    runs = {}
    for schedule in ("zero-bubble", "dualpipe"):
        path = tmp_path / f"{schedule}.yaml"
        path.write_text(full.replace("schedule: zero-bubble", f"schedule: {schedule}"))
        result = CliRunner().invoke(cli, ["simulate", "train", str(path), "--format", "json", "--variant", "deepseek-v2"])
        assert result.exit_code == 0, result.output
        runs[schedule] = json.loads(result.stdout)["variants"][0]
    assert runs["dualpipe"]["step_time_s"] < runs["zero-bubble"]["step_time_s"]  # all-to-all under the paired pass
    path = tmp_path / "dualpipe.yaml"
    odd = tmp_path / "odd.yaml"
    odd.write_text(path.read_text().replace("micro_batches: 144", "micro_batches: 9"))
    result = CliRunner().invoke(cli, ["simulate", "train", str(odd)])
    assert result.exit_code == 2 and "even" in result.output


def test_the_profiled_dualpipe_chunk_pair():
    """DeepSeek's profile of one DualPipe chunk pair (4 MoE layers forward + 4 backward, EP64, 4K tokens,
    FP8; PD train.json): span ≈ 129 ms, compute stream busy ≈ 118 ms, communication ≈ 115 ms.
    The simulator's F&B pair of the same stage, at the scenarios' stack efficiency, within 10% of each."""
    from costmodel.sim.train_sim import fb_pair
    from costmodel.timing.calibration import pd_chunk_pair

    v3 = load_spec("model", SCENARIOS / "models" / "deepseek-v3.yaml")
    h800 = load_spec("gpu", SCENARIOS / "gpus" / "h800.yaml")
    c = pd_chunk_pair(v3, h800, TRAINING_STACK_EFFICIENCY, TRAINING_A2A_EFFICIENCY)
    pair, carried_w = fb_pair(c.F, c.B, c.W, c.overlapped_comm_efficiency)
    assert carried_w  # the all-to-all outlasts F + B alone: the weight gradients run inside the pair
    assert pair.total_s == pytest.approx(0.129, rel=0.10)
    assert pair.compute_s == pytest.approx(0.118, rel=0.10)
    assert pair.comm_s == pytest.approx(0.115, rel=0.10)


@pytest.mark.parametrize("limited", [True, False])
def test_training_all_to_all_is_deepep_over_node_limited_fanout(limited):
    """V3 on EP64 over 8 nodes: a token crosses InfiniBand once per remote node it needs, at most 4 with
    node-limited routing (V3P §2.1.2); the dispatch is the larger of its RDMA and NVLink bytes' times."""
    from costmodel.counts.routing import contiguous_slots, token_fanout
    from costmodel.timing.operators import Device, Timer
    from costmodel.timing.train_costs import op_times

    v3 = load_spec("model", SCENARIOS / "models" / "deepseek-v3.yaml")
    if not limited:
        v3 = v3.model_copy(update={"topk_method": "greedy"})
    t = load_scenario(SCENARIOS / "deepseek-v3-pretrain.yaml").variants[0].training
    fan = token_fanout(v3, t.routing, contiguous_slots(256, 64), 8)
    if limited:
        assert 3.0 < fan.nodes <= 4.0
    else:  # 8 experts over 8 nodes of 32 experts each, uniformly
        assert fan.nodes == pytest.approx(8 * (1 - (7 / 8) ** 8), rel=0.02)
    timer = Timer(Device.from_gpu(t.cluster.gpu, "fp8"))
    o = op_times(v3, t, timer, timer)
    tokens = 4096 * training_load_factor(v3, t, 4096)
    rdma = tokens * fan.remote_nodes * 7168 * (1 + 4 / 128)
    nvlink = tokens * (fan.remote_in_node_ranks + (fan.remote_ranks - fan.remote_in_node_ranks) * 7 / 8) * 7168 * 1.03125
    assert o.dispatch == pytest.approx(max(rdma / (50e9 * 0.86), nvlink / (200e9 * 153 / 200)), rel=1e-9)
    assert o.combine == pytest.approx(o.dispatch * 2 / (1 + 4 / 128), rel=1e-9)  # BF16 combine, same routes
