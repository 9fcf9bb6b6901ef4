"""A user's own serving benchmarks as measured points: `vllm bench serve --save-result` JSON (one run a
file) or `python -m sglang.bench_serving --output-file` JSONL (one run a line), with a YAML sidecar
beside it (same name, `.yaml`) for what those files do not record:

    model: deepseek-ai/DeepSeek-R1     # ORG/NAME of a shipped HF config, or a bundled model's name
    gpu: h200_sxm                      # the kernel database's name of the GPU
    engine: sglang                     # sglang | vllm | trtllm
    engine_version: 0.5.6              # optional: the database's current version otherwise
    precision: fp8                     # optional: fp4 (NVFP4) | fp8 | bf16 (else the checkpoint as it ships)
    layout: {tp: 8, attention_dp: 1, moe_tp: 1, moe_ep: 8}     # pp: 1 unless given
    isl: 1024                          # optional: else the run's total_input_tokens / completed
    osl: 1024                          # optional: else total_output_tokens / completed
    concurrency: 64                    # optional: else the run's max_concurrency

From each run (VBS, SBS in docs/sources.md): `median_ttft_ms` and `median_tpot_ms` (the planner's p50
is held against them), the lengths and concurrency the sidecar leaves out, and `completed` over the
concurrency as the prompts a user. The replay's lengths are fixed at the sidecar's or the run's mean
lengths: the files do not record how the client drew them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import Field

from costmodel.inputs.errors import PlannerError
from costmodel.inputs.loader import read_yaml, validate
from costmodel.inputs.measured_serving import Client, Layout, MeasuredPoint
from costmodel.inputs.reading import MAX_DATA_BYTES, read_text
from costmodel.inputs.specs import PosInt, Spec

BENCH_SUFFIXES = (".json", ".jsonl")


class BenchLayout(Spec):
    """Attention TP x DP (x PP); the experts' EP, and their TP (default: the rest of the attention GPUs,
    as the engines shard experts without an EP flag)."""

    tp: PosInt = 1
    attention_dp: PosInt = 1
    pp: PosInt = 1
    moe_tp: PosInt | None = None
    moe_ep: PosInt = 1

    def experts_tp(self) -> int:
        return self.moe_tp or max(1, self.tp * self.attention_dp // self.moe_ep)


class BenchSidecar(Spec):
    """What a benchmark's own file does not record."""

    model: str = Field(min_length=1)
    gpu: str = Field(min_length=1)
    engine: Literal["sglang", "vllm", "trtllm"]
    engine_version: str = "current"
    precision: Literal["fp4", "fp8", "bf16", ""] = ""
    layout: BenchLayout
    isl: PosInt | None = None
    osl: PosInt | None = None
    concurrency: PosInt | None = None


def sidecar_of(path: Path) -> BenchSidecar:
    side = path.with_suffix(".yaml")
    if not side.is_file():
        raise PlannerError(f"no sidecar {side.name}: a benchmark's JSON records no model, GPU, engine or layout",
                           file=str(path), fix=f"write {side} with model, gpu, engine and layout (see `planner "
                                               "check-serving --help`)")
    data, node = read_yaml(side)
    return validate(BenchSidecar, data, side, node)


def runs_of(path: Path) -> list[dict]:
    """The runs of a vLLM JSON (one) or an SGLang JSONL (one a line)."""
    text = read_text(path, MAX_DATA_BYTES)
    lines = [text] if path.suffix == ".json" else [ln for ln in text.splitlines() if ln.strip()]
    runs = []
    for n, line in enumerate(lines, start=1):
        try:
            run = json.loads(line)
        except ValueError as e:
            raise PlannerError(f"not JSON: {e}", file=str(path), line=n if path.suffix == ".jsonl" else None,
                               fix="pass vllm bench serve --save-result JSON or sglang.bench_serving JSONL") from e
        if not isinstance(run, dict):
            raise PlannerError("a run must be a JSON object", file=str(path), fix="pass the benchmark's own file")
        runs.append(run)
    return runs


def _number(run: dict, key: str, path: Path, n: int) -> float:
    value = run.get(key)
    if value is None:
        raise PlannerError(f"run {n} has no {key}", file=str(path), field=key,
                           fix="pass the benchmark's result file as it wrote it")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise PlannerError(f"run {n}: {key} {value!r} is not a positive number", file=str(path), field=key,
                           fix="pass the benchmark's result file as it wrote it")
    return float(value)


def _point(run: dict, side: BenchSidecar, path: Path, n: int) -> MeasuredPoint:
    rate = run.get("request_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate):
        raise PlannerError(f"run {n} sent requests at {rate:g}/s (an open loop); check-serving replays runs of a "
                           "fixed concurrency", file=str(path), field="request_rate",
                           fix="benchmark with --max-concurrency and an unbounded --request-rate")
    done = _number(run, "completed", path, n)
    isl = side.isl or round(_number(run, "total_input_tokens", path, n) / done)
    osl = side.osl or round(_number(run, "total_output_tokens", path, n) / done)
    concurrency = side.concurrency or int(_number(run, "max_concurrency", path, n))
    lay = side.layout
    return MeasuredPoint(
        id=f"{path.stem}-{n}", engine=side.engine, engine_version=side.engine_version, model_path=side.model,
        system=side.gpu, precision=side.precision, gemm_quant="", moe_quant="", mode="agg", isl=isl, osl=osl,
        concurrency=concurrency, layout=Layout(lay.tp, lay.pp, lay.attention_dp, lay.experts_tp(), lay.moe_ep),
        ttft_ms=_number(run, "median_ttft_ms", path, n), tpot_ms=_number(run, "median_tpot_ms", path, n),
        source=str(path), client=Client(1.0, max(1, math.floor(done / concurrency + 0.5)), "median"))  # halves up, not to even


def read_bench(path: Path) -> list[MeasuredPoint]:
    """Every run of a benchmark result file, with its sidecar's model, GPU, engine and layout."""
    side = sidecar_of(path)
    return [_point(run, side, path, n) for n, run in enumerate(runs_of(path), start=1)]
