"""InferenceX's recipes (INFX in docs/sources.md) joined to the silicon sample's rows, for what a row does not
record itself: whether its run decoded speculatively (MTP), the KV cache dtype its launch script gave the
engine, and for a disaggregated run of InferenceX's exports, its workers' layouts and counts.

`scenarios/measured/inferencex-recipes.csv` (written by scripts/inferencex_recipes.py from the history of
InferenceX's nvidia-master.yaml) holds one row per recipe entry and concurrency: the engine image, GPU,
framework, precision, lengths, both workers' layouts and `spec_decoding`. A sample row joins the entries of
its image, GPU, engine, precision, lengths and concurrency whose layouts are its own (as far as the row records
them: InferenceX's exports record a disaggregated run's workers by their GPUs alone); the join answers only
when every such entry agrees.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache

from costmodel.inputs.loader import BUNDLED_DIR
from costmodel.inputs.reading import MAX_DATA_BYTES, read_text

RECIPES_CSV = BUNDLED_DIR / "measured" / "inferencex-recipes.csv"
COLUMNS = ("recipe", "model_prefix", "gpu", "framework", "precision", "image", "isl", "osl", "concurrency", "prefill_tp", "prefill_ep",
           "prefill_dp_attn", "prefill_workers", "decode_tp", "decode_ep", "decode_dp_attn", "decode_workers",
           "spec_decoding", "kv_cache_dtype", "source_commit", "from_date", "to_date")
# the sample's engines as InferenceX's frameworks (its disaggregated runs go through NVIDIA Dynamo)
FRAMEWORKS = {"trtllm": ("trt", "dynamo-trt"), "sglang": ("sglang", "dynamo-sglang"), "vllm": ("vllm", "dynamo-vllm")}
WorkerKey = tuple[int, int, bool]  # one worker's GPUs, expert EP, and whether attention runs data-parallel
# a worker as far as a row records it: its GPUs, and its EP and DP attention or None where not recorded
RowKey = tuple[int, int | None, bool | None]
# InferenceX's model prefixes as the sample's checkpoints name them (its DeepSeek-R1 rows from the database
# dump name DeepSeek-V3, the same architecture)
DEEPSEEK_R1 = ("deepseek-r1", "deepseek-v3")
MODELS = {"dsr1": DEEPSEEK_R1, "dsr1-fp8": DEEPSEEK_R1, "deepseek-r1-0528": DEEPSEEK_R1, "kimik2.5": ("kimi-k2.5",),
          "qwen3.5": ("qwen3.5",), "minimaxm2.5": ("minimax-m2.5",), "gptoss": ("gpt-oss",), "glm5": ("glm-5",)}
AMBIGUOUS = "ambiguous"  # the entries that fit a row disagree on its speculative decoding


@dataclass(frozen=True)
class RecipeMatch:
    """What the recipes that ran a row say: its speculative decoding (`none`, `mtp`, ..., or AMBIGUOUS when
    the entries that fit it disagree), and which recipes."""

    spec_decoding: str
    recipe: str
    source_commit: str
    workers: Workers | None = None  # a disaggregated run's workers, where every fitting entry gives the same
    kv_cache_dtype: str = ""  # its launch script's: fp8 | auto (the engine's default); "" unknown or disagreeing


@dataclass(frozen=True)
class Workers:
    """A disaggregated recipe's workers: each one's (GPUs, EP, DP attention), and how many of each ran."""

    prefill: WorkerKey
    decode: WorkerKey
    counts: tuple[int, int]  # (prefill, decode)


def image_of(source: str) -> str:
    """The engine image a row's `silicon_data_source` names, in `nvcr.io/...` spelling, or ""."""
    found = re.search(r"image=([^;]+)", source) or re.search(r"((?:nvcr\.io|lmsysorg|vllm)[/#][^;\s:]+:[^;\s]+)",
                                                             source)
    return found.group(1).strip().replace("#", "/") if found else ""


def worker_key(tp: str, ep: str, dp_attn: str) -> WorkerKey | None:
    """A recipe worker's (GPUs, EP, DP attention): InferenceX's `tp` is the worker's GPUs either way."""
    return (int(tp), int(ep or 1), dp_attn == "true") if tp else None


@cache
def recipe_index() -> dict[tuple, list[dict]]:
    """The bundled recipes by (image, ISL, OSL, concurrency)."""
    out: dict[tuple, list[dict]] = {}
    for row in csv.DictReader(io.StringIO(read_text(RECIPES_CSV, MAX_DATA_BYTES))):
        key = (row["image"], int(row["isl"]), int(row["osl"]), int(row["concurrency"]))
        out.setdefault(key, []).append(row)
    return out


def fits(recipe: WorkerKey | None, row: RowKey | None) -> bool:
    """Whether a recipe's worker is the row's, in every field the row records (an aggregated run has no
    prefill worker on either side)."""
    if recipe is None or row is None:
        return recipe is None and row is None
    return all(mine is None or mine == theirs for theirs, mine in zip(recipe, row, strict=True))


def recipe_workers(row: dict) -> Workers | None:
    """A recipe row's disaggregated workers, or None for an aggregated one."""
    prefill = worker_key(row["prefill_tp"], row["prefill_ep"], row["prefill_dp_attn"])
    decode = worker_key(row["decode_tp"], row["decode_ep"], row["decode_dp_attn"])
    if prefill is None or decode is None:
        return None
    return Workers(prefill, decode, (int(row["prefill_workers"]), int(row["decode_workers"])))


def matches(row: dict, model_path: str, system: str, engine: str, precision: str, decode: RowKey | None,
            prefill: RowKey | None) -> bool:
    """Whether one recipe row is the sample row's run: its model, GPU (the database's `b200_sxm` is the
    runner's `b200`), framework, precision and both layouts."""
    names = MODELS.get(row["model_prefix"].lower(), ())
    return (any(n in model_path.lower() for n in names) and system.split("_")[0] == row["gpu"]
            and row["framework"] in FRAMEWORKS.get(engine, ())
            and (not precision or row["precision"] == precision)
            and fits(worker_key(row["decode_tp"], row["decode_ep"], row["decode_dp_attn"]), decode)
            and fits(worker_key(row["prefill_tp"], row["prefill_ep"], row["prefill_dp_attn"]), prefill))


def measured_date(source: str) -> str:
    """The day a row's `silicon_data_source` says it was measured (`measured=2026-02-05...`), or ""."""
    found = re.search(r"measured=(\d{4}-\d{2}-\d{2})", source)
    return found.group(1) if found else ""


def recipe_of(image: str, model_path: str, system: str, engine: str, precision: str,
              lengths: tuple[int, int, int | None], decode: RowKey | None,
              prefill: RowKey | None = None, day: str = "") -> RecipeMatch | None:
    """The recipes that ran a row of `model_path` and `image` on `system` under `engine` at (ISL, OSL,
    concurrency) with these layouts, those in force on the day it was measured where any was (a sweep may
    run from a branch before its recipe lands): their speculative decoding where they agree, AMBIGUOUS
    where they do not, and their disaggregated workers where they agree; None when none fits."""
    if not image or decode is None or lengths[2] is None:
        return None
    found = [r for r in recipe_index().get((image, *lengths), [])
             if matches(r, model_path, system, engine, precision, decode, prefill)]
    found = [r for r in found if r["from_date"] <= day <= r["to_date"]] or found
    if not found:
        return None
    specs = sorted({r["spec_decoding"] for r in found})
    names = ", ".join(sorted({r["recipe"] for r in found}))
    workers, kv = {recipe_workers(r) for r in found}, {r["kv_cache_dtype"] for r in found}
    return RecipeMatch(specs[0] if len(specs) == 1 else AMBIGUOUS, names, found[-1]["source_commit"],
                       workers.pop() if len(workers) == 1 else None, kv.pop() if len(kv) == 1 else "")
