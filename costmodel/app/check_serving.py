"""`planner check-serving`: measured serving points replayed through the simulator, one variant each, and
the errors of its TTFT and TPOT against the measurements, point by point and per group.

A point becomes a variant this way (every reading is also in the README's "Checked against measured
deployments"):
  model     the shipped HF config (aiconfigurator_core/model_configs/ORG--NAME_config.json; Meta-Llama and
            -Instruct spellings of one checkpoint share a config) through `import-hf`, or a bundled model;
  GPU       the GPU file whose `kernel_database.gpu` is the row's system (h800's ASSUMPTION excluded);
  engine    the row's engine at the newest database version not after the row's (else its oldest);
  precision NVFP4 (4-bit weights), FP8 GEMMs (block or per-tensor scaling, as the row says, except that a
            checkpoint shipping block-scaled FP8 runs block-scaled: block_fp8_checkpoint) or BF16;
            a row without one runs the checkpoint as it ships (its config's quantization_config); INT4
            and MXFP4 are skipped; the KV cache in FP8 where the InferenceX recipe that ran the row
            launched its engine so (inputs/recipes.py: `--kv-cache-dtype fp8`, `kv_cache_config.dtype`),
            else in BF16 (ASSUMPTION: the engines' default cache dtype, `auto`, is the model's activation
            dtype; the sample records none);
  layout    attention TP x DP, experts EP x expert TP (moe_ep x moe_tp) over the same GPUs, in NVLink
            domains of the GPU file's nvlink_domain_gpus (an HGX node's 8, an NVL72 rack's 72);
  disagg    the prefill workers as the prefill pool, `prefill_num_workers` of them feeding
            `decode_num_workers` decode workers (the variant's own layout) round robin; the KV crosses
            the NIC and TTFT includes the transfer; a run of InferenceX's exports, which record each
            worker's GPUs alone, runs its recipe's workers (measured_serving.recorded_in_part);
  workload  the measured concurrency as a closed loop of that many users, driven as the point's
            client drove it (measured_serving.Client): the sample's InferenceX rows as InferenceX's client
            (INFERENCEX_CLIENT: lengths uniform in [int(0.8 L), L], ten prompts a user), its other rows and
            a CSV that does not say as UNRECORDED_CLIENT (fixed lengths, two a user), a user's bench file at
            its mean lengths and its prompts a user; every user's first request sent at once,
            as the clients do (INFX, VBS, SBS in docs/sources.md: requests at an unbounded rate behind a
            semaphore of the concurrency);
  decoding  a row whose InferenceX recipe ran speculative decoding (MTP; inputs/recipes.py) is skipped:
            how many drafts it accepted is not recorded (AISIM leaves such points unpredicted too); so is a
            row whose fitting recipes disagree; a row no recipe matches is replayed without speculation;
  compared  the predicted mean TTFT and TPOT where the point measured means (InferenceX's rows), the
            p50 where it measured medians (the other rows, by ASSUMPTION; bench files); a request's TPOT
            is (end - first token) / (output - 1), as the clients compute it.
What cannot be expressed is skipped with the reason, so coverage is a count, not a guess.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import yaml

from costmodel.app.kernel_import import bundled_database_gpus, database_gpu
from costmodel.app.serving import run_serving
from costmodel.app.study import problems, study_from_text
from costmodel.inputs import kernel_db
from costmodel.inputs.bench_results import BENCH_SUFFIXES, read_bench
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.hf_import import import_hf
from costmodel.inputs.loader import BUNDLED_DIR
from costmodel.inputs.measured_serving import Layout, MeasuredPoint, read_points
from costmodel.inputs.reading import read_text
from costmodel.inputs.recipes import AMBIGUOUS
from costmodel.inputs.specs import Parallelism
from costmodel.sim.serve_sim import LatencyStats

# Qwen3.5 is its own family: a hybrid of linear and full attention, unlike Qwen3's dense and MoE models
FAMILIES = (("deepseek", r"deepseek-(v3|r1)"), ("kimi", r"kimi-k2"), ("qwen3.5", r"qwen3\.5"), ("qwen3", r"qwen3"),
            ("llama-3.1", r"llama-3\.1"))


class Unsupported(Exception):
    """A point the planner cannot express; its message is the reason reported for it."""


@dataclass
class PointResult:
    id: str
    split: str
    group: dict  # gpu, engine, mode, family
    measured: dict  # ttft_ms, tpot_ms
    predicted: dict | None = None  # ttft_ms, tpot_ms, generation_tok_s
    skipped: str | None = None
    setup: dict = field(default_factory=dict)  # what the point ran as (engine version, layout, precision)


def family_of(model_path: str) -> str:
    low = model_path.lower()
    return next((name for name, pattern in FAMILIES if re.search(pattern, low)), "other")


# ------------------------------------------------------------------------------------------ inputs


@cache
def gpu_files() -> dict[str, str]:
    """Database GPU -> the bundled GPU file measured as it (the H800's file borrows H100's: excluded)."""
    return {db["gpu"]: stem for stem, db in bundled_database_gpus().items()
            if not str(db.get("source", "")).startswith("ASSUMPTION")}


@cache
def nvlink_domain(gpu: str) -> int:
    """GPUs in one NVLink domain of the bundled GPU file `gpu`: an HGX node's 8, an NVL72 rack's 72."""
    return int((yaml.safe_load((BUNDLED_DIR / "gpus" / f"{gpu}.yaml").read_text()) or {}).get("nvlink_domain_gpus", 8))


QUANT_SUFFIX = r"-(FP8|NVFP4|FP4)$"  # a quantized checkpoint (NVIDIA's ModelOpt ones) keeps its base's architecture


def config_names(name: str) -> list[str]:
    """Spellings of one checkpoint's config: itself, without -Instruct, with Meta- (Meta-Llama), and its
    base without a quantization suffix, or a quantized sibling of it."""
    bases = [name, re.sub(QUANT_SUFFIX, "", name, flags=re.IGNORECASE)]
    bases += [re.sub(r"-Instruct$", "", b) for b in bases]
    names = bases + [f"Meta-{b}" for b in bases]
    return list(dict.fromkeys(names + [f"{b}-{q}" for b in bases for q in ("NVFP4", "FP8")]))


def config_path(model_path: str) -> Path:
    """The shipped HF config of `model_path` (ORG/NAME): under its own organisation first, then under any
    (nvidia/X-FP8 has X's architecture); or Unsupported naming what was looked for."""
    org, _, name = model_path.partition("/")
    folder = kernel_db.systems_dir().parent / "model_configs"
    for candidate in config_names(name):
        path = folder / f"{org}--{candidate}_config.json"
        found = [path] if path.is_file() else sorted(folder.glob(f"*--{candidate}_config.json"))
        if found:
            return found[0]
    raise Unsupported(f"model: no config.json for {model_path} in the database's model_configs/")


@cache
def model_spec(model_path: str) -> dict:
    """The model spec of `model_path`: a bundled model by its name (deepseek-v3), or imported from the
    checkpoint's shipped HF config (import-hf's rules)."""
    bundled = BUNDLED_DIR / "models" / f"{model_path}.yaml"
    if "/" not in model_path and bundled.is_file():
        return yaml.safe_load(read_text(bundled))
    path = config_path(model_path)
    try:
        spec, _ = import_hf(json.loads(read_text(path)), model_path.split("/")[-1].lower(), str(path.name))
    except PlannerError as e:
        raise Unsupported(f"model: {e.problem}") from e
    return spec


def checkpoint_bits(model_path: str) -> int:
    """The weights' bits as the checkpoint ships: its name's quantization (-NVFP4 / -FP4: 4, -FP8: 8) first,
    as a quantized checkpoint may borrow its base's config; else 8 with an FP8 quantization_config, or 16."""
    name = model_path.upper()
    if name.endswith(("-NVFP4", "-FP4")):
        return 4
    quant = (model_spec(model_path).get("quantization_config") or {}).get("quant_method")
    return 8 if quant == "fp8" or name.endswith("-FP8") else 16


KNOWN_PRECISIONS = {"", "bf16", "fp16", "fp8", "fp4", "nvfp4"}  # the sample's `precision` values modelled
KNOWN_MODES = {"bfloat16", "float16", "fp8", "fp8_block", "nvfp4"}  # its gemm_ / moe_quant_mode values modelled


def precision_of(p: MeasuredPoint) -> dict:
    """weight_bits and FP8 scalings of the row's GEMMs and experts: NVFP4 as 4-bit weights, BF16 / FP16 as
    16; a row without any, the checkpoint as it ships; any other precision (INT4, MXFP4, ...) and NVFP4
    mixed with another is Unsupported, never read as FP8."""
    modes = {p.gemm_quant, p.moe_quant} - {""}
    unknown = ({p.precision} - KNOWN_PRECISIONS) | (modes - KNOWN_MODES)
    if unknown:
        raise Unsupported(f"precision: {'/'.join(sorted(unknown))} weights are not modelled")
    shipped = checkpoint_bits(p.model_path) if not p.precision and not modes else None
    if p.precision in ("fp4", "nvfp4") or "nvfp4" in modes or shipped == 4:
        if modes - {"nvfp4"}:
            raise Unsupported(f"precision: NVFP4 mixed with {'/'.join(sorted(modes - {'nvfp4'}))} is not modelled")
        return {"weight_bits": 4}
    if p.precision in ("bf16", "fp16") or (modes and modes <= {"bfloat16", "float16"}) or shipped == 16:
        return {"weight_bits": 16}
    if block_fp8_checkpoint(p.model_path):  # the loaders take the scaling from the checkpoint, not the label
        return {"weight_bits": 8, "fp8_gemm_scaling": "block", "fp8_moe_scaling": "block"}
    scaling = {"fp8": "tensor", "fp8_block": "block", "": "block"}
    return {"weight_bits": 8, "fp8_gemm_scaling": scaling.get(p.gemm_quant, "block"),
            "fp8_moe_scaling": scaling.get(p.moe_quant, "block")}


def kv_cache_of(p: MeasuredPoint) -> dict:
    """kv_bits 8 where the recipe that ran the row gave its engine an FP8 KV cache; else the default (BF16)."""
    return {"kv_bits": 8} if p.recipe is not None and p.recipe.kv_cache_dtype == "fp8" else {}


def block_fp8_checkpoint(model_path: str) -> bool:
    """Whether the checkpoint ships block-scaled FP8 weights: its own config's quantization_config is FP8
    with a `weight_block_size` (DeepSeek-V3/R1's 128 x 128; a borrowed base config says nothing of a
    sibling's scaling). An engine runs such weights block-scaled whatever a row's label says: TensorRT-LLM
    loads them as FP8_BLOCK_SCALES, and AIConfigurator's own SDK maps such a config to fp8_block GEMMs
    (AICS: sdk/models/helpers.py), while the sample labels every DeepSeek FP8 row's GEMMs per-tensor fp8."""
    org, _, name = model_path.partition("/")
    try:
        own = config_path(model_path).name == f"{org}--{name}_config.json"
        quant = model_spec(model_path).get("quantization_config") or {}
    except Unsupported:
        return False
    return own and quant.get("quant_method") == "fp8" and bool(quant.get("weight_block_size"))


def engine_version(gpu: str, engine: str, wanted: str) -> str:
    """The database version nearest the row's among those holding a table the planner reads: the newest
    not after it, else the oldest (each table of it is then read by the database's rule, the oldest where
    the version predates them all: kernel_db.find_tables); an unnumbered one (nightly) takes current, and so
    does a TensorRT-LLM "version" below 1.0, which is the Dynamo runtime's (ai-dynamo/tensorrtllm-runtime:0.8.1
    images): which TensorRT-LLM it bundles the row does not say."""
    key = kernel_db.version_key
    have = [v for v in kernel_db.measured_versions(gpu, engine) if key(v)[0] == 0]
    if not have:
        raise Unsupported(f"engine: the kernel database has no {engine} table on {gpu}")
    if key(wanted)[0] == 1 or (engine == "trtllm" and key(wanted) < key("1.0")):
        current = kernel_db.current_version(gpu, engine)
        return current if current in have else have[-1]
    before = [v for v in have if key(v) <= key(wanted)]
    return before[-1] if before else have[0]


def parallelism_of(lay: Layout | None, unreadable: str, moe: bool) -> dict:
    """One worker's layout as a Parallelism mapping, or Unsupported."""
    if lay is None:
        raise Unsupported(f"layout: {unreadable}")
    if lay.pp > 1:
        raise Unsupported(f"layout: pipeline-parallel serving (pp {lay.pp}) is not modelled")
    experts = {}
    if moe:
        if lay.moe_tp * lay.moe_ep != lay.gpus:
            raise Unsupported(f"layout: moe_tp {lay.moe_tp} x moe_ep {lay.moe_ep} is not the {lay.gpus} GPUs of "
                              f"tp {lay.tp} x attention_dp {lay.attention_dp}")
        experts = {"ep": lay.moe_ep, "etp": lay.moe_tp}
    return {"tp": lay.tp, "dp": lay.attention_dp, **experts, "zero_stage": 0}


def cluster_of(gpu: str, par: dict) -> dict:
    """The NVLink domains (HGX nodes of 8, NVL72 racks; fewer GPUs for a smaller worker) one worker of
    layout `par` runs on."""
    gpus, domain = par["tp"] * par["dp"], nvlink_domain(gpu)
    return {"gpus_per_node": min(gpus, domain), "nodes": -(-gpus // domain)}


def prefill_pool_of(p: MeasuredPoint, gpu: str, moe: bool) -> dict:
    """A disaggregated row's prefill workers: their layout, and how many feed how many decode workers."""
    par = parallelism_of(p.prefill_layout, "no prefill layout", moe)
    prefill, decode = p.workers
    return {**cluster_of(gpu, par), "parallelism": par, "instances": prefill, "decode_instances": decode}


def lengths_of(tokens: int, range_ratio: float) -> dict:
    """A client's lengths around `tokens`: uniform in [int(ratio L), L] (InferenceX's and vLLM's random
    dataset), or fixed at L for a ratio of 1."""
    low = int(tokens * range_ratio)
    return {"dist": "fixed", "value": tokens} if low >= tokens else {"dist": "uniform", "low": max(low, 1), "high": tokens}


def workload_of(p: MeasuredPoint) -> dict:
    """The point's benchmark run as a closed-loop workload: its concurrency, its client's lengths and
    prompts; only the workload runs (the saturated runs' budget is set to its size)."""
    requests = p.client.prompts_per_user * p.concurrency
    return {"name": "measured", "prompt_tokens": lengths_of(p.isl, p.client.range_ratio),
            "output_tokens": lengths_of(p.osl, p.client.range_ratio), "arrival": "closed", "users": p.concurrency,
            "requests": requests, "saturation_requests": requests}


def scenario_text(p: MeasuredPoint) -> str:
    """The point as a one-variant scenario (YAML), or Unsupported."""
    if p.mode not in ("agg", "disagg"):
        raise Unsupported(f"mode: {p.mode!r} is neither agg nor disagg")
    if p.engine not in kernel_db.ENGINES:
        raise Unsupported(f"engine: {p.engine!r} is not one the kernel database measures")
    gpu = gpu_files().get(p.system)
    if gpu is None:
        raise Unsupported(f"GPU: no GPU file for {p.system}")
    if p.concurrency is None:
        raise Unsupported("workload: the row records no concurrency")
    model = model_spec(p.model_path)
    if p.recipe is not None and p.recipe.spec_decoding == AMBIGUOUS:
        raise Unsupported(f"speculative decoding: InferenceX's recipes that fit the run ({p.recipe.recipe}) ran it "
                          "both with MTP and without: which ran cannot be told")
    if p.recipe is not None and p.recipe.spec_decoding != "none":
        raise Unsupported(f"speculative decoding: InferenceX's recipe {p.recipe.recipe} ran "
                          f"{p.recipe.spec_decoding.upper()}; how many drafts it accepted is not recorded, so its "
                          "TPOT cannot be replayed")
    moe = model.get("ffn") == "moe"
    par = parallelism_of(p.layout, p.unreadable, moe)
    pool = {"prefill_pool": prefill_pool_of(p, gpu, moe)} if p.mode == "disagg" else {}
    decoders = pool["prefill_pool"]["decode_instances"] if pool else 1
    inference = {
        "cluster": {"name": f"{gpu}-x{par['tp'] * par['dp']}", "gpu": gpu, **cluster_of(gpu, par)},
        "parallelism": par, **precision_of(p), **kv_cache_of(p), "max_running": -(-p.concurrency // (par["dp"] * decoders)), **pool,
        "engine": {"name": p.engine, "version": engine_version(p.system, p.engine, p.engine_version)},
        "workload": workload_of(p)}
    return yaml.safe_dump({"name": "check", "variants": [{"name": "point", "model": model, "inference": inference}]},
                          sort_keys=False)


# --------------------------------------------------------------------------------------------- runs


def layout_name(par: Parallelism) -> str:
    """e.g. TP8 DP1 EP1 ETP8: attention TP x DP, the experts' EP x expert TP."""
    return f"TP{par.tp} DP{par.dp} EP{par.ep}" + (f" ETP{par.etp}" if par.etp > 1 else "")


def latency_of(lat: LatencyStats, statistic: str) -> tuple[float, float | None]:
    """(TTFT, TPOT) in seconds, as the statistic the point measured: the means, or the p50s."""
    if statistic == "mean":
        return lat.ttft_mean_s, lat.tpot_mean_s
    return lat.ttft_p50_s, lat.tpot_p50_s


def check_point(p: MeasuredPoint) -> PointResult:
    """The point simulated (its workload run only), or skipped with the reason."""
    out = PointResult(p.id, p.split, {"gpu": p.system, "engine": p.engine, "mode": p.mode,
                                      "family": family_of(p.model_path)}, {"ttft_ms": p.ttft_ms, "tpot_ms": p.tpot_ms})
    try:
        study = study_from_text(scenario_text(p), BUNDLED_DIR / "check-serving.yaml")
        found = problems(study, ("inference",))
        if found:
            raise Unsupported(f"infeasible: {found[0].problem}")
        v = study.scenario.variants[0]
        inf = v.inference
        if inf.weight_bits == 4 and inf.cluster.gpu.compute_precision("fp4") != "fp4":
            raise Unsupported(f"precision: NVFP4 weights on {p.system}, which has no FP4 tensor cores (engines run "
                              "them there through weight-only kernels the planner does not model)")
        out.setup = {"engine_version": inf.engine.version, "weight_bits": inf.weight_bits,
                     "layout": layout_name(inf.parallelism)} | ({"recipe": p.recipe.recipe} if p.recipe else {})
        if p.layout_from_recipe:
            out.setup["layouts_from"] = "recipe"
        if inf.prefill_pool is not None:
            pool = inf.prefill_pool
            out.setup |= {"layout": f"{pool.decode_instances} x {out.setup['layout']}",
                          "prefill_layout": f"{pool.instances} x {layout_name(pool.parallelism)}"}
        r = run_serving("point", v.model, inf, base_dir=BUNDLED_DIR)
    except Unsupported as e:
        out.skipped = str(e)
        return out
    except PlannerError as e:  # a point that fails is that point's error; the others still run
        out.skipped = f"error: {e.problem}"
        return out
    if r.finished < r.requests:  # e.g. a prompt no prefill rank can hold: its TTFT is undefined
        out.skipped = f"error: {r.requests - r.finished} of {r.requests} requests never finished"
        return out
    ttft_s, tpot_s = latency_of(r.latency, p.client.statistic)
    out.predicted = {"ttft_ms": 1e3 * ttft_s, "tpot_ms": 1e3 * tpot_s if tpot_s else None,
                     "generation_tok_s": r.generation_throughput_tok_s}
    return out


def check_points(points: list[MeasuredPoint]) -> list[dict]:
    """A batch of points (one Dask task), as plain dicts."""
    return [asdict(check_point(p)) for p in points]


def select(points: list[MeasuredPoint], split: str, model: str | None, gpu: str | None) -> list[MeasuredPoint]:
    """The points of `split` whose model path matches the regex `model` and whose system is `gpu` (the
    database's name, h200_sxm, or a bundled GPU file's, h200)."""
    try:
        pattern = re.compile(model, re.IGNORECASE) if model else None
    except re.error as e:
        raise PlannerError(f"--model {model!r} is not a regular expression: {e}", field="--model",
                           fix="pass a Python regular expression, e.g. 'deepseek|kimi'") from e
    system = database_gpu(gpu) if gpu else None
    return [p for p in points if (split == "all" or p.split == split) and (pattern is None or pattern.search(p.model_path))
            and (system is None or p.system == system)]


def is_sample(path: Path) -> bool:
    """Whether `path` is the shipped silicon sample (by name, `aiconfigurator`, or its file's path)."""
    shipped = kernel_db.systems_dir() / "silicon_sample.csv"
    return str(path) == "aiconfigurator" or (Path(path).is_file() and Path(path).resolve() == shipped.resolve())


def default_split(path: Path) -> str:
    """`dev` for the shipped sample (its test quarter is for reporting only); `all` for a user's own
    measurements, whose ids carry no such meaning."""
    return "dev" if is_sample(path) else "all"


# ---------------------------------------------------------------------------------------- summary


def pct_error(predicted: float | None, measured: float) -> float | None:
    """Signed error of a prediction, in % of the measurement."""
    return None if predicted is None else 100 * (predicted - measured) / measured


def _stats(rows: list[dict]) -> dict:
    """Points, coverage, and the median / p90 of |error| and the signed median, for TTFT and TPOT."""
    done = [r for r in rows if r["predicted"] is not None]
    out = {"points": len(rows), "simulated": len(done), "coverage": len(done) / len(rows) if rows else 0.0}
    for metric in ("ttft", "tpot"):
        errs = [e for e in (pct_error(r["predicted"][f"{metric}_ms"], r["measured"][f"{metric}_ms"]) for r in done)
                if e is not None and math.isfinite(e)]
        out |= {f"{metric}_median_abs_pct_error": float(np.median(np.abs(errs))) if errs else None,
                f"{metric}_p90_abs_pct_error": float(np.percentile(np.abs(errs), 90)) if errs else None,
                f"{metric}_median_signed_pct_error": float(np.median(errs)) if errs else None}
    return out


def summarise(rows: list[dict]) -> dict:
    """The whole check's figures, per group (GPU x engine x mode x model family), and the skip reasons."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple(r["group"].values()), []).append(r)
    reasons: dict[str, int] = {}
    examples: dict[str, str] = {}  # a reason's first point, word for word: the numbers the key hides
    for r in rows:
        if r["skipped"]:
            key = reason_key(r["skipped"])
            reasons[key] = reasons.get(key, 0) + 1
            examples.setdefault(key, f"{r['id']}: {r['skipped']}")
    order = sorted(reasons, key=lambda k: -reasons[k])
    return {**_stats(rows),
            "groups": [{**dict(zip(("gpu", "engine", "mode", "family"), key, strict=True)), **_stats(g)}
                       for key, g in sorted(groups.items())],
            "skipped_reasons": {k: reasons[k] for k in order}, "skipped_examples": {k: examples[k] for k in order}}


def reason_key(reason: str) -> str:
    """A skip reason with its numbers as N, so that one cause counts once (names keep theirs: fp4, B300)."""
    return re.sub(r"(?<![\w#.])\d[\d.]*", "N", reason)[:160]


def read_input(path: Path) -> list[MeasuredPoint]:
    """The measured points of `path` (`aiconfigurator` names the shipped silicon sample; a .json or .jsonl
    is a vLLM or SGLang benchmark's result with its YAML sidecar, bench_results.py), each naming a GPU
    the kernel database knows and a model whose config can be found: else one error, before any runs."""
    source = kernel_db.systems_dir() / "silicon_sample.csv" if str(path) == "aiconfigurator" else Path(path)
    if source.suffix in (".yaml", ".yml"):
        raise PlannerError("a YAML file is a benchmark's sidecar, not its measurements", file=str(source),
                           fix="pass the benchmark's .json or .jsonl (the sidecar beside it is found by its name), "
                               "or a CSV of the silicon sample's columns")
    bench = source.suffix in BENCH_SUFFIXES
    points = read_bench(source) if bench else read_points(source)
    # a benchmark's GPU and model come from its sidecar: an error there names the sidecar's fields
    where, gpu_field, model_field = ((str(source.with_suffix(".yaml")), "gpu", "model") if bench
                                     else (str(source), "system", "model_path"))
    known = set(kernel_db.gpus())
    for p in points:
        if p.system not in known:
            raise PlannerError(f"point {p.id!r}: {gpu_field} {p.system!r} is not a GPU the kernel database knows",
                               file=where, field=gpu_field, fix=f"use one of: {', '.join(sorted(known))}")
    for model_path in sorted({p.model_path for p in points}):
        known_model(model_path, where, model_field)
    return points


def known_model(model_path: str, where: str, field_name: str = "model_path") -> None:
    """Raise unless `model_path` is a bundled model or has a shipped config (a refusal of its architecture
    is that row's skip reason, not an input error)."""
    if "/" not in model_path and (BUNDLED_DIR / "models" / f"{model_path}.yaml").is_file():
        return
    try:
        config_path(model_path)
    except Unsupported as e:
        raise PlannerError(f"{field_name} {model_path!r}: {str(e).removeprefix('model: ')}", file=where,
                           field=field_name, fix="use ORG/NAME of a config in aiconfigurator_core/model_configs/, "
                                                 "or a bundled model's name (scenarios/models/)") from e
