"""InferenceX's recipes (INFX in docs/sources.md) joined to the silicon sample's rows, for what a row does not
record itself: whether its run decoded speculatively (MTP).

`scenarios/measured/inferencex-recipes.csv` (written by scripts/inferencex_recipes.py from the history of
InferenceX's nvidia-master.yaml) holds one row per recipe entry and concurrency: the engine image, GPU,
framework, precision, lengths, both workers' layouts and `spec_decoding`. A sample row joins the entries of
its image, GPU, engine, precision, lengths and concurrency whose layouts are its own; the join answers only
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
COLUMNS = ("recipe", "gpu", "framework", "precision", "image", "isl", "osl", "concurrency", "prefill_tp", "prefill_ep",
           "prefill_dp_attn", "prefill_workers", "decode_tp", "decode_ep", "decode_dp_attn", "decode_workers",
           "spec_decoding", "source_commit")
# the sample's engines as InferenceX's frameworks (its disaggregated runs go through NVIDIA Dynamo)
FRAMEWORKS = {"trtllm": ("trt", "dynamo-trt"), "sglang": ("sglang", "dynamo-sglang"), "vllm": ("vllm", "dynamo-vllm")}
WorkerKey = tuple[int, int, bool]  # one worker's GPUs, expert EP, and whether attention runs data-parallel


@dataclass(frozen=True)
class RecipeMatch:
    """What the recipes that ran a row say: its speculative decoding (`none`, `mtp`, ...), and where."""

    spec_decoding: str
    recipe: str
    source_commit: str


def image_of(source: str) -> str:
    """The engine image a row's `silicon_data_source` names, in `nvcr.io/...` spelling, or ""."""
    found = re.search(r"image=([^;]+)", source) or re.search(r"((?:nvcr\.io|lmsysorg|vllm)[/#][^;\s]+)", source)
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


def matches(row: dict, system: str, engine: str, precision: str, decode: WorkerKey | None,
            prefill: WorkerKey | None) -> bool:
    """Whether one recipe row is the sample row's run: its GPU, framework, precision and both layouts."""
    return (system.startswith(row["gpu"]) and row["framework"] in FRAMEWORKS.get(engine, ())
            and (not precision or row["precision"] == precision)
            and worker_key(row["decode_tp"], row["decode_ep"], row["decode_dp_attn"]) == decode
            and worker_key(row["prefill_tp"], row["prefill_ep"], row["prefill_dp_attn"]) == prefill)


def recipe_of(image: str, system: str, engine: str, precision: str, lengths: tuple[int, int, int | None],
              decode: WorkerKey | None, prefill: WorkerKey | None = None) -> RecipeMatch | None:
    """The recipes that ran a row of `image` on `system` under `engine` at (ISL, OSL, concurrency) with these
    layouts, when they agree on its speculative decoding; None when none matches or they disagree."""
    if not image or decode is None or lengths[2] is None:
        return None
    found = [r for r in recipe_index().get((image, *lengths), [])
             if matches(r, system, engine, precision, decode, prefill)]
    if len({r["spec_decoding"] for r in found}) != 1:
        return None
    return RecipeMatch(found[-1]["spec_decoding"], found[-1]["recipe"], found[-1]["source_commit"])
