"""How wrong the timing model may be, per operator, and p10/p50/p90 bands of a simulator's outputs.

A draw picks one multiplicative error (actual time / predicted time) per operator and runs the
simulator with every operator's time scaled by it; the bands are percentiles over seeded draws.

- With a profile, an operator's errors are its held-out ratios (timing.held_out_ratios: both backends
  fitted on the other points), drawn with replacement.
- For a GPU file, whose times come from the sourced kernel efficiencies (timing.DEFAULT_EFFICIENCY),
  each operator's error is drawn log-uniformly over the range its own source publishes (below).
A model whose errors are all 1 gives bands of zero width.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from costmodel.inputs.profiles import Profile
from costmodel.timing.operators import held_out_ratios

# (low, high) of actual / predicted time for the sourced efficiencies, from the spread of each source's
# own published figures around the one timing.py uses.
_DEEPGEMM = (1.0, 1358 / 1093, "DeepGEMM: the 1358 TFLOPS used is its best large-M run; its grouped large-M "
                               "runs reach 1093-1297 (DGEMM README)")
SOURCED_TIME_RANGE: dict[str, tuple[float, float, str]] = {
    "gemm": _DEEPGEMM,
    "ffn": _DEEPGEMM,
    "moe": (1093 / 1297, 1.0, "DeepGEMM grouped contiguous: 1093 TFLOPS used, 1297 at the top of its range"),
    "mla": (1.0, 660 / 580, "FlashMLA: 660 TFLOPS at HEAD, 580 at its first release (FMLA README)"),
    "attn": (1.0, 660 / 580, "FlashMLA's range, taken for FlashAttention-style attention too"),
}
BAND_DRAWS = 16
SERVE_BAND_DRAWS = 8  # each re-runs a serving workload (seconds each); training draws are cheaper
BAND_SEED = 0


@dataclass(frozen=True)
class TimingErrors:
    """Per operator: observed ratios to draw from, or a (low, high) range to draw log-uniformly from."""

    ratios: dict[str, tuple[float, ...]] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    source: str = ""

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """One multiplicative error per operator."""
        out = {op: float(rng.choice(r)) for op, r in sorted(self.ratios.items()) if r}
        for op, (lo, hi) in sorted(self.ranges.items()):
            out[op] = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return out


def sourced_errors() -> TimingErrors:
    return TimingErrors(ranges={op: (lo, hi) for op, (lo, hi, _) in SOURCED_TIME_RANGE.items()},
                        source="ranges of the sourced kernel benchmarks (costmodel/timing/uncertainty.py)")


def profile_errors(profile: Profile) -> TimingErrors:
    """Held-out ratios of each operator of the profile (ops with none keep their sourced range)."""
    ratios = held_out_ratios(profile)
    return TimingErrors(ratios={op: tuple(r) for op, r in ratios.items()},
                        ranges={op: (lo, hi) for op, (lo, hi, _) in SOURCED_TIME_RANGE.items() if op not in ratios},
                        source=f"held-out errors of {profile.path}")


def bands(run: Callable[[dict[str, float]], dict[str, float | None]], errors: TimingErrors,
          draws: int = BAND_DRAWS, seed: int = BAND_SEED) -> dict[str, dict[str, float]]:
    """p10/p50/p90 of each metric `run(scale)` returns, over `draws` seeded draws of `errors` (a metric
    a run leaves undefined, None, is left out of that draw)."""
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(draws):
        for metric, value in run(errors.draw(rng)).items():
            if value is not None:
                samples.setdefault(metric, []).append(value)
    return {m: {q: float(np.percentile(v, int(q[1:]))) for q in ("p10", "p50", "p90")} for m, v in samples.items()}
