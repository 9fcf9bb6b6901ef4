"""`planner plan`: the screen's formulas by hand, the bisection against a scan, and the bundled V3 plan's
recommendation meeting its own targets in the full simulation."""

import json
import math

import pytest
from click.testing import CliRunner

from costmodel.app.plan import (
    Layout,
    Role,
    Screened,
    candidates,
    decode_batch,
    screen,
    token_prices,
    tokens_per_step,
    unit,
)
from costmodel.inputs.plan_spec import load_plan
from costmodel.timing.serve_costs import decode_breakdown, step_model_for
from planner.cli import cli
from tests.conftest import SCENARIOS

V3_PLAN = SCENARIOS / "plans" / "deepseek-v3-chat.yaml"
V2_PLAN = SCENARIOS / "plans" / "deepseek-v2-paper.yaml"


def test_tokens_per_step_counts_accepted_drafts():
    plan, engine = load_plan(V3_PLAN)
    assert tokens_per_step(engine) == pytest.approx(1.85)  # one draft kept 85% of the time
    two = engine.model_copy(update={"mtp": engine.mtp.model_copy(update={"tokens": 2, "acceptance": [0.8, 0.5]})})
    assert tokens_per_step(two) == pytest.approx(1 + 0.8 + 0.8 * 0.5)  # the second only after the first


def test_decode_batch_bisection_matches_a_scan():
    """The largest batch meeting the TPOT target, by bisection, is within its 1/64 tolerance of the one a
    scan over every batch finds."""
    plan, engine = load_plan(V2_PLAN)
    inf = unit(plan, engine, Layout("h800", 1, 1, 0))
    steps = step_model_for(plan.model, inf)
    target, ctx = 0.03, 1000

    def tpot(b: int) -> float:
        return decode_breakdown(steps, b, ctx)["iteration_s"]
    batch, t = decode_batch(tpot, 4000, target)
    scanned = max(b for b in range(1, 4000, 7) if tpot(b) <= target)
    assert t <= target and abs(batch - scanned) <= max(7, scanned / 64)


def test_screen_rejects_with_the_kind_of_reason():
    plan, engine = load_plan(V3_PLAN)
    memory = screen(plan, engine, Layout("h800", 1, 1, 0))  # 671B in FP8 does not fit 8 x 80 GB
    layout = screen(plan, engine, Layout("h800", 18, 1, 0))  # 256 experts over 144 GPUs
    assert memory.kind == "memory" and "GB per GPU" in memory.reason
    assert layout.kind == "layout" and "ep 144 does not divide the 256 routed experts" in layout.reason
    fast = plan.model_copy(update={"slo": plan.slo.model_copy(update={"user_tok_s": 2000.0})})
    s = screen(fast, engine, Layout("h800", 2, 1, 0))
    assert not s.reason and s.decode.reason.startswith("one request alone") and not s.prefill.reason


def test_units_and_token_prices_by_hand():
    """Disaggregated: prefill units = ceil(prompt tok/s / prefill rate), decode units = ceil(output tok/s
    x TPOT / batch), and they bill input and output tokens apart; aggregated: the busier resource sets
    the units, and the hour is split by the two loads."""
    plan, _ = load_plan(V2_PLAN)
    plan = plan.model_copy(update={"gpus": plan.gpus[:1]})
    t = plan.traffic
    prompt_tok_s, out_tok_s = 131 * t.prompt_tokens.mean, 131 * t.output_tokens.mean
    s = Screened(Layout("h800", 1, 1, 0), 8, decode=Role("", 100, 0.02, 5_000.0, curve=[(100, 0.02)]),
                 prefill=Role("", prefill_tok_s=60_000.0), aggregated=Role("", 80, 0.03, 30_000.0, 40_000.0, 512))
    cands, _ = candidates(plan, [s])
    dis = next(c for c in cands if c.mode == "disaggregated")
    assert (dis.prefill_units, dis.decode_units) == (math.ceil(prompt_tok_s / 60_000), math.ceil(out_tok_s * 0.02 / 100))
    prices = token_prices(plan, dis)
    assert prices["usd_per_m_input_tokens"] == pytest.approx(dis.prefill_units * 8 * 2.0 / (prompt_tok_s * 3600) * 1e6)
    assert prices["usd_per_m_output_tokens"] == pytest.approx(dis.decode_units * 8 * 2.0 / (out_tok_s * 3600) * 1e6)
    agg = next(c for c in cands if c.mode == "aggregated")
    assert agg.decode_units == math.ceil(max(prompt_tok_s / 40_000, out_tok_s / 30_000))
    pre, out = prompt_tok_s / 40_000, out_tok_s / 30_000
    assert token_prices(plan, agg)["usd_per_m_input_tokens"] == pytest.approx(
        agg.usd_per_hour * pre / (pre + out) / (prompt_tok_s * 3600) * 1e6)


@pytest.fixture(scope="module")
def v3_answer():
    result = CliRunner().invoke(cli, ["plan", str(V3_PLAN), "--sequential", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_v3_plan_recommends_a_deployment_that_meets_its_targets(v3_answer):
    """The recommendation's full re-simulation meets TTFT p99 <= 2 s and TPOT p50 <= 50 ms (20 tok/s)."""
    rec = v3_answer["recommended"]
    assert rec["simulated"] and rec["slo_met"] and rec["ttft_p99_s"] <= 2.0 and rec["tpot_p50_s"] <= 1 / 20
    assert rec["usd_per_hour"] == rec["gpus"] * {"h800": 2.0, "h200": 2.5, "b200": 3.5}[rec["gpu"]]
    assert rec["usd_per_hour"] == min(p["usd_per_hour"] for p in v3_answer["per_gpu_type"])
    assert {p["gpu"] for p in v3_answer["per_gpu_type"]} <= {"h800", "h200", "b200"}
    kinds = {r["reason"].split(":")[0] for r in v3_answer["rejected"]}
    assert {"memory", "layout", "limits"} <= kinds  # 1-node H800 units do not fit; 18 nodes need redundant experts


def test_plan_front_is_not_dominated(v3_answer):
    front = v3_answer["front"]
    assert front and all(not (q["usd_per_hour"] <= p["usd_per_hour"] and q["tpot_p50_s"] < p["tpot_p50_s"])
                         for p in front for q in front if q is not p)


def test_impossible_targets_recommend_nothing_and_say_why(tmp_path):
    text = V2_PLAN.read_text().replace("user_tok_s: 20 ", "user_tok_s: 5000 ")
    path = tmp_path / "fast.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["plan", str(path), "--sequential", "--format", "json"])
    out = json.loads(result.stdout)
    assert result.exit_code == 0 and out["recommended"] is None and out["per_gpu_type"] == []
    assert all(r["reason"].startswith("SLO") for r in out["rejected"])


@pytest.mark.parametrize("change, field", [("weight_bits: 8 ", "parallelism: {tp: 8}\n  weight_bits: 8 "),
                                           ("gpus: [h800, h100-sxm, h200]", "gpus: [h800, h900]"),
                                           ("tp: [1, 8]", "tp: [1, 1]"), ("nodes: [1, 2]", "nodes: [32]")])
def test_bad_plan_files_exit_2_naming_the_field(tmp_path, change, field):
    text = V2_PLAN.read_text()
    assert change in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(change, field, 1))
    for args in (["plan", str(path), "--sequential"], ["validate", str(path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and "bad.yaml" in result.output and "Traceback" not in result.output


def test_one_token_outputs_plan_without_a_tpot(tmp_path):
    """No request has a second token, so TPOT is undefined (met); the answer is still strict JSON."""
    text = V2_PLAN.read_text().replace("output_tokens: {dist: lognormal, median: 300, sigma: 0.8, max: 1024}",
                                       "output_tokens: {value: 1}")
    path = tmp_path / "one.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["plan", str(path), "--sequential", "--format", "json"])
    assert result.exit_code == 0, result.output
    rec = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(c))["recommended"]
    assert rec["slo_met"] and rec["tpot_p50_s"] is None or rec["tpot_p50_s"] <= 0.05
    table = CliRunner().invoke(cli, ["plan", str(path), "--sequential"])  # the table prints an undefined TPOT as -
    assert table.exit_code == 0 and "TPOT p50 -" in table.output, table.output


@pytest.mark.parametrize("change, field", [
    ("model: deepseek-v3", "model: deepseek-llm-67b"),  # dense: no expert all-to-all for the engine's settings
    ("model: deepseek-v3", "model: deepseek-v2-lite"),  # no MTP module for the engine's drafts
    ("requests_per_s: 100 ", "requests_per_s: true "),
    ("prompt_tokens: {dist: lognormal, median: 2000,", "prompt_tokens: {dist: lognormal, median: 20000,"),
    ("output_tokens: {dist: lognormal, median: 600, sigma: 0.8, max: 4096}",
     "output_tokens: {dist: lognormal, median: 600, sigma: 0.8, max: 400000}"),
])
def test_plan_level_problems_are_one_error(tmp_path, change, field):
    """A problem of the whole plan is one error naming the field, not a rejection of every layout."""
    text = V3_PLAN.read_text()
    assert change in text
    path = tmp_path / "p.yaml"
    path.write_text(text.replace(change, field, 1))
    result = CliRunner().invoke(cli, ["plan", str(path), "--sequential"])
    assert result.exit_code == 2 and result.output.count("error:") == 1 and "Traceback" not in result.output


def test_aggregated_units_keep_the_engines_token_budget():
    plan, engine = load_plan(V3_PLAN)
    small = engine.model_copy(update={"max_batch_tokens": 600})
    s = screen(plan, small, Layout("b200", 2, 1, 0))
    assert s.aggregated.reason or s.aggregated.budget_tokens <= 600


NVL72_PLAN = SCENARIOS / "plans" / "deepseek-v3-nvl72.yaml"


def test_rack_units_are_searched_only_where_the_nvlink_domain_holds_them():
    """B200 comes in 8-GPU nodes, GB200 in 72-GPU racks: rack_gpus [16, 32, 48, 72] are GB200 units of one
    NVLink domain each; nodes [1, 4] are tried on both."""
    from costmodel.app.plan import layouts

    plan, engine = load_plan(NVL72_PLAN)
    got = sorted((lay.gpu, lay.label) for lay in layouts(plan) if not lay.redundant_experts)
    assert got == sorted([("b200", "1n TP1"), ("b200", "4n TP1"), ("gb200", "1n TP1"), ("gb200", "4n TP1"),
                          ("gb200", "16g rack TP1"), ("gb200", "32g rack TP1"), ("gb200", "48g rack TP1"),
                          ("gb200", "72g rack TP1")])
    rack = unit(plan, engine, Layout("gb200", 1, 1, 0, 48))
    assert (rack.cluster.gpus_per_node, rack.cluster.nodes, rack.parallelism.dp, rack.parallelism.ep) == (48, 1, 48, 48)
    hgx = unit(plan, engine, Layout("b200", 4, 1, 0))
    assert (hgx.cluster.gpus_per_node, hgx.cluster.nodes, hgx.parallelism.ep) == (8, 4, 32)


@pytest.mark.parametrize("change, words", [("rack_gpus: [16, 32, 48, 72]", "rack_gpus: [16, 80]"),
                                           ("gpus: [b200, gb200]", "gpus: [b200]")])
def test_a_rack_unit_no_listed_gpu_holds_is_refused_naming_the_field(tmp_path, change, words):
    text = NVL72_PLAN.read_text()
    assert change in text
    path = tmp_path / "rack.yaml"
    path.write_text(text.replace(change, words, 1))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and "search.rack_gpus" in result.output and "not a rack unit" in result.output, \
        result.output


def test_a_node_larger_than_a_gpus_nvlink_domain_is_refused_naming_the_field(tmp_path):
    """limits.gpus_per_node 16 with B200 (8-GPU HGX domains) is one line naming the field, not pydantic's
    traceback from the engine's cluster."""
    text = NVL72_PLAN.read_text()
    path = tmp_path / "node.yaml"
    path.write_text(text.replace("limits: {max_nodes: 64}", "limits: {max_nodes: 64, gpus_per_node: 16}", 1)
                    .replace("  rack_gpus: [16, 32, 48, 72]", "  rack_gpus: [32, 48, 72]", 1))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and "limits.gpus_per_node" in result.output and "b200" in result.output \
        and "Traceback" not in result.output, result.output


def test_a_prefill_budget_under_one_prompt_chunks_it_across_iterations():
    """Time = 10 us a prefill token. 4 ranks, 250 tokens a rank, 1,000-token prompts: 4 chunks of 250 an
    iteration (10 ms), 4 iterations a prompt, so 4 prompts / 40 ms = 100K tok/s, as with whole prompts."""
    from types import SimpleNamespace

    from costmodel.app.plan import Shape, prefill_role

    steps = SimpleNamespace(time=lambda chunks, b, ctx: 1e-5 * sum(t for t, _ in chunks))
    plan = SimpleNamespace(slo=SimpleNamespace(ttft_p99_s=10.0))
    shape = Shape(ctx=1500, prompt=1000, computed=1000, p99=1000, p99_computed=1000)
    for budget in (250, 2000):
        inf = SimpleNamespace(batch_tokens=budget, parallelism=SimpleNamespace(dp=4))
        assert prefill_role(plan, steps, inf, shape).prefill_tok_s == pytest.approx(1e5)
