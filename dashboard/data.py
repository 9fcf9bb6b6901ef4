"""What the pages show, computed by the same costmodel calls as the CLI (no formulas here) and cached:
in memory by Streamlit, and on disk by scenario text so `make run` can compute the default comparison
before the server starts (`python -m dashboard.data scenarios/deepseek-v2-paper.yaml`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import streamlit as st

from costmodel.app import check_serving, study
from costmodel.app.fleet import usd_per_million_output_tokens
from costmodel.app.launch.emit import chosen, emit, zip_bytes
from costmodel.app.plan import checked_plan
from costmodel.app.sweep import point_overrides
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.loader import load_spec
from costmodel.inputs.profiles import load_profile
from costmodel.inputs.reading import strict_dumps
from costmodel.timing.operators import MeasuredBackend, RooflineBackend, held_out_errors
from planner.plan_runner import run_plan
from planner.sweep_runner import read_journal, summarise

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
CACHE = ROOT / ".cache" / "dashboard"


def _code_version() -> str:
    """Changes whenever the cost model's code does, so cached results never outlive it."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "costmodel").rglob("*.py")):
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
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # whole or absent: another process may read it
    partial.write_text(strict_dumps(value))
    os.replace(partial, path)
    return value


def open_text(text: str, name: str) -> study.Study:
    """The scenario text as a study; PlannerError when it does not load."""
    return study.study_from_text(text, SCENARIOS / name)


def scenario(text: str, name: str, origin: str = "bundled"):
    """(Scenario, None) or (None, every problem of the file, naming each field). An uploaded or edited
    text is named as such, not by a server path that does not hold it."""
    try:
        st_ = open_text(text, name)
        study.check(st_)
        return st_.scenario, None
    except PlannerError as e:
        message = str(e).replace(str(SCENARIOS / name), name)
        if origin != "bundled" and message.startswith(name):
            message = f"{name} ({origin})" + message[len(name):]
        return None, message


@st.cache_data(show_spinner=False)
def report(text: str, name: str) -> dict:
    return study.report(open_text(text, name)).model_dump()


@st.cache_data(show_spinner=False)
def variants_with(text: str, name: str, part: str) -> list[str]:
    """The names of the scenario's variants that have `part` (training or inference); cached, since every
    rerun of a page asks and the answer needs the scenario parsed."""
    return [v.name for v in open_text(text, name).scenario.variants if getattr(v, part) is not None]


def _one(results_of, text: str, name: str, variant: str) -> dict:
    """One variant's result dict, or {"name", "error"} for a variant that cannot run (the others still do)."""
    r = study.run_variant(open_text(text, name), results_of, variant)
    return {"name": variant, "error": str(r)} if isinstance(r, PlannerError) else r.model_dump()


def compute_training_one(text: str, name: str, variant: str) -> dict:
    """simulate train of one variant (as `planner simulate train --variant V --format json`), on disk too."""
    return _disk(f"train-{variant}", text, lambda: _one(study.train, text, name, variant))


def compute_serving_one(text: str, name: str, variant: str) -> dict:
    """simulate serve of one variant (as `planner simulate serve --variant V --format json`), on disk too."""
    return _disk(f"serve-{variant}", text, lambda: _one(study.serve, text, name, variant))


def compute_training(text: str, name: str) -> list[dict]:
    """simulate train for every variant with a training part (as `planner simulate train --format json`)."""
    return [compute_training_one(text, name, v) for v in variants_with(text, name, "training")]


def compute_serving(text: str, name: str) -> list[dict]:
    """simulate serve for every variant with an inference part (as `planner simulate serve --format json`)."""
    return [compute_serving_one(text, name, v) for v in variants_with(text, name, "inference")]


training_one = st.cache_data(show_spinner=False)(compute_training_one)
serving_one = st.cache_data(show_spinner=False)(compute_serving_one)

WHATIF_PATHS = {"schedule": "training.parallelism.schedule", "micro_batches": "training.parallelism.micro_batches",
                "ep": "training.parallelism.ep", "dp": "training.parallelism.dp", "cp": "training.parallelism.cp",
                "recompute": "training.parallelism.recompute", "precision": "training.precision",
                "virtual_stages": "training.parallelism.virtual_stages", "moe_folding": "training.parallelism.moe_folding",
                "overlap_moe_a2a": "training.parallelism.overlap_moe_a2a",
                "overlap_shared_experts": "training.overlap_shared_experts"}


@st.cache_data(show_spinner=False)
def training_whatif(text: str, name: str, variant: str, overrides: dict) -> tuple[dict, list]:
    """One variant re-simulated with parallelism/precision overrides; returns the result and its passes."""
    st_ = study.override(open_text(text, name), variant, {WHATIF_PATHS[k]: x for k, x in overrides.items()})
    passes: list = []
    (result,) = study.train(st_, only=variant, passes=passes)
    return result.model_dump(), passes


CURVE_LOADS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1)  # latency curve: arrival rates, as shares of the saturated rate
CURVE_SECONDS = 40  # ... each simulated for about this long (600-6,000 requests), so that ramp-up and drain are short


def curve_rates(max_generation_tok_s: float, mean_output_tokens: float) -> list[tuple[float, int]]:
    """(rate, requests) of each latency-curve point: up to just past the rate that saturates the instance."""
    saturated = max_generation_tok_s / max(1.0, mean_output_tokens)
    return [(round(saturated * x, 2), int(min(6000, max(600, saturated * x * CURVE_SECONDS)))) for x in CURVE_LOADS]


@st.cache_data(show_spinner=False)
def latency_curve(text: str, name: str, variant: str, points: tuple[tuple[float, int], ...]) -> list[dict]:
    """The workload at several Poisson rates: steady generation throughput (between the completion-time
    percentiles where the run neither fills nor drains) against TTFT and TPOT. On disk too: a new server
    process draws a page it has drawn before at once."""
    def compute() -> list[dict]:
        st_ = open_text(text, name)
        out = []
        for rate, requests in points:
            r = study.serve_at_rate(st_, variant, rate, requests)
            out.append({"rate_per_s": rate, "requests": requests, "generation_throughput_tok_s": r.max_generation_throughput_tok_s,
                        **r.latency.model_dump(include={"ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s"})})
        return out
    return _disk(f"curve-{variant}", f"{json.dumps(points)}\n{text}", compute)


@st.cache_data(show_spinner=False)
def serving_whatif(text: str, name: str, variant: str, point: dict, extra: dict) -> dict:
    """One variant served with a sweep point's overrides (gpu, nodes, tp, ep, weight_bits, kv_bits) and
    `extra` override paths (workload, prefill pool): as `planner simulate serve --format json`."""
    st_ = open_text(text, name)
    v = st_.scenario.variants[st_.index(variant)]
    new = study.override(st_, variant, point_overrides(v, "inference", point, SCENARIOS / name) | extra)
    changed = new.scenario.variants[new.index(variant)]
    # left as configured: the variant's own (disk-cached) result, not a second simulation of the same spec
    own = compute_serving_one(text, name, variant) if changed == v else None
    r = own if own is not None and "error" not in own else study.serve(new, only=variant)[0].model_dump()
    return {k: x for k, x in r.items() if k not in ("timeline", "samples")} | {
        "usd_per_million_output_tokens": usd_per_million_output_tokens(changed.inference,
                                                                       r["max_generation_throughput_tok_s"])}


@st.cache_data(show_spinner=False)
def profile_view(path: str, mtime: float) -> tuple[dict, list[dict], dict]:
    """A profile's header, each point against both timing backends, and check-timing's held-out errors
    (fitted once per file version, not on every render)."""
    prof = load_profile(ROOT / path)
    roof, measured = RooflineBackend.fit(prof), MeasuredBackend(prof)
    shown = ("m", "n", "k", "b", "q", "ctx", "tokens", "mode")
    rows = [{"op": p.op, "pass": p.pass_, "shape": strict_dumps({k: v for k, v in p.shape.items() if k in shown}),
             "measured_s": p.median_s, "roofline_s": roof.time(p.op, p.shape, p.pass_),
             "interpolated_s": measured.time(p.op, p.shape, p.pass_)} for p in prof.points]
    return prof.header, rows, held_out_errors(prof)


@st.cache_data(show_spinner=False)
def sweep_view(path: str, mtime: float) -> tuple[dict, list[dict], dict]:
    """A sweep journal's header, rows and summary (the Pareto front over the sweep file's own objectives,
    among the points that meet its constraints), as `planner best` computes them."""
    header, rows = read_journal(ROOT / path)
    return header, rows, summarise(header, rows)


CHECK_FOLDERS = (ROOT / "benchmarks" / "results", ROOT / "results")  # committed checks, then the user's own


def check_files() -> list[str]:
    """`planner check-serving --format json` results: check-serving*.json in the committed results and
    in results/."""
    return [str(p.relative_to(ROOT)) for folder in CHECK_FOLDERS for p in sorted(folder.glob("check-serving*.json"))]


@st.cache_data(show_spinner=False)
def check_view(path: str, mtime: float) -> dict:
    """A check-serving result (its points and summary); PlannerError naming the file when it is not one."""
    try:
        out = json.loads((ROOT / path).read_text())
    except (OSError, ValueError) as e:
        raise PlannerError(f"cannot read {path}: {e}", file=path, fix="write it with planner check-serving --format json") from e
    if not isinstance(out, dict) or not isinstance(out.get("points"), list):
        raise PlannerError("not a check-serving result (no `points` list)", file=path,
                           fix="write it with planner check-serving --format json")
    return out


def check_summary(points: list[dict]) -> dict:
    """check-serving's summary of a filtered set of points (the command's own function)."""
    return check_serving.summarise(points)


PLANS = SCENARIOS / "plans"


def plan_files() -> list[str]:
    return sorted(p.name for p in PLANS.glob("*.yaml"))


@st.cache_data(show_spinner=False)
def plan(text: str, name: str) -> dict:
    """`planner plan --format json` of the plan text (as if it were plans/NAME), in this process; on disk
    too, so a reload does not search again."""
    return _disk("plan", text, lambda: run_plan(PLANS / name, text=text, sequential=True))


def launch_zip(text: str, name: str, target: str) -> bytes:
    """The recommended deployment's launch files for `target` as a zip (`planner plan --emit`'s files)."""
    result = plan(text, name)
    spec, engine = checked_plan(PLANS / name, text)
    return zip_bytes(emit(chosen(spec, engine, result, target), target), f"{result['plan']}-{target}")


def csv_text(rows: list[dict]) -> str:
    """Rows of one table as CSV (for a download button)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def workload_dump(name: str) -> dict:
    """A bundled workload file as plain data (for an override)."""
    return load_spec("workload", SCENARIOS / "workloads" / f"{name}.yaml").model_dump()


def flat_rows(rows: list[dict]) -> list[dict]:
    """Rows with nested dicts spread into dotted columns (for CSV); lists kept as JSON text."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out |= flat(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = strict_dumps(v) if isinstance(v, list) else v
        return out
    flats = [flat(r) for r in rows]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    return [{k: f.get(k) for k in keys} for f in flats]


def named_files(kind_folder: str) -> list[str]:
    """The names of the bundled files of one kind (gpus, workloads)."""
    return sorted(p.stem for p in (SCENARIOS / kind_folder).glob("*.yaml"))


def scenario_files() -> list[str]:
    return sorted(p.name for p in SCENARIOS.glob("*.yaml"))


if __name__ == "__main__":  # precompute for `make run`
    for arg in sys.argv[1:]:
        p = Path(arg)
        text = p.read_text()
        compute_training(text, p.name)
        compute_serving(text, p.name)
        print(f"dashboard cache ready for {p}")
