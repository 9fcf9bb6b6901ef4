"""NVIDIA's measured kernel database, `aiconfigurator-core` (AIC in docs/sources.md), read as tables.

The package installs parquet tables of measured kernel latencies under
`aiconfigurator_core/systems/data/<gpu>/<op family>/<engine>/<version>/`, one `collection_meta.yaml` per
version folder, and `systems/query_versions.yaml` naming each engine's current version per GPU. That
layout is the contract this module reads with pyarrow; the package's Python API is never imported (it
would load its compiled extension for no use). `TABLES` lists every table and column the planner reads;
a test opens each one, so a layout change in a new release fails with the path and the column.

A table missing from a version's folder is read from the newest older version that has it (the
database's own backward-fill rule, stated in query_versions.yaml: never from a newer one); the version
actually read is reported with every table.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pyarrow.parquet as pq  # 0.45 s to import here: every command that may import a profile pays it
import yaml
from packaging.version import InvalidVersion, Version

from costmodel.inputs.errors import PlannerError

DB_PACKAGE = "aiconfigurator-core"
DB_VERSION = "0.12.0"  # pinned in pyproject.toml; the layout below was read from this release
ENGINES = ("sglang", "vllm", "trtllm")


@dataclass(frozen=True)
class TableKind:
    """One kind of table: its op-family folder, its file name, and the columns the planner reads."""

    family: str
    file: str
    columns: tuple[str, ...]
    engine: str | None = None  # tables kept under one engine's folder whatever the serving engine
    optional: tuple[str, ...] = ()  # read where the table has them


_MOE_COLUMNS = ("moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size",
                "moe_ep_size", "distribution", "latency")
TABLES: dict[str, TableKind] = {
    "gemm": TableKind("gemm", "gemm_perf.parquet", ("gemm_dtype", "m", "n", "k", "latency")),
    # kernel_source: which implementation a row timed; one table may hold several at one shape (kernel_import)
    "moe": TableKind("moe", "moe_perf.parquet", _MOE_COLUMNS, optional=("kernel_source",)),
    # SGLang's expert kernels behind DeepEP (DeepGEMM grouped GEMMs): masked for decode, contiguous for prefill
    "moe_deepep_masked": TableKind("moe", "wideep_generation_moe_perf.parquet", _MOE_COLUMNS,
                                   optional=("kernel_source",)),
    "moe_deepep_contiguous": TableKind("moe", "wideep_context_moe_perf.parquet", _MOE_COLUMNS,
                                       optional=("kernel_source",)),
    "mla_context": TableKind("mla", "context_mla_perf.parquet", ("mla_dtype", "kv_cache_dtype", "num_heads",
                                                                  "batch_size", "isl", "latency")),
    "mla_generation": TableKind("mla", "generation_mla_perf.parquet", ("mla_dtype", "kv_cache_dtype", "num_heads",
                                                                        "batch_size", "step", "latency")),
    "mla_bmm": TableKind("mla_bmm", "mla_bmm_perf.parquet", ("op_name", "bmm_dtype", "num_tokens", "num_heads",
                                                              "latency")),
    "all_reduce": TableKind("comm", "custom_allreduce_perf.parquet", ("allreduce_dtype", "num_gpus", "message_size",
                                                                       "latency"), optional=("backend",)),
    # DeepEP's kernels are measured under SGLang's folder only; every engine that runs them calls the same library.
    "deepep_ll": TableKind("comm", "wideep_deepep_ll_perf.parquet", ("node_num", "hidden_size", "num_token",
                                                                      "num_topk", "num_experts", "dispatch_avg_t_us",
                                                                      "combine_avg_t_us"), engine="sglang"),
    "deepep_normal": TableKind("comm", "wideep_deepep_normal_perf.parquet", (
        "node_num", "hidden_size", "num_token", "num_topk", "num_experts", "dispatch_sms", "dispatch_transmit_us",
        "combine_sms", "combine_transmit_us"), engine="sglang"),
}
FIX_INSTALL = f"run `make` (it installs {DB_PACKAGE}=={DB_VERSION}), or `pip install {DB_PACKAGE}=={DB_VERSION}`"


@dataclass(frozen=True)
class Table:
    """One table found for (gpu, engine, version): where it lies and the version folder it came from."""

    kind: str
    path: Path
    version: str
    collected_at: str  # the table's date in collection_meta.yaml, or "not recorded"

    def read(self) -> dict[str, list]:
        """The planner's columns of this table, as lists (pyarrow; no pandas)."""
        tk = TABLES[self.kind]
        present = set(pq.read_schema(self.path).names)
        return pq.read_table(self.path, columns=[*tk.columns, *(c for c in tk.optional if c in present)]).to_pydict()


@cache
def systems_dir() -> Path:
    """The installed database's `systems/` folder, found without importing the package."""
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        raise PlannerError(f"the kernel database ({DB_PACKAGE}) is not installed", fix=FIX_INSTALL)
    return Path(next(iter(spec.submodule_search_locations))) / "systems"


@cache
def node_gpus(gpu: str) -> int:
    """GPUs of one node as the database measured `gpu` (its system file's num_gpus_per_node: 8 for HGX, 4
    for a GB200 / GB300 compute tray)."""
    system = yaml.safe_load((systems_dir() / f"{gpu}.yaml").read_text()) or {}
    return int((system.get("node") or {}).get("num_gpus_per_node", 8))


def gpus() -> list[str]:
    """The GPUs the database has measurements for (folder names, e.g. h200_sxm)."""
    return sorted(p.name for p in (systems_dir() / "data").iterdir() if p.is_dir())


def gpus_measuring(engine: str) -> list[str]:
    """The database GPUs holding any of `engine`'s measurements."""
    return [g for g in gpus() if engine_versions(g, engine)]


def engine_versions(gpu: str, engine: str) -> list[str]:
    """Every version folder of `engine` on `gpu`, in any op family, oldest first."""
    root = systems_dir() / "data" / gpu
    found = {v.name for fam in root.iterdir() if (fam / engine).is_dir() for v in (fam / engine).iterdir() if v.is_dir()}
    return sorted(found, key=version_key)


def measured_versions(gpu: str, engine: str) -> list[str]:
    """The version folders of `engine` on `gpu` that hold a table the planner reads, oldest first."""
    root = systems_dir() / "data" / gpu
    found = {v.name for tk in TABLES.values() if tk.engine in (None, engine) and (root / tk.family / engine).is_dir()
             for v in (root / tk.family / engine).iterdir() if (v / tk.file).is_file()}
    return sorted(found, key=version_key)


def version_key(text: str) -> tuple:
    try:
        return (0, Version(text))
    except InvalidVersion:
        return (1, text)


@cache
def _query_versions() -> dict:
    return yaml.safe_load((systems_dir() / "query_versions.yaml").read_text())


def current_version(gpu: str, engine: str) -> str | None:
    """The version the database names `current` for (gpu, engine): its per-GPU override, else the default."""
    qv = _query_versions()
    slot = (qv.get("overrides") or {}).get(gpu, {}).get(engine) or (qv.get("defaults") or {}).get(engine) or {}
    return slot.get("current")


def resolve(gpu: str, engine: str, version: str = "current") -> str:
    """The exact version meant by `version` (an alias `current`, or a folder name), or one error that lists
    what the database has."""
    if gpu not in gpus():
        raise PlannerError(f"the kernel database has no GPU {gpu!r}", field="--gpu",
                           fix=f"use one of: {', '.join(gpus())}")
    if engine not in ENGINES:
        raise PlannerError(f"the kernel database has no engine {engine!r}", field="--engine",
                           fix=f"use one of: {', '.join(ENGINES)}")
    have = engine_versions(gpu, engine)
    if not have:
        raise PlannerError(f"the kernel database has no {engine} measurements on {gpu}", field="--gpu",
                           fix=f"use a GPU it measured {engine} on: {', '.join(gpus_measuring(engine))}")
    exact = current_version(gpu, engine) if version == "current" else version
    if exact not in have:
        raise PlannerError(f"the kernel database has no {engine} version {version!r} on {gpu}", field="--version",
                           fix=f"use current (the database's choice: {current_version(gpu, engine)}) or one of: "
                               f"{', '.join(have)}")
    return exact


def find_table(gpu: str, engine: str, version: str, kind: str) -> Table | None:
    """The table `kind` for (gpu, engine, version): from that version's folder, else backward-filled from
    the newest older version that holds it, else the oldest that holds it (find_tables); None when no
    version holds it."""
    found = find_tables(gpu, engine, version, kind)
    return found[0] if found else None


def find_tables(gpu: str, engine: str, version: str, kind: str) -> list[Table]:
    """Every version of table `kind` usable for (gpu, engine, version), newest first: the same
    backward-fill rule as find_table, kept whole for readers that fill a shape the newest one lacks
    (DeepEP's multi-node rows were measured in an older SGLang release only). A version older than every
    one that holds the table reads the oldest that does: the measurement nearest it in time (vLLM 0.19's
    folder holds experts and all-reduce only; its GEMMs are 0.24's)."""
    tk = TABLES[kind]
    folder = systems_dir() / "data" / gpu / tk.family / (tk.engine or engine)
    if not folder.is_dir():
        return []
    own = tk.engine in (None, engine)
    limit = version_key(version) if own else None  # another engine's folder: its newest
    versions = sorted((v.name for v in folder.iterdir() if (v / tk.file).is_file()), key=version_key)
    usable = [v for v in versions if limit is None or version_key(v) <= limit] or versions[:1]
    return [Table(kind, folder / v / tk.file, v, _collected_at(folder / v, tk.file)) for v in reversed(usable)]


def _collected_at(folder: Path, file: str) -> str:
    """The table's collection date from its folder's collection_meta.yaml, when the file records one."""
    meta_path = folder / "collection_meta.yaml"
    meta = yaml.safe_load(meta_path.read_text()) if meta_path.is_file() else None
    if not isinstance(meta, dict):
        return "not recorded"
    table = (meta.get("tables") or {}).get(file.removesuffix(".parquet")) or {}
    found = table.get("collected_at") or meta.get("collected_at")
    return str(found) if found else "not recorded"
