"""`planner import-profile aiconfigurator`: the kernel database's measured rows a model needs, written as
a profile CSV in the project's own format (the one contract between measurements and the cost model).

Which rows: every GEMM width the model's layers call (kernels.py's decomposition, at each tensor-parallel
degree that splits its heads), with the database's grid widths on either side of each (the timing model
interpolates between them); the routed-expert rows of the model's expert widths under the balanced
distribution (the planner's own routing model supplies the imbalance); MLA prefill, decode and absorbed
matmul rows at the model's heads per GPU when its MLA widths are the database's; custom all-reduce under
CUDA graphs; DeepEP's kernels at the model's hidden size, top-k and experts. No row is invented, none is
changed but for its units (milliseconds and microseconds to seconds).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from costmodel.counts import deepep
from costmodel.counts.comm import Link
from costmodel.counts.deepep import DEEPEP_SMS
from costmodel.counts.kernels import DB_MLA, KernelPlan
from costmodel.counts.opcounts import attention_shape
from costmodel.inputs import kernel_db
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.kernel_db import Table
from costmodel.inputs.loader import BUNDLED_DIR, load_spec, model_on_command_line, named_on_command_line
from costmodel.inputs.profiles import COLUMNS, load_profile
from costmodel.inputs.specs import EngineSpec, GPUSpec, InferenceSpec, ModelSpec, TrainingSpec
from costmodel.timing.operators import MeasuredBackend

TP_SIZES = (1, 2, 4, 8, 16, 32, 64)
# Bumped whenever the rows an import selects change, so a cached import from an older planner is made anew.
IMPORT_REVISION = 4
# The GEMM precisions a training run is timed at (train_costs.training_kernel_plan): block-scaled FP8 and BF16.
TRAINING_GEMM_DTYPES = {"fp8_block", "bfloat16"}


@dataclass
class Imported:
    """The profile being assembled: its header lines (what each table gave among them) and its rows."""

    header: dict[str, str]
    training: bool = False  # also the backward's GEMM widths
    rows: list[list] = field(default_factory=list)
    duplicates: int = 0


def import_profile(gpu: str, engine: str, version: str, m: ModelSpec, purpose: str = "serving") -> Imported:
    """The profile of `m`'s kernels on (gpu, engine, version) from the kernel database; for `training`,
    the GEMM rows its backward reads too (kernels.py: the transposes, and every reduction length)."""
    exact = kernel_db.resolve(gpu, engine, version)
    out = Imported({**_header(gpu, engine, exact, m), "purpose": purpose}, training=purpose == "training")
    for kind in kernel_db.TABLES:
        tables = kernel_db.find_tables(gpu, engine, exact, kind)
        if not tables:
            out.header[f"table_{kind}"] = "not in the database for this GPU and engine"
        elif kind in _FILLED_BY_NODES:
            out.header[f"table_{kind}"] = _deepep_fill(tables, m, out)
        else:
            before = len(out.rows)
            _ROWS[kind](tables[0], m, out)
            out.header[f"table_{kind}"] = _table_line(tables[0], len(out.rows) - before)
    out.header["duplicate_rows_dropped"] = str(out.duplicates)
    return out


def _table_line(table: Table, rows: int) -> str:
    return (f"{table.path.relative_to(kernel_db.systems_dir())} (version {table.version}, "
            f"collected_at {table.collected_at}, {rows} rows)")


def _header(gpu: str, engine: str, version: str, m: ModelSpec) -> dict[str, str]:
    system = yaml.safe_load((kernel_db.systems_dir() / f"{gpu}.yaml").read_text())["gpu"]
    return {"format": "moe-planner profile v2", "device": "cuda", "device_name": gpu, "dtype": "bfloat16",
            "source": f"{kernel_db.DB_PACKAGE}=={kernel_db.DB_VERSION} kernel database (AIC)",
            "interpolation": "between adjacent points",  # kernel measurements: no pooling (operators.py)
            "gpu": gpu, "engine": engine, "engine_version": version, "model": m.name,
            "import_revision": str(IMPORT_REVISION),  # which rows this planner's import selects
            # the database's own system file: dense BF16 tensor-core peak and HBM bandwidth
            "peak_matmul_flops_per_s": str(float(system["bfloat16_tc_flops"])),
            "peak_copy_bytes_per_s": str(float(system["mem_bw"]))}


def _add(out: Imported, seen: set, op: str, dtype: str, shape: dict, seconds: float) -> None:
    """One measured row; a second row of the same kernel, dtype and shape is dropped (and counted)."""
    shape = {**shape, "dtype": dtype}  # a shape key too: one curve per precision (the timing model's key)
    key = (op, tuple(sorted(shape.items())))
    if key in seen:
        out.duplicates += 1
        return
    seen.add(key)
    out.rows.append([op, "fwd", dtype, json.dumps(shape, sort_keys=True), f"{seconds:.6e}", "", "", "", "", "ok", ""])


def _select(cols: dict[str, list], keep) -> list[int]:
    n = len(next(iter(cols.values())))
    return [i for i in range(n) if keep(i)]


# ------------------------------------------------------------------------------------------ GEMMs


def gemm_widths(m: ModelSpec) -> set[tuple[int, int]]:
    """(n, k) of every GEMM the serving model calls for `m`, at each TP degree that splits its heads."""
    plan = KernelPlan("x", "x", "x", "x", "x", ep=1, n_experts=m.n_routed_experts or 1)
    widths = set()
    for tp in (t for t in TP_SIZES if m.num_attention_heads % t == 0):
        calls = [plan.layer("gemm", {"m": 1, "n": m.vocab_size // tp, "k": m.hidden_size})]
        for mode in ("absorbed", "naive"):
            calls.append(plan.layer(*attention_shape(m, tp, 1, 1, 1, mode)) if m.attention == "mla" else [])
        for inter in (m.intermediate_size or 0, m.shared_ffn_width):
            if inter and inter % tp == 0:
                calls.append(plan.layer("ffn", {"tokens": 1, "hidden": m.hidden_size, "inter": inter // tp}))
        if m.ffn == "moe":
            calls.append([plan.gemm(1, m.n_routed_experts, m.hidden_size)])
        widths |= {(s["n"], s["k"]) for call in calls for op, s in call if op == "gemm"}
    return widths


def _bracket(value: int, grid: list[int]) -> list[int]:
    """The grid's value itself, or its neighbours on either side (none when outside the grid)."""
    if value in grid:
        return [value]
    below, above = [g for g in grid if g < value], [g for g in grid if g > value]
    return [below[-1], above[0]] if below and above else []


def _gemm_rows(table: Table, m: ModelSpec, out: Imported) -> None:
    cols, seen = table.read(), set()
    ns, ks = sorted(set(cols["n"])), sorted(set(cols["k"]))
    widths = gemm_widths(m)
    if out.training:  # dX is (m, k, n); dW is (k, n, m) with the tokens as its reduction: every k of the grid
        widths |= {(k, n) for n, k in widths} | {(n, k) for n, _ in widths for k in ks}
    wanted = {(n, k) for wn, wk in widths for n in _bracket(wn, ns) for k in _bracket(wk, ks)}
    dtypes = TRAINING_GEMM_DTYPES if out.training else set(cols["gemm_dtype"])
    for i in _select(cols, lambda i: (cols["n"][i], cols["k"][i]) in wanted and cols["gemm_dtype"][i] in dtypes):
        _add(out, seen, "gemm", cols["gemm_dtype"][i], {"m": cols["m"][i], "n": cols["n"][i], "k": cols["k"][i]},
             cols["latency"][i] / 1e3)


# ------------------------------------------------------------------------------------- experts


# Expert kernels a table times beside the engine's default one, at the same shapes (AIC, TRTARGS in
# docs/sources.md). Kept, they would be read in table order: a curve could switch kernel from one layout
# to the next (TensorRT-LLM's NVFP4 tables: 4x apart at 8 tokens).
SKIPPED_MOE_KERNELS = {
    # the CUTLASS MoE's min-latency mode (the collector's cutlass_min_latency_mode=True): TensorRT-LLM's
    # DeepSeek-V3 decoder layer no longer enters it, and its CUTLASS MoE marks the mode "not used anymore"
    "moe_torch_flow_min_latency": "TensorRT-LLM's CUTLASS min-latency mode, which its models no longer call",
    # experts without a gate (up, activation, down): every MoE the planner models is gated (SwiGLU)
    "moe_torch_flow_nongated": "non-gated experts; the planner's experts are gated (SwiGLU)",
}


def _kernel_header(out: Imported, kind: str, kept: set[str], shaped: set[str]) -> None:
    """Which expert kernels a profile holds, and which it left out and why."""
    out.header[f"{kind}_kernels"] = ", ".join(sorted(kept)) or "none"
    for name in sorted(shaped & SKIPPED_MOE_KERNELS.keys()):
        out.header[f"{kind}_skipped_{name}"] = SKIPPED_MOE_KERNELS[name]


def _moe_rows(table: Table, m: ModelSpec, out: Imported) -> None:
    if m.ffn != "moe":
        return
    cols, seen = table.read(), set()
    kernel = table.kind.removeprefix("moe_") if table.kind != "moe" else "fused"
    # both kinds of table count `num_tokens` over the whole EP group: SGLang's fused kernel runs on the
    # tokens gathered from every attention-DP rank; DeepEP-fed kernels at EP64 start at 64 tokens, one a rank
    match = {"hidden_size": m.hidden_size, "inter_size": m.moe_intermediate_size, "topk": m.num_experts_per_tok,
             "num_experts": m.n_routed_experts, "distribution": "balanced" if kernel == "fused" else "uniform"}
    sources = [s or "not recorded" for s in cols.get("kernel_source") or [None] * len(cols["latency"])]
    shaped = _select(cols, lambda i: all(cols[c][i] == v for c, v in match.items()))
    kept = [i for i in shaped if sources[i] not in SKIPPED_MOE_KERNELS]
    _kernel_header(out, table.kind, {sources[i] for i in kept}, {sources[i] for i in shaped})
    for i in kept:
        shape = {"tokens": cols["num_tokens"][i], "hidden": m.hidden_size, "inter": m.moe_intermediate_size,
                 "top_k": m.num_experts_per_tok, "experts": m.n_routed_experts, "ep": cols["moe_ep_size"][i],
                 "tp": cols["moe_tp_size"][i], "kernel": kernel}
        _add(out, seen, "moe_experts", cols["moe_dtype"][i], shape, cols["latency"][i] / 1e3)


# ------------------------------------------------------------------------------------------ MLA


def has_db_mla(m: ModelSpec) -> bool:
    """Whether `m`'s MLA has the widths the database's MLA tables were measured at (DB_MLA)."""
    return m.attention == "mla" and (m.kv_lora_rank, m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim) == \
        (DB_MLA["kv_lora"], DB_MLA["nope"], DB_MLA["rope"], DB_MLA["v"])


def _heads_per_gpu(m: ModelSpec) -> set[int]:
    return {m.num_attention_heads // t for t in TP_SIZES if m.num_attention_heads % t == 0}


def _mla_rows(table: Table, m: ModelSpec, out: Imported) -> None:
    if not has_db_mla(m):
        return
    cols, seen, heads = table.read(), set(), _heads_per_gpu(m)
    decode = table.kind == "mla_generation"
    for i in _select(cols, lambda i: cols["num_heads"][i] in heads):
        # decode rows: one new token (isl 1) after `step` earlier ones, so the cache holds step + 1 tokens
        size = {"ctx": cols["step"][i] + 1} if decode else {"isl": cols["isl"][i]}
        shape = {"b": cols["batch_size"][i], "heads": cols["num_heads"][i], "kv_dtype": cols["kv_cache_dtype"][i], **size}
        _add(out, seen, table.kind, cols["mla_dtype"][i], shape, cols["latency"][i] / 1e3)


def _bmm_rows(table: Table, m: ModelSpec, out: Imported) -> None:
    if not has_db_mla(m):
        return
    cols, seen, heads = table.read(), set(), _heads_per_gpu(m)
    for i in _select(cols, lambda i: cols["num_heads"][i] in heads):
        stage = "pre" if cols["op_name"][i].endswith("pre") else "post"
        shape = {"tokens": cols["num_tokens"][i], "heads": cols["num_heads"][i], "stage": stage}
        _add(out, seen, "mla_bmm", cols["bmm_dtype"][i], shape, cols["latency"][i] / 1e3)


# ---------------------------------------------------------------------------------- collectives


def _all_reduce_rows(table: Table, m: ModelSpec, out: Imported) -> None:
    """Custom all-reduce as it runs inside CUDA graphs (the `*_graph` rows where the table has a backend
    column): decode iterations are graph-captured on SGLang and vLLM. `message_size` counts BF16 elements:
    read as elements, NCCL's 8-GPU all-reduce of 2^28 of them on H200 moves 460 GB/s of bus bandwidth, what
    NVLink 4 with NVLS reaches; read as bytes it would be 230 GB/s."""
    cols, seen = table.read(), set()
    backend = cols.get("backend")
    graph = backend is not None and any(str(b).endswith("graph") for b in backend)
    for i in _select(cols, lambda i: not graph or str(backend[i]).endswith("graph")):
        shape = {"elements": cols["message_size"][i], "gpus": cols["num_gpus"][i]}
        _add(out, seen, "all_reduce", cols["allreduce_dtype"][i], shape, cols["latency"][i] / 1e3)


def _deepep_fill(tables: list[Table], m: ModelSpec, out: Imported) -> str:
    """DeepEP's rows from the newest version measured at each node count: SGLang 0.5.12's tables hold one
    node only, 0.5.6.post2's hold 1-8 nodes (at DeepSeek-V3's widths), so a node count the newest release
    lacks is read from the newest older one that has it (the database's backward-fill rule, applied per
    node count). The header names each version read and the node counts it gave."""
    done: set[int] = set()
    parts = []
    for table in tables:
        before = len(out.rows)
        nodes = _deepep_rows(table, m, out, skip_nodes=frozenset(done))
        if nodes:
            parts.append(f"{_table_line(table, len(out.rows) - before)} for nodes {', '.join(map(str, sorted(nodes)))}")
        done |= nodes
    return "; ".join(parts) or f"{_table_line(tables[0], 0)}"


def _deepep_rows(table: Table, m: ModelSpec, out: Imported, skip_nodes: frozenset = frozenset()) -> set[int]:
    """The table's rows at the model's widths on node counts not in `skip_nodes`; returns the node counts read."""
    if m.ffn != "moe":
        return set()
    cols, seen = table.read(), set()
    normal = table.kind == "deepep_normal"
    match = {"hidden_size": m.hidden_size, "num_topk": m.num_experts_per_tok, "num_experts": m.n_routed_experts}
    if normal:
        match |= {"dispatch_sms": DEEPEP_SMS, "combine_sms": DEEPEP_SMS}
    rows = _select(cols, lambda i: cols["node_num"][i] not in skip_nodes and all(cols[c][i] == v for c, v in match.items()))
    for i in rows:
        base = {"tokens": cols["num_token"][i], "hidden": m.hidden_size, "top_k": m.num_experts_per_tok,
                "experts": m.n_routed_experts, "nodes": cols["node_num"][i], **({"sms": DEEPEP_SMS} if normal else {})}
        for phase in ("dispatch", "combine"):
            us = cols[f"{phase}_transmit_us" if normal else f"{phase}_avg_t_us"][i]
            _add(out, seen, table.kind, "deepep", {**base, "phase": phase}, us / 1e6)
    return {int(cols["node_num"][i]) for i in rows}


def _ll_benchmark_rows(table: Table) -> dict[int, tuple[float, float]]:
    """node count -> (dispatch, combine) us of the table's rows at DeepEP's own benchmark shape."""
    cols, D = table.read(), deepep
    shape = {"hidden_size": D.HIDDEN, "num_topk": D.TOP_K, "num_experts": D.EXPERTS, "num_token": D.LL_TOKENS}
    rows = _select(cols, lambda i: all(cols[c][i] == v for c, v in shape.items()))
    return {int(cols["node_num"][i]): (cols["dispatch_avg_t_us"][i], cols["combine_avg_t_us"][i]) for i in rows}


def deepep_ll_check(gpu: GPUSpec, nvlink: Link, nic: Link) -> list[dict]:
    """DeepEP's low-latency benchmark call as the kernel database measured it on this part (each node
    count from the newest SGLang release that holds it, the import's rule), beside the link model on the
    database's own layout: its nodes of `node_gpus` GPUs. Empty where the part names no database or the
    database holds no SGLang DeepEP rows for it."""
    db = gpu.kernel_database.gpu if gpu.kernel_database else None
    if db is None or db not in kernel_db.gpus() or not kernel_db.engine_versions(db, "sglang"):
        return []
    per_node, fixed, out = kernel_db.node_gpus(db), deepep.low_latency_fixed_s(nvlink, nic), []
    seen: dict[int, tuple] = {}
    for table in kernel_db.find_tables(db, "sglang", kernel_db.resolve(db, "sglang"), "deepep_ll"):
        for nodes, us in _ll_benchmark_rows(table).items():
            seen.setdefault(nodes, (*us, table.version))
    for nodes, (dispatch_us, combine_us, version) in sorted(seen.items()):
        model = deepep.ll_benchmark_call(nodes * per_node, per_node, nvlink, nic, fixed)
        out.append({"database_gpu": db, "version": version, "nodes": nodes, "gpus_per_node": per_node,
                    "ep": nodes * per_node, "measured_dispatch_us": dispatch_us, "measured_combine_us": combine_us,
                    "predicted_dispatch_us": model["dispatch_us"], "predicted_combine_us": model["combine_us"]})
    return out


_FILLED_BY_NODES = ("deepep_ll", "deepep_normal")
_ROWS = {"gemm": _gemm_rows, "moe": _moe_rows, "moe_deepep_masked": _moe_rows, "moe_deepep_contiguous": _moe_rows,
         "mla_context": _mla_rows, "mla_generation": _mla_rows, "mla_bmm": _bmm_rows, "all_reduce": _all_reduce_rows}


def render_csv(imp: Imported) -> str:
    buf = io.StringIO()
    buf.write("".join(f"# {k}: {v}\n" for k, v in imp.header.items()))
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(imp.rows)
    return buf.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary name beside `path`, then move it into place: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@cache
def bundled_database_gpus() -> dict[str, dict]:
    """Bundled GPU file -> its `kernel_database` mapping (gpu, source), for the files that name one."""
    out = {}
    for path in sorted((BUNDLED_DIR / "gpus").glob("*.yaml")):
        db = (yaml.safe_load(path.read_text()) or {}).get("kernel_database") or {}
        if db.get("gpu"):
            out[path.stem] = db
    return out


def database_gpu(name: str) -> str:
    """The database GPU meant by `name`: a database folder (h200_sxm), or a GPU file (h200) that names one."""
    if name in kernel_db.gpus():
        return name
    path = named_on_command_line("gpu", name)
    if path is None:
        raise PlannerError(f"no GPU named {name!r} in scenarios/gpus or the kernel database", field="--gpu",
                           fix=f"use one of: {', '.join(sorted(kernel_db.gpus()))} (or a GPU file's name: "
                               f"{', '.join(bundled_database_gpus())})")
    gpu = load_spec("gpu", path)
    if gpu.kernel_database is None:
        raise PlannerError("the GPU file names no `kernel_database` GPU", file=str(path), field="kernel_database",
                           fix=f"add `kernel_database: {{gpu: ..., source: ...}}` with one of: {', '.join(kernel_db.gpus())}")
    return gpu.kernel_database.gpu


def import_to_file(gpu_name: str, engine: str, version: str, model_name: str, out: Path | None,
                   purpose: str = "serving") -> tuple[Path, int]:
    """`planner import-profile aiconfigurator`: the profile, moved into place once written whole."""
    gpu, m = database_gpu(gpu_name), model_on_command_line(model_name)
    imp = import_profile(gpu, engine, version, m, purpose)
    tail = "-training" if purpose == "training" else ""
    out = out or Path("profiles") / f"aic-{gpu}-{engine}-{imp.header['engine_version']}-{m.name}{tail}.csv"
    write_atomically(out, render_csv(imp))
    return out, len(imp.rows)


# ------------------------------------------------------------------------ profiles of a scenario

CACHE_DIR = Path(__file__).resolve().parents[2] / "profiles" / "cache"  # git-ignored: imported on first use


def cached_profile_path(m: ModelSpec, gpu: str, engine: str, version: str, purpose: str = "serving") -> Path:
    """Where the import for (gpu, engine, version, model, purpose) is kept; the model's widths are in the
    name, so an edited model file is imported afresh."""
    digest = hashlib.sha1(m.model_dump_json().encode()).hexdigest()[:8]
    tail = "-training" if purpose == "training" else ""
    return CACHE_DIR / f"aic-{kernel_db.DB_VERSION}-r{IMPORT_REVISION}-{gpu}-{engine}-{version}-{m.name}-{digest}{tail}.csv"


def scenario_profile_path(m: ModelSpec, inf: InferenceSpec, base_dir: Path | None) -> Path | None:
    """The kernel profile an instance is timed with: its `profile:` file, else its engine's import on its
    GPU (made now when not cached), else None (the roofline)."""
    if inf.profile is not None:
        return (base_dir or Path.cwd()) / inf.profile
    return database_profile_path(m, inf.cluster.gpu, inf.engine)


def database_profile_path(m: ModelSpec, gpu: GPUSpec, engine: EngineSpec | None, purpose: str = "serving") -> Path | None:
    """The cached import of `m`'s kernels measured under `engine` on `gpu` (made now when not cached), or
    None when there is no engine or the database does not cover the GPU."""
    db = gpu.kernel_database
    if engine is None or db is None:
        return None
    version = kernel_db.resolve(db.gpu, engine.name, engine.version)
    path = cached_profile_path(m, db.gpu, engine.name, version, purpose)
    if not path.exists():
        write_atomically(path, render_csv(import_profile(db.gpu, engine.name, version, m, purpose)))
    return path


def measured_backend(m: ModelSpec, inf: InferenceSpec, base_dir: Path | None = None) -> MeasuredBackend | None:
    """The measured kernels an instance is timed with (built once per profile file and process)."""
    path = scenario_profile_path(m, inf, base_dir)
    return None if path is None else _backend(str(path), _mtime_ns(path))


def training_backend(m: ModelSpec, t: TrainingSpec) -> MeasuredBackend | None:
    """The database's measured kernels a training run's GEMMs are timed with, or None (the roofline)."""
    path = database_profile_path(m, t.cluster.gpu, t.kernel_database, "training")
    return None if path is None else _backend(str(path), _mtime_ns(path))


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0  # load_profile says the file is missing, with the fix


@cache
def _backend(path: str, mtime_ns: int) -> MeasuredBackend:
    return MeasuredBackend(load_profile(path))
