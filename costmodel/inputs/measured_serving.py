"""Measured serving points: one benchmark run each (engine, GPU, model, precision, layout, lengths,
concurrency) with its measured TTFT and TPOT, read from NVIDIA's public silicon sample
(`aiconfigurator_core/systems/silicon_sample.csv`, AICS in docs/sources.md) or a CSV of the same columns.

How its columns are read (and what a row must say, or it is listed as unreadable with the reason):
  - `tp_size` x `attention_dp_size` x `pp_size` GPUs run the attention (an empty or 0 DP is 1);
  - `moe_tp_size` x `moe_ep_size` must be the same GPUs for a MoE model (else the layout is contradictory);
  - the concurrency is the `silicon_concurrency=N` of `silicon_data_source`, else `batch_size`;
  - an aggregated InferenceX row on an HGX part whose GPUs are InferenceX's inflated count (its database
    records a one-node recipe of tp T, ep E as T x E GPUs: rows named tp8_ep8 carry `tp_size` 64, moe_tp 8,
    moe_ep 8) ran on T GPUs (`uninflated`);
  - a row whose `id` names a layout (`..._tp8_ep8_...`) whose tp is neither its `tp_size` nor its GPUs is
    unreadable: which ran cannot be told;
  - a disaggregated row (`mode` disagg) reads its `prefill_*` and `decode_*` layouts the same way and
    needs `prefill_num_workers` and `decode_num_workers` (rows without them are unreadable), except a row
    of InferenceX's exports, which records each worker's GPUs alone: its workers' layouts and counts are
    those of the InferenceX recipe of its image, lengths, concurrency and worker GPUs, where every recipe
    that fits agrees (recorded_in_part);
  - whether a row's run decoded speculatively (MTP) is read from the InferenceX recipe that ran it, where
    the recipes of its image, GPU, engine, precision, lengths, concurrency and layouts agree (recipes.py);
  - a row of InferenceX's database: `silicon_ttft_ms` and `silicon_tpot_ms` are means over the run's
    requests, measured by InferenceX's client (INFERENCEX_CLIENT below), and are compared with the
    planner's means of the same client; any other row as UNRECORDED_CLIENT, or as its optional
    CLIENT_COLUMNS say.
The split: `dev` holds the rows whose sha1(id), read as an integer, is not divisible by 4; `test` the rest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from costmodel.inputs.errors import PlannerError
from costmodel.inputs.reading import MAX_DATA_BYTES, read_text
from costmodel.inputs.recipes import RecipeMatch, RowKey, WorkerKey, image_of, measured_date, recipe_of

REQUIRED = ("id", "backend", "backend_version", "model_path", "system", "precision", "mode", "isl", "osl",
            "gemm_quant_mode", "moe_quant_mode", "batch_size", "tp_size", "pp_size", "attention_dp_size",
            "moe_tp_size", "moe_ep_size", "silicon_ttft_ms", "silicon_tpot_ms")
# measured or identifying: a row without one of these is a broken file, not an unsupported deployment
NEVER_EMPTY = ("id", "backend", "model_path", "system", "mode", "isl", "osl", "silicon_ttft_ms", "silicon_tpot_ms")
LAYOUT = ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")
# optional: how the client drove a row of your own CSV (absent: InferenceX's client for a row of its database,
# UNRECORDED_CLIENT for any other)
CLIENT_COLUMNS = ("client_range_ratio", "client_prompts_per_user", "client_statistic")
SPLITS = ("dev", "test", "all")
ONE_NODE_GPUS = 8  # an HGX node, where InferenceX ran its aggregated recipes on HGX parts (INFX)
FIX = "pass `aiconfigurator` (the sample shipped with the kernel database) or a CSV with its columns"


@dataclass(frozen=True)
class Layout:
    """One worker's GPUs: attention TP x DP x PP; the experts' TP x EP over the same GPUs."""

    tp: int
    pp: int
    attention_dp: int
    moe_tp: int
    moe_ep: int

    @property
    def gpus(self) -> int:
        return self.tp * self.attention_dp * self.pp


@dataclass(frozen=True)
class Client:
    """How a benchmark client drove a run, and which per-request statistic it reported."""

    range_ratio: float  # prompt and output lengths drawn uniformly from [int(ratio L), L]; 1.0: fixed at L
    prompts_per_user: int  # the run sent this many prompts per unit of concurrency
    statistic: Literal["mean", "median"]  # of TTFT and TPOT over the run's requests


# ASSUMPTION: the sample's database rows were measured by InferenceX (INFX in docs/sources.md). Their images
# carry InferenceX's enroot spelling (`nvcr.io#nvidia/...`) and match the recipes of its nvidia-master.yaml
# at their measurement dates, and their `config_id` / `workflow_run_id` are the tables of its results
# database, from which NVIDIA's own replay of these measurements (AISIM) takes `mean_ttft` and `mean_tpot`.
# InferenceX's client (benchmark_lib.sh, benchmark-tmpl.yml): `--random-range-ratio 0.8`,
# `--num-prompts CONC*10`, `--max-concurrency CONC`, an unbounded request rate, `--ignore-eos`; its
# warm-up requests finish before the measured run starts, so the run begins on an idle server.
INFERENCEX_CLIENT = Client(range_ratio=0.8, prompts_per_user=10, statistic="mean")
# A row is InferenceX's when it comes from its database's dump (`db-dump/...; config_id=...`) or one of its
# dated exports (`source_file=2026-04-06.csv; model=...`). The sample's other rows are NVIDIA's own gap
# analyses (`source_file=.../aic-auto-gap-analysis/...`, `...-gap-analysis.csv`), on other lengths than
# InferenceX's, whose client is not recorded; they, and a CSV of your own that does not say, are replayed
# as UNRECORDED_CLIENT (ASSUMPTION: fixed lengths, two prompts a user, the medians compared).
INFERENCEX_SOURCE = re.compile(r"^(db-dump/|source_file=\d{4}-\d{2}-\d{2}\.csv;)")
UNRECORDED_CLIENT = Client(range_ratio=1.0, prompts_per_user=2, statistic="median")


@dataclass(frozen=True)
class MeasuredPoint:
    id: str
    engine: str
    engine_version: str
    model_path: str
    system: str
    precision: str  # "" when the row records none
    gemm_quant: str
    moe_quant: str
    mode: str  # agg | disagg
    isl: int
    osl: int
    concurrency: int | None
    layout: Layout | None  # None: unreadable (`unreadable` says why); a disaggregated row's decode workers'
    ttft_ms: float
    tpot_ms: float
    source: str = ""
    unreadable: str = ""
    prefill_layout: Layout | None = None  # disaggregated rows: the prefill workers'
    workers: tuple[int, int] | None = None  # disaggregated rows: (prefill, decode) worker counts
    client: Client = UNRECORDED_CLIENT  # (bench files and the sample's readers always say)
    recipe: RecipeMatch | None = None  # the InferenceX recipe that ran it, where the recipes agree (recipes.py)
    layout_from_recipe: bool = False  # its workers' layouts and counts are its recipe's (recorded_in_part)

    @property
    def split(self) -> str:
        return split_of(self.id)


def split_of(point_id: str) -> str:
    """`dev` or `test`: a fixed quarter of the rows, by the id's sha1, is kept out of every study."""
    return "test" if int(hashlib.sha1(point_id.encode()).hexdigest(), 16) % 4 == 0 else "dev"


def read_points(path: Path) -> list[MeasuredPoint]:
    """Every row of a silicon-sample CSV; a missing column or an empty measurement is one error."""
    text = read_text(path, MAX_DATA_BYTES)
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise PlannerError(f"the CSV lacks {len(missing)} of the {len(REQUIRED)} columns check-serving reads: "
                           f"{', '.join(missing)}", file=str(path), field=missing[0],
                           fix=FIX + f" ({', '.join(REQUIRED)})")
    return [_point(row, path, n) for n, row in enumerate(reader, start=2)]


def _point(row: dict, path: Path, line: int) -> MeasuredPoint:
    for col in NEVER_EMPTY:
        if _blank(row[col]):
            raise PlannerError(f"row {line - 1} has no {col}", file=str(path), line=line, field=col,
                               fix="fill it in or drop the row")
    isl, osl = _int(row, "isl", path, line), _int(row, "osl", path, line)
    ttft, tpot = _float(row, "silicon_ttft_ms", path, line), _float(row, "silicon_tpot_ms", path, line)
    concurrency, precision = concurrency_of(row), _text(row["precision"])
    source = row.get("silicon_data_source") or ""
    layout, why = read_layout(row) if row["mode"] != "disagg" else disaggregated(row)
    prefill = read_layout(row, "prefill_")[0] if row["mode"] == "disagg" else None
    in_part = recorded_in_part(row)
    keys = gpu_keys(row) if in_part else (layout_key(layout), layout_key(prefill))
    recipe = recipe_of(image_of(source), row["model_path"], row["system"], row["backend"], precision,
                       (isl, osl, concurrency), *keys, measured_date(source))
    layout, prefill, workers, why = recipe_layouts(recipe) if in_part else (layout, prefill, workers_of(row), why)
    return MeasuredPoint(
        id=row["id"], engine=row["backend"], engine_version=row["backend_version"] or "", model_path=row["model_path"],
        system=row["system"], precision=precision, gemm_quant=_text(row["gemm_quant_mode"]),
        moe_quant=_text(row["moe_quant_mode"]), mode=row["mode"], isl=isl, osl=osl, concurrency=concurrency,
        layout=layout, ttft_ms=ttft, tpot_ms=tpot, source=source, unreadable=why, prefill_layout=prefill,
        workers=workers, recipe=recipe, client=client_of(row, path, line), layout_from_recipe=in_part)


def client_of(row: dict, path: Path, line: int) -> Client:
    """The row's benchmark client: its optional CLIENT_COLUMNS where given, over InferenceX's for a row of its
    database and UNRECORDED_CLIENT for any other."""
    base = INFERENCEX_CLIENT if is_inferencex(row) else UNRECORDED_CLIENT
    ratio = _client_value(row, "client_range_ratio", float, lambda x: 0 <= x <= 1, path, line)
    per_user = _client_value(row, "client_prompts_per_user", _whole, lambda x: x >= 1, path, line)
    statistic = _client_value(row, "client_statistic", str.lower, lambda x: x in ("mean", "median"), path, line)
    return Client(base.range_ratio if ratio is None else ratio, per_user or base.prompts_per_user,
                  statistic or base.statistic)


CLIENT_FIXES = {"client_range_ratio": "a ratio in [0, 1] (1: fixed lengths)",
                "client_prompts_per_user": "a whole number of at least 1", "client_statistic": "mean or median"}


def _client_value(row: dict, column: str, parse, ok, path: Path, line: int):
    """One optional client column's value (None where blank), or one error naming it."""
    text = row.get(column)
    if _blank(text):
        return None
    try:
        value = parse(text.strip())
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise PlannerError(f"row {line - 1} has {column} {text!r}", file=str(path), line=line, field=column,
                           fix=f"give {CLIENT_FIXES[column]}")
    return value


def _whole(text: str) -> int:
    """A whole number, also as a CSV writer spells it (10.0)."""
    number = float(text)
    if number != int(number):
        raise ValueError(text)
    return int(number)


def is_inferencex(row: dict) -> bool:
    """Whether a row comes from InferenceX's database (INFERENCEX_SOURCE)."""
    return bool(INFERENCEX_SOURCE.match(row.get("silicon_data_source") or ""))


def layout_key(lay: Layout | None) -> WorkerKey | None:
    """A worker's layout as InferenceX's recipes state it: its GPUs, expert EP, and DP attention or not."""
    return None if lay is None else (lay.gpus, lay.moe_ep or 1, lay.attention_dp > 1)


def recorded_in_part(row: dict) -> bool:
    """Whether the row is a disaggregated run of InferenceX's dated exports, which record each worker's GPUs
    (`*_tp_size`, InferenceX's `tp`) but not its DP attention, EP or worker count: every one of the sample's
    1,328 such rows gives `attention_dp_size` 1 and no `*_num_workers` (and some an EP that is not its
    recipe's), while the 264 disaggregated rows of its database dump record every count and DP attention for
    105 decode and 183 prefill workers. Such a row's workers are its recipe's (recipe_layouts)."""
    return row["mode"] == "disagg" and is_inferencex(row) and workers_of(row) is None


def gpu_keys(row: dict) -> tuple[RowKey | None, RowKey | None]:
    """A row recorded in part: its (decode, prefill) workers as the recipe join reads them, by GPUs alone."""
    decode, prefill = read_layout(row, "decode_")[0], read_layout(row, "prefill_")[0]
    if decode is None or prefill is None:
        return None, None
    return (decode.gpus, None, None), (prefill.gpus, None, None)


# a recipe's worker whose fields are not its layout: data-parallel attention over one GPU says nothing, and
# InferenceX's recipes that spell it note that "tp, ep, and dp-attn do nothing" there, the multi-node launch
# script setting the layout (nvidia-master.yaml at 10d18303873e, dsr1-fp8-gb200-dynamo-sglang; INFX)
PLACEHOLDER: WorkerKey = (1, 1, True)


def layout_of(key: WorkerKey) -> Layout:
    """A recipe's worker as a layout: attention over its GPUs as TP, or as DP where `dp-attn`; experts EP
    `ep` x expert TP over the rest (InferenceX's `tp` is the worker's GPUs either way)."""
    gpus, ep, dp_attention = key
    return Layout(1 if dp_attention else gpus, 1, gpus if dp_attention else 1, gpus // ep, ep)


def recipe_layouts(recipe: RecipeMatch | None) -> tuple[Layout | None, Layout | None, tuple[int, int] | None, str]:
    """A row recorded in part: its (decode, prefill) layouts and worker counts from the recipes that fit it,
    or Nones and why where none fits or they disagree."""
    told = "the row records only each worker's GPUs (InferenceX's exports give no DP attention, EP or worker count"
    if recipe is None:
        return None, None, None, f"{told}) and no InferenceX recipe of its image, lengths and concurrency has them"
    if recipe.workers is None:
        return None, None, None, (f"{told}) and the recipes that fit it ({recipe.recipe}) disagree on its workers: "
                                  "which ran cannot be told")
    w = recipe.workers
    if PLACEHOLDER in (w.prefill, w.decode):
        return None, None, None, (f"{told}) and its recipe {recipe.recipe} gives a placeholder worker (tp 1, ep 1, "
                                  "dp-attn over one GPU; its launch script sets the layout): which ran cannot be told")
    return layout_of(w.decode), layout_of(w.prefill), w.counts, ""


def read_layout(row: dict, prefix: str = "") -> tuple[Layout | None, str]:
    """The layout of the row's (or its prefill_/decode_ worker's) fields, or None and why it cannot be read."""
    try:
        vals = {c: _size(row.get(prefix + c)) for c in LAYOUT}
    except ValueError as e:
        return None, f"{prefix}{e}"
    if vals["tp_size"] is None:
        return None, f"no {prefix}tp_size"
    lay = Layout(vals["tp_size"], vals["pp_size"] or 1, vals["attention_dp_size"] or 1, vals["moe_tp_size"] or 0,
                 vals["moe_ep_size"] or 0)
    named = re.search(r"_tp(\d+)_ep(\d+|none)_", row["id"])
    if not prefix and row["mode"] == "agg" and is_inferencex(row) and not row["system"].startswith("gb"):
        ep = named.group(2) if named else "none"
        lay = uninflated(lay, (int(named.group(1)), int(ep)) if ep != "none" else None)
    if named and not prefix and int(named.group(1)) not in (lay.tp, lay.gpus):  # the name's tp: TP, or all GPUs
        return None, (f"the id names tp{named.group(1)}_ep{named.group(2)} but the fields give tp_size {lay.tp} on "
                      f"{lay.gpus} GPUs: which layout ran cannot be told")
    return lay, ""


def uninflated(lay: Layout, named: tuple[int, int] | None = None) -> Layout:
    """An aggregated row's layout with InferenceX's inflated GPU count undone. Its results database records
    a single-node recipe of `tp` T and `ep` E as T x E GPUs (AISIM: NVIDIA's replay counts such a config's
    GPUs as its tp). The sample carries that count either as T x E attention GPUs with moe_tp T, moe_ep E,
    or as attention TP T x DP E with moe_ep T x E. Every aggregated InferenceX recipe ran on one node (INFX:
    nvidia-master.yaml, `multinode: false`, tp at most 8 on HGX parts), so such a row ran on T GPUs where
    its count is beyond ONE_NODE_GPUS or its id names tpT_epE (`named`): attention TP T (DP T where the row
    puts the count in its DP and moe_tp is T), experts EP E x expert TP T / E."""
    t, e = named or ((lay.tp, lay.attention_dp) if lay.moe_tp == 1 else (lay.moe_tp, lay.moe_ep))
    if e <= 1 or t % e or lay.gpus != t * e or lay.pp > 1 or (lay.gpus <= ONE_NODE_GPUS and named is None):
        return lay
    if (lay.moe_tp, lay.moe_ep) == (t, e):
        tp, dp = (1, t) if lay.attention_dp > 1 else (t, 1)
    elif (lay.tp, lay.attention_dp, lay.moe_tp, lay.moe_ep) == (t, e, 1, t * e):
        tp, dp = t, 1
    else:
        return lay
    return Layout(tp, 1, dp, t // e, e)


def disaggregated(row: dict) -> tuple[Layout | None, str]:
    """A disaggregated row's decode layout, or None and why: both workers' layouts and counts must be given
    (most rows of the sample record no worker counts; one of each is not assumed)."""
    for prefix in ("prefill_", "decode_"):
        lay, why = read_layout(row, prefix)
        if lay is None:
            return None, why
    if workers_of(row) is None:
        return None, "the row records no prefill_num_workers / decode_num_workers: how many ran cannot be told"
    return read_layout(row, "decode_")


def workers_of(row: dict) -> tuple[int, int] | None:
    counts = (_size(row.get("prefill_num_workers")), _size(row.get("decode_num_workers")))
    return None if None in counts else counts


def concurrency_of(row: dict) -> int | None:
    found = re.search(r"silicon_concurrency=(\d+)", row.get("silicon_data_source") or "")
    if found:
        return int(found.group(1))
    try:
        return _size(row.get("batch_size"))
    except ValueError:
        return None


def _blank(value: str | None) -> bool:
    return value is None or value.strip() == "" or value.strip().lower() == "nan"


def _text(value: str | None) -> str:
    return "" if _blank(value) else value.strip()


def _size(value: str | None) -> int | None:
    """A layout size: empty, NaN or 0 is None (not recorded); anything but a whole number is a ValueError."""
    if _blank(value) or value.strip() in ("0", "0.0"):
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 1 and number == int(number)):
        raise ValueError(f"size {value!r} is not a whole number of GPUs")
    return int(number)


def _int(row: dict, col: str, path: Path, line: int) -> int:
    number = _float(row, col, path, line)
    if number < 1 or number != int(number):
        raise PlannerError(f"row {line - 1}: {col} {row[col]!r} is not a whole number of tokens", file=str(path),
                           line=line, field=col, fix="write a positive whole number")
    return int(number)


def _float(row: dict, col: str, path: Path, line: int) -> float:
    try:
        number = float(row[col])
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise PlannerError(f"row {line - 1}: {col} {row[col]!r} is not a positive number", file=str(path),
                           line=line, field=col, fix="write a positive number (milliseconds, tokens)")
    return number
