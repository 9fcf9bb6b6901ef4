"""Serving simulator: one request's timeline, capacity, completion, determinism, saturation bound, and
the DeepSeek-V2 paper's serving figures."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from costmodel.app.feasibility import saturation_note
from costmodel.app.serving import run_serving
from costmodel.inputs.loader import load_scenario
from costmodel.inputs.specs import EngineSpec, LengthDist, WorkloadSpec
from planner.cli import cli
from tests.conftest import SCENARIOS

PAPER = SCENARIOS / "deepseek-v2-paper.yaml"


class FixedSteps:
    """An iteration costs `prefill_s` when it holds prefill tokens, else `decode_s`."""

    def __init__(self, prefill_s: float, decode_s: float):
        self.prefill_s, self.decode_s = prefill_s, decode_s

    def time(self, chunks, decode_batch, decode_ctx_sum):
        return self.prefill_s if chunks else self.decode_s


def v2():
    return load_scenario(PAPER).variants[0]


def workload(**kw) -> WorkloadSpec:
    base = dict(prompt_tokens=LengthDist(value=100), output_tokens=LengthDist(value=10), arrival="burst", requests=1)
    return WorkloadSpec(**{**base, **kw})


def test_one_request_takes_prefill_then_decode_steps():
    v = v2()
    r = run_serving("one", v.model, v.inference, workload(), step_model=FixedSteps(0.5, 0.01),
                         kv_capacity_tokens=10_000)
    # the prefill iteration emits the first token; each of the other 9 takes one decode step
    assert r.latency.ttft_p50_s == pytest.approx(0.5)
    assert r.latency.e2e_p50_s == pytest.approx(0.5 + 9 * 0.01)
    assert r.latency.tpot_p50_s == pytest.approx(0.01)
    assert r.iterations == 10


def test_kv_never_exceeds_capacity_and_every_request_finishes():
    v = v2()
    w = workload(requests=300, prompt_tokens=LengthDist(dist="uniform", low=50, high=400),
                 output_tokens=LengthDist(dist="uniform", low=1, high=300), seed=3)
    r = run_serving("tight", v.model, v.inference, w, step_model=FixedSteps(0.02, 0.01), kv_capacity_tokens=8 * 2048)
    assert r.finished == r.requests == 300
    assert r.peak_kv_utilisation <= 1.0
    assert r.preemptions > 0  # the cache was tight enough to force some
    # fewer than 2,000 requests: the samples are every request, so their means are the reported means
    assert r.latency.ttft_mean_s == pytest.approx(np.mean(r.samples["ttft_s"]))
    assert r.latency.tpot_mean_s == pytest.approx(np.mean(r.samples["tpot_s"]))
    assert r.latency.ttft_mean_s != pytest.approx(r.latency.ttft_p50_s, rel=1e-3)


def test_same_seed_same_result():
    v = v2()
    w = workload(requests=200, arrival="poisson", rate_per_s=50, seed=7,
                 prompt_tokens=LengthDist(dist="lognormal", median=300, sigma=0.7, max=2000))
    a, b = (run_serving("s", v.model, v.inference, w).model_dump(exclude={"sim_wall_s"}) for _ in range(2))
    assert a == b


def test_saturated_decode_reaches_the_analytic_bound():
    # 8 attention ranks x 16 running each; every step takes 10 ms whatever the batch -> 128 / 0.01 tok/s
    v = v2()
    inf = v.inference.model_copy(update={"max_running": 16})
    w = workload(requests=5000, output_tokens=LengthDist(value=50))
    r = run_serving("sat", v.model, inf, w, phase="decode", step_model=FixedSteps(0.0, 0.01),
                         kv_capacity_tokens=10**7)
    assert r.max_generation_throughput_tok_s == pytest.approx(128 / 0.01, rel=0.01)


def test_a_request_that_cannot_fit_is_refused(tmp_path):
    text = PAPER.read_text().replace("kv_bits: 6 ", "kv_bits: 6 ")
    wl = tmp_path / "workloads"
    wl.mkdir()
    (wl / "huge.yaml").write_text("prompt_tokens: {value: 5000000}\noutput_tokens: {value: 10}\narrival: burst\n")
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("workload: deepseek-chat-assumed", "workload: huge"))
    result = CliRunner().invoke(cli, ["simulate", "serve", str(path), "--variant", "deepseek-v2"])
    assert result.exit_code == 2 and "KV cache" in result.output and "Traceback" not in result.output


class RecordingSteps(FixedSteps):
    def __init__(self):
        super().__init__(0.5, 0.01)
        self.chunks = []

    def time(self, chunks, decode_batch, decode_ctx_sum):
        self.chunks += chunks
        return super().time(chunks, decode_batch, decode_ctx_sum)


def test_a_prefix_cache_hit_skips_its_share_of_the_prefill():
    """hit rate 0.3 on a 1000-token prompt: prefill computes 700 tokens, attending to all 1000, and the
    run counts 700 prompt tokens computed."""
    v = v2()
    steps = RecordingSteps()
    w = workload(prompt_tokens=LengthDist(value=1000), output_tokens=LengthDist(value=2), prefix_cache_hit_rate=0.3)
    r = run_serving("hit", v.model, v.inference, w, step_model=steps, kv_capacity_tokens=10_000)
    assert steps.chunks == [(700, 1000)]
    assert r.prompt_throughput_tok_s * r.sim_time_s == pytest.approx(700)


def test_paper_serving_figures(paper_cli):
    """V2P §3.2.3 / Fig. 1: 5.76x the 67B's maximum generation throughput, >50K tok/s generation and
    >100K tok/s prompt on one 8xH800 node (each below twice the paper's figure). The scenario as the CLI
    serves it (conftest.paper_cli, shared with the golden test)."""
    r = {v["name"]: v for v in paper_cli["serve"]["variants"]}
    v2r, b67 = r["deepseek-v2"], r["deepseek-llm-67b"]
    assert v2r["max_generation_throughput_tok_s"] / b67["max_generation_throughput_tok_s"] == pytest.approx(5.76, rel=0.2)
    assert 50e3 < v2r["max_generation_throughput_tok_s"] < 2 * 55.4e3
    assert 100e3 < v2r["prompt_throughput_tok_s"] < 2 * 100e3


def test_cli_json_shape():
    result = CliRunner().invoke(cli, ["simulate", "serve", str(PAPER), "--format", "json", "--requests", "500",
                                      "--variant", "deepseek-v2"])
    assert result.exit_code == 0, result.output
    (v,) = json.loads(result.stdout)["variants"]
    for key in ("name", "max_generation_throughput_tok_s", "prompt_throughput_tok_s", "max_concurrent_requests"):
        assert key in v
    assert {"ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s"} <= set(v["latency"])


def test_requests_bound_the_saturated_runs_too():
    """--requests 50: the maximum-throughput runs queue 50 requests, not the saturating count, and say
    so. That count is 3 x KV capacity / (mean prompt + mean output / 2) = 3 x 9,609,984 / ~1,112."""
    result = CliRunner().invoke(cli, ["simulate", "serve", str(PAPER), "--format", "json", "--requests", "50",
                                      "--variant", "deepseek-v2"])
    assert result.exit_code == 0, result.output
    (v,) = json.loads(result.stdout)["variants"]
    assert v["saturation_requests"] == 50 and v["max_concurrent_requests"] == 50
    need = 3 * v["kv_capacity_tokens"] / 1111.5
    assert v["saturation_note"] is not None and f"{int(need):,}"[:4] in v["saturation_note"]
    s = load_scenario(PAPER)
    inf = s.variants[0].inference
    assert saturation_note(s.variants[0].model, inf, inf.workload) is None  # the workload's own runs saturate


def test_closed_loop_keeps_at_most_users_in_flight():
    v = v2()
    w = workload(requests=60, arrival="closed", users=5, think_time_s=0.05)
    r = run_serving("closed", v.model, v.inference, w, step_model=FixedSteps(0.02, 0.01), kv_capacity_tokens=10**6)
    assert r.finished == 60 and r.max_concurrent_requests <= 5


def test_trace_arrivals(tmp_path):
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0.0,100,3\n1.0,50,2\n")
    v = v2()
    w = workload(arrival="trace", trace_csv="t.csv")
    r = run_serving("trace", v.model, v.inference, w, step_model=FixedSteps(0.1, 0.01), kv_capacity_tokens=10**6,
                         base_dir=tmp_path)
    # request 0: prefill 0.1 + 2 decodes; request 1 arrives at 1.0: prefill 0.1 + 1 decode
    assert r.finished == 2 and r.sim_time_s == pytest.approx(1.0 + 0.1 + 0.01)
    assert r.latency.e2e_p50_s == pytest.approx((0.12 + 0.11) / 2)


def test_prefill_decode_disaggregation():
    from costmodel.counts.comm import links_of, p2p_time
    from costmodel.counts.kvcache import kv_bytes_per_token
    from costmodel.inputs.specs import Parallelism, PrefillPool

    v = v2()
    pd_inf = v.inference.model_copy(update={"prefill_pool": PrefillPool(parallelism=Parallelism(dp=8, ep=8, zero_stage=0))})
    # one request: its prefill, then the KV (MLA's latent: one rank's NIC) crosses to the decode node, where
    # its first token reaches the user (TTFT includes the transfer), then 9 decode steps
    one = run_serving("one", v.model, pd_inf, workload(prompt_tokens=LengthDist(value=2000)))
    transfer = p2p_time(2000 * kv_bytes_per_token(v.model, 6), links_of(v.inference.cluster.gpu)["nic"])
    alone = run_serving("alone", v.model, pd_inf.prefill_instance(), workload(prompt_tokens=LengthDist(value=2000),
                                                                            output_tokens=LengthDist(value=1)))
    assert one.finished == 1 and one.latency.ttft_p50_s == pytest.approx(alone.latency.ttft_p50_s + transfer)
    # under load, decode iterations no longer carry prefill chunks: lower TPOT than the shared instance
    w = v.inference.workload.model_copy(update={"requests": 1500, "rate_per_s": 20})
    shared = run_serving("shared", v.model, v.inference, w)
    split = run_serving("split", v.model, pd_inf, w)
    assert split.finished == 1500 and split.latency.tpot_p50_s < shared.latency.tpot_p50_s


def test_the_prefill_pool_runs_on_the_iteration_model_it_is_handed():
    """One request on a disaggregated variant: its TTFT is the prefill pool's iteration (0.5 s or 2 s, as
    handed) and the KV's transfer, whatever the decode unit's; uncertainty bands hand the drawn prefill
    model this way."""
    from costmodel.inputs.specs import Parallelism, PrefillPool

    v = v2()
    pd_inf = v.inference.model_copy(update={"prefill_pool": PrefillPool(parallelism=Parallelism(dp=8, ep=8, zero_stage=0))})
    ttft = [run_serving("pd", v.model, pd_inf, workload(), step_model=FixedSteps(9.0, 0.01),
                        prefill_step_model=FixedSteps(s, 9.0)).latency.ttft_p50_s for s in (0.5, 2.0)]
    assert ttft[1] - ttft[0] == pytest.approx(1.5) and 0.5 < ttft[0] < 0.5 + 0.01


def test_prefill_pool_layout_is_validated(tmp_path):
    text = PAPER.read_text().replace("      workload: deepseek-chat-assumed\n\n  - name: deepseek-llm-67b",
                                     "      workload: deepseek-chat-assumed\n      prefill_pool: {parallelism: {dp: 8, ep: 7, zero_stage: 0}}\n\n  - name: deepseek-llm-67b")
    path = tmp_path / "pd.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and "variants.0.inference.prefill_pool.parallelism.ep" in result.output


def test_an_ep_that_does_not_split_the_experts_names_ep_and_the_eps_that_work():
    """It blamed redundant_experts and suggested replicas; the fix is ep, and which eps work is computable:
    the divisors of both 160 routed experts and tp x dp = 8."""
    from costmodel.app.feasibility import serving_option_problems
    from costmodel.app.study import open_study

    v = open_study(SCENARIOS / "deepseek-v2-paper.yaml").variant("deepseek-v2")
    inf = v.inference.model_copy(update={"parallelism": v.inference.parallelism.model_copy(update={"ep": 3, "dp": 6, "tp": 1})})
    inf = inf.model_copy(update={"parallelism": inf.parallelism.model_copy(update={"dp": 6})})
    (p,) = [p for p in serving_option_problems(v.model, inf) if "experts" in p.problem]
    assert p.field == "parallelism.ep" and "ep 3 does not divide the 160 routed experts" in p.problem
    assert "tp x dp = 6: 1, 2 (or add redundant_experts" in p.fix  # 1 and 2 divide both 160 and 6; 4 and 5 do not


def test_an_offered_load_above_what_the_instance_carries_is_stated():
    """400 requests/s of the chat workload on one 8xH800 V2 instance: far above the ~110-170 it carries."""
    from costmodel.app.study import open_study, override, serve

    st_ = open_study(SCENARIOS / "deepseek-v2-paper.yaml")
    hot = override(st_, "deepseek-v2", {"inference.workload.rate_per_s": 400.0})
    (r,) = serve(hot, only="deepseek-v2", requests=3000)
    assert r.overload_note is not None and "lower rate_per_s to at most" in r.overload_note
    assert 50 < r.carried_rate_per_s < 400
    (calm,) = serve(st_, only="deepseek-v2", requests=3000)  # the paper's 8 requests/s
    assert calm.overload_note is None and calm.carried_rate_per_s == pytest.approx(8.0, rel=0.1)


@pytest.mark.parametrize("change, field, words", [
    ({"tp": 1, "dp": 8, "ep": 4, "etp": 2}, "parallelism.etp", "expert TP across attention-DP ranks is not modelled"),
    ({"tp": 8, "dp": 1, "ep": 1, "etp": 3}, "parallelism.etp", "does not divide tp 8"),
    ({"tp": 8, "dp": 1, "ep": 1, "etp": 8}, None, None),
])
def test_expert_tp_is_checked_against_the_attention_layout(change, field, words):
    from costmodel.app.feasibility import layout_problems
    from costmodel.app.study import open_study

    v = open_study(SCENARIOS / "deepseek-v2-paper.yaml").variant("deepseek-v2")
    found = layout_problems(v.model, v.inference.cluster, v.inference.parallelism.model_copy(update=change), training=False)
    assert [(p.field, words in p.problem) for p in found] == ([(field, True)] if field else [])


def test_prefill_and_decode_instances_share_a_units_requests_round_robin():
    """16 prompts of 8,192 tokens against one prefill instance's 65,536-token iteration (8 ranks x 8,192):
    two iterations, so half wait for the second; two instances take 8 each in one. Two decode instances
    hold twice the KV."""
    from costmodel.inputs.specs import Parallelism, PrefillPool

    v = v2()
    w = workload(prompt_tokens=LengthDist(value=8192), requests=16)
    def run(instances: int, decode_instances: int = 1):
        pool = PrefillPool(parallelism=Parallelism(dp=8, ep=8, zero_stage=0), instances=instances,
                           decode_instances=decode_instances)
        inf = v.inference.model_copy(update={"prefill_pool": pool, "max_batch_tokens": 8192})
        return run_serving("pd", v.model, inf, w, step_model=FixedSteps(9.0, 0.01), kv_capacity_tokens=10**6,
                           prefill_step_model=FixedSteps(0.5, 9.0))
    one, two, wide = run(1), run(2), run(1, decode_instances=2)
    first = min(one.samples["ttft_s"])
    assert sorted(one.samples["ttft_s"]) == pytest.approx([first] * 8 + [first + 0.5] * 8)  # the second iteration
    assert two.samples["ttft_s"] == pytest.approx([first] * 16)
    assert wide.kv_capacity_tokens == 2 * one.kv_capacity_tokens


def test_a_closed_loops_users_start_over_the_ramp():
    """4 users, one request each, 10 tokens (a 0.1 s prefill, then 9 decodes of 0.01 s): together they end
    at 0.19 s; started 0.75 s apart over a 3 s ramp, the last starts at 2.25 s and ends at 2.44 s. A
    `one_request` ramp is one request's latency at full load as the model times it: 0.1 + 10 x 0.01."""
    from costmodel.app.serving import one_request_s

    v = v2()
    steps = FixedSteps(0.1, 0.01)
    closed = workload(arrival="closed", users=4, requests=4)
    ends = [run_serving("c", v.model, v.inference, closed.model_copy(update={"ramp_s": ramp}), step_model=steps,
                        kv_capacity_tokens=10**6).sim_time_s for ramp in (0.0, 3.0)]
    assert ends == [pytest.approx(0.19), pytest.approx(2.44)]
    assert one_request_s(closed, steps, v.inference) == pytest.approx(0.2)
    ramped = run_serving("c", v.model, v.inference, closed.model_copy(update={"ramp_s": "one_request"}),
                         step_model=steps, kv_capacity_tokens=10**6)
    explicit = run_serving("c", v.model, v.inference, closed.model_copy(update={"ramp_s": 0.2}), step_model=steps,
                           kv_capacity_tokens=10**6)
    assert ramped.sim_time_s == explicit.sim_time_s > ends[0]


def test_a_ramp_outside_a_closed_loop_is_refused():
    with pytest.raises(ValueError, match="ramp_s"):
        workload(arrival="poisson", rate_per_s=1.0, ramp_s=2.0)


class BatchLog(FixedSteps):
    """FixedSteps that remember each iteration's (prefill chunks, decode batch)."""

    def __init__(self):
        super().__init__(0.1, 0.01)
        self.seen = []

    def time(self, chunks, decode_batch, decode_ctx_sum):
        self.seen.append((len(chunks), decode_batch))
        return super().time(chunks, decode_batch, decode_ctx_sum)


@pytest.mark.parametrize("mixed, expected", [
    # request 0 (600 tokens) prefills whole with 200 of request 1 in an 800-token budget (8 ranks x 100); then
    (True, [(2, 0), (1, 1), (0, 2), (0, 1)]),  # mixed: request 1's last 400 ride beside request 0's decode
    (False, [(2, 0), (1, 0), (0, 2), (0, 2)]),  # SGLang's prefill first: the decode waits for the prefill batch
])
def test_a_prefill_batch_runs_alone_when_batches_are_not_mixed(mixed, expected):
    v = v2()
    inf = v.inference.model_copy(update={"max_batch_tokens": 100, "mixed_batches": mixed})
    steps = BatchLog()
    w = workload(requests=2, prompt_tokens=LengthDist(value=600), output_tokens=LengthDist(value=3))
    r = run_serving("pf", v.model, inf, w, step_model=steps, kv_capacity_tokens=10_000)
    assert r.finished == 2 and steps.seen == expected


def test_each_engines_default_token_budget():
    """SGLS, VLLMA, TRTA in docs/sources.md: SGLang 8,192 under 160 GiB of HBM, else 16,384, over its DP
    ranks; vLLM's API server 8,192 at 70 GiB or more unless an A100, else 2,048; TensorRT-LLM 8,192."""
    from costmodel.inputs.loader import load_spec
    from costmodel.inputs.specs import engine_batch_tokens

    gpu = {name: load_spec("gpu", SCENARIOS / "gpus" / f"{name}.yaml") for name in ("h200", "b200", "h100-sxm", "a100-80gb")}
    assert engine_batch_tokens("sglang", gpu["h200"], 8) == 1024 and engine_batch_tokens("sglang", gpu["b200"], 1) == 16384
    assert engine_batch_tokens("vllm", gpu["h100-sxm"], 4) == 8192 and engine_batch_tokens("vllm", gpu["a100-80gb"], 1) == 2048
    assert engine_batch_tokens("trtllm", gpu["b200"], 8) == engine_batch_tokens(None, gpu["h200"], 1) == 8192
    inf = v2().inference
    assert inf.engine is None and inf.batch_tokens == 8192 and inf.mixes_batches
    assert not inf.model_copy(update={"engine": EngineSpec(name="sglang")}).mixes_batches
