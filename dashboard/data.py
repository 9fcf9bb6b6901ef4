"""What the pages show, computed by the same costmodel calls as the CLI (no formulas here) and cached:
in memory by Streamlit, and on disk by scenario text so `make run` can compute the default comparison
before the server starts (`python -m dashboard.data scenarios/deepseek-v2-paper.yaml`)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import streamlit as st

from costmodel.errors import PlannerError
from costmodel.loader import load_scenario_text
from costmodel.report import build_report
from costmodel.serve_sim import serve_variant, simulate_serving
from costmodel.train_sim import check_trainable, simulate_training

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
CACHE = ROOT / ".cache" / "dashboard"


def _code_version() -> str:
    """Changes whenever the cost model's code does, so cached results never outlive it."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "costmodel").glob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


CODE_VERSION = _code_version()


def _disk(kind: str, text: str, compute):
    """Results keyed by scenario text and code version; computed once, then read back."""
    key = hashlib.sha256(f"{kind}\n{CODE_VERSION}\n{text}".encode()).hexdigest()[:20]
    path = CACHE / f"{kind}-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return value


def scenario(text: str, name: str):
    """(Scenario, None) or (None, error message naming the field)."""
    try:
        return load_scenario_text(text, SCENARIOS / name), None
    except PlannerError as e:
        return None, str(e)


@st.cache_data(show_spinner=False)
def report(text: str, name: str) -> dict:
    sc, _ = scenario(text, name)
    return build_report(sc).model_dump()


def compute_training(text: str, name: str) -> list[dict]:
    """simulate train for every variant with a training part (as `planner simulate train --format json`)."""
    def compute():
        sc, _ = scenario(text, name)
        out = []
        for i, v in enumerate(sc.variants):
            if v.training is None:
                continue
            try:
                check_trainable(v, name, ("variants", i, "training"))
                out.append(simulate_training(v.name, v.model, v.training).model_dump())
            except PlannerError as e:
                out.append({"name": v.name, "error": str(e)})
        return out
    return _disk("train", text, compute)


def compute_serving(text: str, name: str) -> list[dict]:
    """simulate serve for every variant with an inference part (as `planner simulate serve --format json`)."""
    def compute():
        sc, _ = scenario(text, name)
        out = []
        for v in sc.variants:
            if v.inference is None:
                continue
            try:
                out.append(serve_variant(v.name, v.model, v.inference, base_dir=SCENARIOS).model_dump())
            except PlannerError as e:
                out.append({"name": v.name, "error": str(e)})
        return out
    return _disk("serve", text, compute)


training = st.cache_data(show_spinner=False)(compute_training)
serving = st.cache_data(show_spinner=False)(compute_serving)


@st.cache_data(show_spinner=False)
def training_whatif(text: str, name: str, variant: str, overrides: dict) -> tuple[dict, list]:
    """One variant re-simulated with parallelism/precision overrides; returns the result and its passes."""
    sc, _ = scenario(text, name)
    v = next(v for v in sc.variants if v.name == variant)
    par_keys = {"schedule", "micro_batches", "ep", "dp", "recompute"}
    par = v.training.parallelism.model_copy(update={k: x for k, x in overrides.items() if k in par_keys})
    t = v.training.model_copy(update={"parallelism": par, **{k: x for k, x in overrides.items() if k not in par_keys}})
    t = type(t).model_validate(t.model_dump())  # re-validate the edited layout
    from costmodel.layout import training_problems

    problems = training_problems(v.model, t)
    if problems:
        loc, problem, fix = problems[0]
        raise PlannerError(problem, field=".".join(map(str, loc)), fix=fix)
    check_trainable(v.model_copy(update={"training": t}), name, ("variants", sc.variants.index(v), "training"))
    passes: list = []
    result = simulate_training(v.name, v.model, t, passes=passes)
    return result.model_dump(), passes


@st.cache_data(show_spinner=False)
def latency_curve(text: str, name: str, variant: str, rates: tuple[float, ...], requests: int) -> list[dict]:
    """The workload at several Poisson rates: throughput against TTFT/TPOT."""
    sc, _ = scenario(text, name)
    v = next(v for v in sc.variants if v.name == variant)
    out = []
    for rate in rates:
        w = v.inference.workload.model_copy(update={"arrival": "poisson", "rate_per_s": rate, "requests": requests})
        r = simulate_serving(v.name, v.model, v.inference, w, base_dir=SCENARIOS)
        out.append({"rate_per_s": rate, **{k: getattr(r, k) for k in (
            "generation_throughput_tok_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s")}})
    return out


@st.cache_data(show_spinner=False)
def profile_view(path: str, mtime: float) -> tuple[dict, list[dict], dict]:
    """A profile's header, each point against both timing backends, and check-timing's held-out errors
    (fitted once per file version, not on every render)."""
    from costmodel.profiles import load_profile
    from costmodel.timing import MeasuredBackend, RooflineBackend, held_out_errors

    prof = load_profile(ROOT / path)
    roof, measured = RooflineBackend.fit(prof), MeasuredBackend(prof)
    shown = ("m", "n", "k", "b", "q", "ctx", "tokens", "mode")
    rows = [{"op": p.op, "pass": p.pass_, "shape": json.dumps({k: v for k, v in p.shape.items() if k in shown}),
             "measured_s": p.median_s, "roofline_s": roof.time(p.op, p.shape, p.pass_),
             "interpolated_s": measured.time(p.op, p.shape, p.pass_)} for p in prof.points]
    return prof.header, rows, held_out_errors(prof)


def scenario_files() -> list[str]:
    return sorted(p.name for p in SCENARIOS.glob("*.yaml"))


if __name__ == "__main__":  # precompute for `make run`
    for arg in sys.argv[1:]:
        p = Path(arg)
        text = p.read_text()
        compute_training(text, p.name)
        compute_serving(text, p.name)
        print(f"dashboard cache ready for {p}")
