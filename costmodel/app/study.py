"""The application layer: load a scenario, apply overrides, list every problem, evaluate.

The CLI, the dashboard and sweeps all go through these functions, so "load → override → check →
evaluate" exists once. A `Study` is a validated scenario plus what errors need to point into its file.
Feasibility is costmodel/app/feasibility.py's; this module turns its problems into errors that name the
file, the line and the full field path, all problems at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel

from costmodel.app.feasibility import SATURATION_MAX_REQUESTS, variant_problems
from costmodel.app.fleet import plan_fleet
from costmodel.app.kernel_import import deepep_ll_check, training_backend
from costmodel.app.plan import checked_plan
from costmodel.app.serving import ServeVariantResult, run_serving, serve_variant, steps_for
from costmodel.counts import deepep
from costmodel.counts.comm import links_of
from costmodel.counts.report import ScenarioReport, build_report
from costmodel.inputs.errors import PlannerError, PlannerErrors
from costmodel.inputs.loader import (
    BUNDLED_DIR,
    file_kind,
    line_of,
    load_named,
    load_spec,
    scenario_and_node,
    validate,
)
from costmodel.inputs.requests import RequestArrays, make_requests
from costmodel.inputs.specs import ModelSpec, Scenario, Sourced, Variant
from costmodel.inputs.sweep_spec import load_sweep
from costmodel.sim.serve_sim import ServeResult
from costmodel.sim.train_sim import TrainingResult, simulate_training
from costmodel.timing.calibration import TRAINING_A2A_EFFICIENCY, TRAINING_STACK_EFFICIENCY
from costmodel.timing.operators import DEFAULT_EFFICIENCY
from costmodel.timing.serve_costs import StepModel, decode_breakdown
from costmodel.timing.uncertainty import BAND_DRAWS, SERVE_BAND_DRAWS, TimingErrors, bands, sourced_errors

PARTS = ("training", "inference")


@dataclass(frozen=True)
class Study:
    """A validated scenario and where it came from (errors point into `file` at the lines of `node`)."""

    scenario: Scenario
    file: str
    node: yaml.Node | None = None
    base_dir: Path = BUNDLED_DIR  # trace CSVs resolve against it

    def index(self, variant: str) -> int:
        names = [v.name for v in self.scenario.variants]
        if variant not in names:
            raise PlannerError(f"no variant named {variant!r}", file=self.file, field="variants",
                               fix=f"use one of {', '.join(names)}")
        return names.index(variant)

    def variant(self, name: str) -> Variant:
        return self.scenario.variants[self.index(name)]

    def error(self, index: int, field: str, problem: str, fix: str) -> PlannerError:
        """An error about `field` (dotted, inside variant `index`), pointing at its line."""
        loc = ("variants", index, *(int(k) if k.isdigit() else k for k in field.split(".")))
        return PlannerError(f"variant {self.scenario.variants[index].name!r}: {problem}", file=self.file,
                            line=line_of(self.node, loc), field=".".join(map(str, loc)), fix=fix)


def open_study(path: Path) -> Study:
    """A scenario file, or a bare model file as one variant."""
    scenario, node = scenario_and_node(Path(path))
    return Study(scenario, str(path), node, Path(path).resolve().parent)


def study_from_text(text: str, path: Path) -> Study:
    """A scenario given as text (dashboard edits and uploads); `path` names it and anchors references."""
    scenario, node = scenario_and_node(Path(path), text)
    return Study(scenario, Path(path).name, node, Path(path).resolve().parent)


# ------------------------------------------------------------------------------------------ overrides


def _set_path(data: dict, keys: list[str], value: Any, where: str) -> None:
    for key in keys[:-1]:
        if not isinstance(data.get(key), dict):
            raise PlannerError(f"cannot override {where!r}: there is no `{key}` part to change",
                               field=where, fix=f"add a `{key}:` section to the variant first")
        data = data[key]
    data[keys[-1]] = value


def override(study: Study, variant: str, changes: dict[str, Any]) -> Study:
    """The study with `changes` ({"training.parallelism.ep": 16, ...}, paths inside the variant) applied
    to one variant, re-validated by the specs: a bad value is the same error a bad file gives."""
    i = study.index(variant)
    data = study.scenario.variants[i].model_dump()
    for path, value in changes.items():
        _set_path(data, path.split("."), value, path)
    new = validate(Variant, data, Path(study.file), None, prefix=("variants", i))
    variants = [*study.scenario.variants[:i], new, *study.scenario.variants[i + 1:]]
    return replace(study, scenario=study.scenario.model_copy(update={"variants": variants}), node=None)


# ---------------------------------------------------------------------------------------- feasibility


def selected(study: Study, part: str, only: str | None = None) -> list[int]:
    """Indices of the variants that have `part` (and are named `only`, when given)."""
    out = [i for i, v in enumerate(study.scenario.variants)
           if getattr(v, part) is not None and (only is None or v.name == only)]
    if not out:
        named = f" named {only!r}" if only else ""
        raise PlannerError(f"no variant with a `{part}:` part{named}", file=study.file, field="variants",
                           fix=f"add a {part} section or fix --variant")
    return out


def trace_requests(study: Study, v: Variant) -> RequestArrays | None:
    """A trace workload's requests, read once per command and handed to both the checks and the runs;
    None for a sampled workload (its requests are drawn per run, from its seed)."""
    w = v.inference.workload if v.inference else None
    if w is None or w.arrival != "trace":
        return None
    return make_requests(w, study.base_dir, v.model.max_position_embeddings)


def problems(study: Study, parts: tuple[str, ...] = PARTS, indices: list[int] | None = None,
             traces: dict[int, RequestArrays | None] | None = None) -> list[PlannerError]:
    """Every feasibility problem of the chosen variants, as errors pointing into the file. `traces`:
    the variants' trace requests when the caller has read them already."""
    out = []
    for i in range(len(study.scenario.variants)) if indices is None else indices:
        v = study.scenario.variants[i]
        reqs = None
        if "inference" in parts:
            reqs = traces[i] if traces is not None and i in traces else trace_requests(study, v)
        longest = None if reqs is None else int(np.max(reqs.prompt_tokens + reqs.output_tokens))
        out += [study.error(i, p.field, p.problem, p.fix) for p in variant_problems(v, parts, longest)]
    return out


def check(study: Study, parts: tuple[str, ...] = PARTS, indices: list[int] | None = None,
          traces: dict[int, RequestArrays | None] | None = None) -> None:
    """Raise every problem at once; nothing is simulated on an infeasible variant."""
    errors = problems(study, parts, indices, traces)
    if errors:
        raise PlannerErrors(errors)


def validate_file(path: Path) -> tuple[str, str]:
    """`planner validate`: (kind, name) of a file that passes every check `simulate` would run."""
    kind = file_kind(path)
    if kind == "sweep":
        spec, text, base = load_sweep(path)
        sweep_base = study_from_text(text, base)
        check(sweep_base, indices=[sweep_base.index(spec.variant)])
        return kind, spec.name
    if kind == "plan":
        return kind, checked_plan(path)[0].name
    if kind in ("scenario", "model"):
        study = open_study(path)
        check(study)
        return kind, study.scenario.name
    return kind, load_spec(kind, path).name


# ------------------------------------------------------------------------------------------ evaluation


def check_comm(gpu_name: str = "h800") -> dict:
    """`planner check-comm`: DeepEP's published tables (measured on H800) against deepep.py over H800's
    links; then, on the part `gpu_name`, the benchmark call laid over its NVLink domains and over 8-GPU
    nodes, and against the kernel database's measurements of that part where it has them."""
    h800, gpu = (load_named("gpu", name, BUNDLED_DIR / "x", referer=Path("--gpu"), node=None, loc=("gpu",))
                 for name in ("h800", gpu_name))
    published, links = links_of(h800), links_of(gpu)
    return deepep.check_comm(published["nvlink"], published["nic"]) | {
        "gpu": gpu.name, "nvlink_domain_gpus": gpu.nvlink_domain_gpus,
        "domain": deepep.domain_cases(links["nvlink"], links["nic"], gpu.nvlink_domain_gpus),
        "database": deepep_ll_check(gpu, links["nvlink"], links["nic"])}


def report(study: Study) -> ScenarioReport:
    """Counts and memory of every variant against the baseline (layouts must be valid)."""
    check(study)
    return build_report(study.scenario)


def source_kind(source: str) -> str:
    """published, measured or assumed, from how a source starts (docs/sources.md)."""
    head = source.strip().lower()
    return "assumed" if head.startswith("assumption") else "measured" if head.startswith("measured") else "published"


def _sourced(node, where: str) -> list[tuple[str, float | None, str]]:
    """(field path, value, source) of every sourced number under a spec: its Sourced constants, and a
    model's own `source` (its shape)."""
    if isinstance(node, Sourced):
        return [(where, node.value, node.source)]
    out = []
    if isinstance(node, ModelSpec) and node.source:
        out.append((f"{where} (shape)", None, node.source))
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            out += _sourced(getattr(node, name), f"{where}.{name}" if where else name)
    elif isinstance(node, dict):
        for key, value in node.items():
            out += _sourced(value, f"{where}.{key}")
    return out


def sources(study: Study) -> list[dict]:
    """`planner report --sources`: every sourced number of each variant (GPU, model, stated efficiencies)
    with its source and kind, then the constants the cost model itself applies."""
    rows = [{"variant": v.name, "field": where, "value": value, "source": src, "kind": source_kind(src)}
            for v in study.scenario.variants for where, value, src in _sourced(v, "")]
    model_constants = [("training stack efficiency", TRAINING_STACK_EFFICIENCY, "measured: PD train.json (costmodel/timing/calibration.py)"),
                       ("overlapped all-to-all efficiency", TRAINING_A2A_EFFICIENCY, "measured: PD train.json (costmodel/timing/calibration.py)")]
    model_constants += [(f"{op} efficiency without a profile", e.compute, e.source) for op, e in DEFAULT_EFFICIENCY.items()]
    return rows + [{"variant": "(cost model)", "field": f, "value": x, "source": src, "kind": source_kind(src)}
                   for f, x, src in model_constants]


def trace_path_for(trace: Path | None, name: str, several: bool) -> Path | None:
    """One Chrome trace per variant: `step.json` for one, `step.NAME.json` for several."""
    if trace is None or not several:
        return trace
    return trace.with_name(f"{trace.stem}.{name}{trace.suffix}")


def train(study: Study, only: str | None = None, trace: Path | None = None,
          passes: list | None = None, with_bands: bool = False) -> list[TrainingResult]:
    """`planner simulate train`: one step per variant with a training part, extrapolated to the run;
    with_bands adds p10/p50/p90 bands from the sourced efficiencies' uncertainty."""
    indices = selected(study, "training", only)
    check(study, ("training",), indices)
    out = []
    for i in indices:
        v = study.scenario.variants[i]
        path = trace_path_for(trace, v.name, len(indices) > 1)
        r = simulate_training(v.name, v.model, v.training, trace_path=path, passes=passes,
                              measured=training_backend(v.model, v.training))
        if with_bands:
            r.bands = train_bands(v, sourced_errors())
        out.append(r)
    return out


def each_variant(study: Study, run: Callable, part: str) -> list[tuple[str, Any]]:
    """(name, result) of each variant with `part`, run alone by `run` (train or serve); the result is the
    PlannerError of a variant that cannot run, so one does not stop the others (dashboard, HTML report)."""
    return [(v.name, run_variant(study, run, v.name)) for v in study.scenario.variants if getattr(v, part) is not None]


def run_variant(study: Study, run: Callable, name: str) -> Any:
    """The result of `run` (train or serve) for the one variant `name`, or the PlannerError that stops it."""
    try:
        (result,) = run(study, only=name)
    except PlannerError as e:
        return e
    return result


def train_bands(v, errors: TimingErrors, draws: int = BAND_DRAWS) -> dict:
    """Step time, throughput and GPU-hours of variant `v`'s training over drawn timing errors."""
    def run(scale: dict[str, float]) -> dict[str, float]:
        r = simulate_training(v.name, v.model, v.training, scale=scale, measured=training_backend(v.model, v.training))
        return {"step_time_s": r.step_time_s, "tokens_per_s_per_gpu": r.tokens_per_s_per_gpu,
                "gpu_hours_per_trillion_tokens": r.gpu_hours_per_trillion_tokens, "gpu_hours_total": r.gpu_hours_total}
    return bands(run, errors, draws)


def serve_bands(v, errors: TimingErrors, base: ServeVariantResult, base_dir: Path,
                draws: int = SERVE_BAND_DRAWS, requests: RequestArrays | None = None) -> dict:
    """Throughputs and latencies of variant `v`'s serving over drawn timing errors. Each draw re-runs
    the workload (TTFT, TPOT) and rescales the saturated throughputs of `base` by how the drawn errors
    change the saturated decode iteration and a mean-prompt prefill (the saturated schedule itself, set
    by the KV capacity and the token budget, does not depend on operator times)."""
    m, inf = v.model, v.inference
    w = inf.workload
    pre_inf = inf.prefill_instance() if inf.prefill_pool is not None else inf
    ctx, prompt = int(w.prompt_tokens.mean + w.output_tokens.mean / 2), int(w.prompt_tokens.mean)
    batch = base.max_concurrent_requests

    def models(scale: dict[str, float] | None) -> tuple[StepModel, StepModel]:
        """The draw's iteration models, built once and shared by its runs (as serve_variant does)."""
        steps = steps_for(m, inf, scale, base_dir)
        return steps, steps if pre_inf is inf else steps_for(m, pre_inf, scale, base_dir)

    def saturated_s(steps: StepModel, pre_steps: StepModel) -> tuple[float, float]:
        return decode_breakdown(steps, batch, ctx)["iteration_s"], pre_steps.time([(prompt, prompt)], 0, 0)

    decode0, prefill0 = saturated_s(*models(None))
    reqs = requests or make_requests(w, base_dir, m.max_position_embeddings)  # every draw serves the same requests

    def run(scale: dict[str, float]) -> dict[str, float | None]:
        steps, pre_steps = models(scale)
        mixed = run_serving(v.name, m, inf, w, step_model=steps, prefill_step_model=pre_steps, requests=reqs)
        decode, prefill = saturated_s(steps, pre_steps)
        return {"max_generation_throughput_tok_s": base.max_generation_throughput_tok_s * decode0 / decode,
                "prompt_throughput_tok_s": base.prompt_throughput_tok_s * prefill0 / prefill,
                "ttft_p50_s": mixed.latency.ttft_p50_s, "tpot_p50_s": mixed.latency.tpot_p50_s}
    return bands(run, errors, draws)


def serve(study: Study, only: str | None = None, requests: int | None = None,
          progress: Callable[[str, str, int, int], None] | None = None,
          with_bands: bool = False, bound_saturation: bool = True) -> list[ServeVariantResult]:
    """`planner simulate serve`: each variant's workload, plus its saturated generation and prompt
    throughputs (and, with_bands, their p10/p50/p90 bands). progress(variant, phase, done, total).
    `requests` replaces the workload's count, and with bound_saturation the saturated runs' too."""
    indices = selected(study, "inference", only)
    study = with_requests(study, indices, requests, bound_saturation) if requests is not None else study
    traces = {i: trace_requests(study, study.scenario.variants[i]) for i in indices}
    check(study, ("inference",), indices, traces)
    out = []
    for i in indices:
        v = study.scenario.variants[i]
        if v.inference.workload is None:
            raise study.error(i, "inference.workload", "has no workload to serve",
                              "add a workload (e.g. workload: deepseek-chat-assumed)")
        cb = (lambda phase, done, total, name=v.name: progress(name, phase, done, total)) if progress else None
        r = serve_variant(v.name, v.model, v.inference, base_dir=study.base_dir, progress=cb, requests=traces[i])
        if v.inference.fleet is not None:
            r.fleet = plan_fleet(v.model, v.inference, r).model_dump()
        if with_bands:
            r.bands = serve_bands(v, sourced_errors(), r, study.base_dir, requests=traces[i])
        out.append(r)
    return out


def with_requests(study: Study, indices: list[int], requests: int, bound_saturation: bool = True) -> Study:
    """simulate serve --requests N: each selected workload serves N requests, and (bound_saturation) its
    maximum-throughput runs queue N at once too (the result says when that is too few to saturate);
    validated as the file is. A sweep's per-point `requests` leaves the saturated runs saturating."""
    changes = {"inference.workload.requests": requests}
    if bound_saturation:
        changes["inference.workload.saturation_requests"] = min(requests, SATURATION_MAX_REQUESTS)
    for i in indices:
        v = study.scenario.variants[i]
        if v.inference.workload is not None:
            study = override(study, v.name, changes)
    return study


def serve_at_rate(study: Study, variant: str, rate_per_s: float, requests: int) -> ServeResult:
    """The variant's workload as Poisson arrivals at `rate_per_s` (one point of a latency curve)."""
    changes = {"inference.workload.arrival": "poisson", "inference.workload.rate_per_s": rate_per_s,
               "inference.workload.requests": requests}
    s = override(study, variant, changes)
    i = s.index(variant)
    check(s, ("inference",), [i])
    v = s.scenario.variants[i]
    return run_serving(v.name, v.model, v.inference, base_dir=s.base_dir)

