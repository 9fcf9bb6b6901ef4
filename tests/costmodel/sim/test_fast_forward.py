"""Fast-forward (Engine.quiet_run) against stepping every iteration: the same results on varied
workloads, and stretches actually skipped where the workload has them."""

import math

import numpy as np
import pytest

from costmodel.app.serving import run_serving
from costmodel.inputs.loader import load_scenario
from costmodel.inputs.requests import make_requests
from costmodel.inputs.specs import LengthDist, MTPSpec, Parallelism, PrefillPool, WorkloadSpec
from tests.conftest import SCENARIOS


class FixedSteps:
    """An iteration costs `prefill_s` when it holds prefill tokens, else `decode_s` (no decode_times:
    the fast-forward falls back to one call per iteration)."""

    def __init__(self, prefill_s: float, decode_s: float):
        self.prefill_s, self.decode_s = prefill_s, decode_s

    def time(self, chunks, decode_batch, decode_ctx_sum):
        return self.prefill_s if chunks else self.decode_s + 1e-7 * decode_ctx_sum / max(decode_batch, 1)


def v2():
    return load_scenario(SCENARIOS / "deepseek-v2-paper.yaml").variants[0]


def lengths(**kw) -> WorkloadSpec:
    base = dict(prompt_tokens=LengthDist(dist="lognormal", median=400, sigma=0.8, max=3000),
                output_tokens=LengthDist(dist="lognormal", median=200, sigma=0.9, max=1500), seed=11)
    return WorkloadSpec(**{**base, **kw})


def same(a, b, path=""):
    """Equal, floats to 1e-12 relative (the one difference fast-forward may make is summation order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), path
    else:
        assert a == b, path


def both_ways(*args, **kw):
    ff, step = (run_serving(*args, **kw, fast_forward=f) for f in (True, False))
    assert step.iterations_stepped == step.iterations  # stepping runs every one
    skip = {"sim_wall_s", "iterations_stepped"}
    same(ff.model_dump(exclude=skip), step.model_dump(exclude=skip))
    return ff


def trace(tmp_path, n=300) -> WorkloadSpec:
    rng = np.random.default_rng(5)
    rows = zip(np.cumsum(rng.exponential(0.05, n)), rng.integers(20, 2000, n), rng.integers(1, 600, n), strict=True)
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n" +
                                    "".join(f"{t:.6f},{p},{o}\n" for t, p, o in rows))
    return lengths(arrival="trace", trace_csv="t.csv")


CASES = {
    "poisson": dict(w=lengths(arrival="poisson", rate_per_s=12, requests=600)),
    "closed": dict(w=lengths(arrival="closed", users=48, requests=500, think_time_s=0.5)),
    "burst": dict(w=lengths(arrival="burst", requests=700)),
    "saturated decode": dict(w=lengths(arrival="burst", requests=900), phase="decode"),
    "preemptions": dict(w=lengths(arrival="burst", requests=300, prompt_tokens=LengthDist(dist="uniform", low=50, high=400),
                                  output_tokens=LengthDist(dist="uniform", low=1, high=300)),
                        kv_capacity_tokens=8 * 2048, step_model=FixedSteps(0.02, 0.01)),
    "fixed steps, poisson": dict(w=lengths(arrival="poisson", rate_per_s=30, requests=500),
                                 step_model=FixedSteps(0.05, 0.01)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fast_forward_gives_what_stepping_gives(case):
    kw = dict(CASES[case])
    v, w = v2(), kw.pop("w")
    r = both_ways(case, v.model, v.inference, w, **kw)
    assert r.finished == r.requests and r.iterations_stepped < r.iterations
    if case == "preemptions":
        assert r.preemptions > 0


def test_fast_forward_on_a_trace(tmp_path):
    v = v2()
    r = both_ways("trace", v.model, v.inference, trace(tmp_path), base_dir=tmp_path)
    assert r.finished == 300 and r.iterations_stepped < r.iterations


def test_fast_forward_with_prefill_decode_disaggregation():
    v = v2()
    pd = v.inference.model_copy(update={"prefill_pool": PrefillPool(parallelism=Parallelism(dp=8, ep=8, zero_stage=0),
                                                                    instances=2, decode_instances=2)})
    r = both_ways("pd", v.model, pd, lengths(arrival="poisson", rate_per_s=15, requests=500))
    assert r.finished == 500 and r.iterations_stepped < r.iterations


def test_mtp_steps_every_iteration_and_gives_the_same():
    """MTP's draft acceptance draws random numbers each step, so those runs are never fast-forwarded."""
    v = v2()
    inf = v.inference.model_copy(update={"mtp": MTPSpec(tokens=1, acceptance=0.8)})
    r = both_ways("mtp", v.model, inf, lengths(arrival="poisson", rate_per_s=12, requests=300))
    assert r.iterations_stepped == r.iterations


def test_a_saturated_run_stops_at_the_same_iteration_either_way():
    """The steady-state stop looks before an iteration; a quiet run lands no further than the next look,
    so fast-forward stops where stepping stops, with the same interval."""
    v = v2()
    inf = v.inference.model_copy(update={"max_running": 16})
    w = lengths(arrival="burst", requests=5000, prompt_tokens=LengthDist(value=100), output_tokens=LengthDist(value=50))
    r = both_ways("sat", v.model, inf, w, phase="decode", steady=True, step_model=FixedSteps(0.02, 0.01),
                  kv_capacity_tokens=10**7)
    assert r.steady_state.stopped_early and r.finished < 5000 and r.iterations_stepped < r.iterations


@pytest.mark.parametrize("case", ["preemptions", "poisson", "pd", "mtp", "decode"])
def test_every_request_emits_exactly_its_output_tokens(case):
    """advance emits one token a decode uncapped in a mixed pool, where no decode is at its end (finish
    lets a request go as its last token lands), and caps MTP's drafts and a decode pool's decodes (a
    decode-only run admits a one-token answer with its token made): the tokens generated over a whole
    run are the requests' output tokens, with one-token answers (low=1), preemptions, P/D hand-offs,
    drafts and a saturated decode-only run. (Dropping either cap fails its case.)"""
    v = v2()
    inf, kw = v.inference, {}
    if case == "pd":
        inf = inf.model_copy(update={"prefill_pool": PrefillPool(parallelism=Parallelism(dp=8, ep=8, zero_stage=0),
                                                                 decode_instances=2)})
    if case == "mtp":
        inf = inf.model_copy(update={"mtp": MTPSpec(tokens=2, acceptance=0.8)})
    w = lengths(arrival="poisson", rate_per_s=12, requests=300, output_tokens=LengthDist(dist="uniform", low=1, high=300))
    if case == "preemptions":
        w, kw = CASES["preemptions"]["w"], {k: v for k, v in CASES["preemptions"].items() if k != "w"}
    if case == "decode":
        w, kw = w.model_copy(update={"arrival": "burst"}), {"phase": "decode"}
    r = run_serving(case, v.model, inf, w, **kw)
    outputs = make_requests(w, None, v.model.max_position_embeddings).output_tokens
    made = outputs.sum() - (len(outputs) if case == "decode" else 0)  # a decode pool gets each first token made
    assert r.finished == r.requests and r.generation_throughput_tok_s * r.sim_time_s == pytest.approx(made, rel=1e-12)
