"""A workload's requests as arrays: sampled from its length distributions (seeded), or read from a
trace CSV. The serving simulator takes these arrays; the application layer builds them once a run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from costmodel.inputs.budget import MAX_REQUESTS
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.reading import read_csv
from costmodel.inputs.specs import MAX_TOKENS, LengthDist, WorkloadSpec


@dataclass(frozen=True)
class RequestArrays:
    arrival_s: np.ndarray  # (n,) float; NaN = decided during the run (closed loop)
    prompt_tokens: np.ndarray  # (n,) int64
    output_tokens: np.ndarray  # (n,) int64


def sample_lengths(d: LengthDist, n: int, rng: np.random.Generator, context: int) -> np.ndarray:
    """n lengths from `d`; a lognormal is cut at its `max`, and never beyond the model's context."""
    if d.dist == "fixed":
        return np.full(n, d.value, dtype=np.int64)
    if d.dist == "uniform":
        return rng.integers(d.low, d.high + 1, size=n)
    x = np.rint(np.minimum(rng.lognormal(math.log(d.median), d.sigma, size=n), context))
    return np.clip(x.astype(np.int64), 1, min(d.max or context, context))


TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
TRACE_FIX = "give a CSV with columns arrival_s, prompt_tokens, output_tokens, one request a row"


def read_trace(path: Path, context: int | None = None) -> RequestArrays:
    """A CSV trace with columns arrival_s, prompt_tokens, output_tokens: at most MAX_REQUESTS rows (the
    work budget, refused before a row is parsed), finite non-negative arrivals, whole positive lengths,
    prompts and outputs within the model's `context`. Errors name the file, line and column."""
    table = read_csv(path, TRACE_COLUMNS, MAX_REQUESTS, TRACE_FIX)
    if not table.rows:
        raise PlannerError("the trace has no requests", file=str(path), fix=TRACE_FIX)
    longest = context if context is not None else MAX_TOKENS
    arrival = np.array([table.number(i, "arrival_s", "give arrival times in seconds, 0 or later", zero=True)
                        for i in range(len(table.rows))])
    lengths = {}
    for name in ("prompt_tokens", "output_tokens"):
        lengths[name] = np.array([table.number(i, name, "give whole token counts of at least 1", integer=True)
                                  for i in range(len(table.rows))], dtype=np.int64)
        beyond = np.flatnonzero(lengths[name] > longest)
        if beyond.size:
            raise table.error(int(beyond[0]), name, f"{lengths[name][beyond[0]]:,} tokens is beyond the model's "
                              f"{longest:,}-token context", "cap the trace's lengths at the model's context")
    return RequestArrays(arrival, lengths["prompt_tokens"], lengths["output_tokens"])


def make_requests(w: WorkloadSpec, base_dir: Path | None, context: int) -> RequestArrays:
    """The workload's requests, seeded by `w.seed`; lengths never beyond the model's `context`."""
    if w.arrival == "trace":
        return read_trace(Path(w.trace_csv) if base_dir is None else Path(base_dir) / w.trace_csv, context)
    rng = np.random.default_rng(w.seed)
    n = w.requests
    prompt, output = sample_lengths(w.prompt_tokens, n, rng, context), sample_lengths(w.output_tokens, n, rng, context)
    if w.arrival == "poisson":
        arrival = np.cumsum(rng.exponential(1 / w.rate_per_s, size=n))
    else:  # burst: all at t = 0; closed loop: decided during the run
        arrival = np.zeros(n) if w.arrival == "burst" else np.full(n, np.nan)
    return RequestArrays(arrival, prompt, output)
