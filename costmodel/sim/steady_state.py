"""When a maximum-throughput run has said what it has to say: the steady-state rate of a saturated run
and its confidence interval, from the per-iteration log, so the run can stop once the rate is known.

The observations are the iterations while the instance is saturated (requests still wait): batches of
five (MSER5: the tokens and seconds of five consecutive iterations make one ratio). The
warm-up is the prefix the MSER rule drops: the d (at most half the batches) that minimises the variance
of the mean of what is left, sum((y - mean)^2) / (n - d)^2. What is left is cut into BATCHES equal batch
means (BATCHMEANS §9.5.3); the rate is all its tokens over all its seconds, and
the interval is the Student t interval of the batch rates. A run stops when that half-width is at most
REL_HALF_WIDTH of the rate (docs/sources.md gives both sources).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

MSER_BATCH = 5  # iterations a MSER observation averages (MSER-5)
BATCHES = 20  # batch means of the truncated series
T_975_19 = 2.093  # BATCHMEANS: Student t, two-sided 95%, 19 degrees of freedom (BATCHES - 1)
MAX_LAG1 = 0.2  # ASSUMPTION: batch means taken as independent below this lag-1 correlation (a common screen)
REL_HALF_WIDTH = 0.005  # ASSUMPTION: stop once the rate is known to +-0.5%, the golden files' tolerance
MIN_KEPT = 5 * BATCHES  # MSER observations left after the warm-up before a verdict: 25 iterations a batch mean


class SteadyState(BaseModel):
    """The steady-state rate of a saturated run and its 95% interval."""

    rate_tok_s: float
    low_tok_s: float
    high_tok_s: float
    warmup_iterations: int  # dropped by MSER-5
    iterations: int  # saturated iterations the rate and interval come from, after the warm-up
    converged: bool  # the interval is within +-REL_HALF_WIDTH of the rate
    stopped_early: bool = False  # the run stopped there (else it ran to its last request)


def mser_truncation(y: np.ndarray) -> int:
    """The MSER warm-up: the d < len(y) / 2 minimising sum((y[d:] - mean(y[d:]))^2) / (len(y) - d)^2."""
    n = len(y)
    tail = n - np.arange(n // 2)  # observations left after dropping d
    s1, s2 = np.cumsum(y[::-1])[::-1], np.cumsum((y * y)[::-1])[::-1]  # suffix sums
    ss = s2[: n // 2] - s1[: n // 2] ** 2 / tail
    return int(np.argmin(ss / tail**2))


def lag1_correlation(x: np.ndarray) -> float:
    """The lag-1 autocorrelation of a series (0 for one constant to rounding)."""
    dev = x - x.mean()
    if np.abs(dev).max() <= 1e-9 * abs(x.mean()):
        return 0.0
    return float((dev[1:] * dev[:-1]).sum() / (dev * dev).sum())


def steady_state(tokens: np.ndarray, seconds: np.ndarray) -> SteadyState | None:
    """The steady state of a saturated run's iterations (`tokens` generated and `seconds` taken by each),
    or None while there are too few to judge."""
    n = len(tokens) // MSER_BATCH
    if n < 2 * BATCHES:
        return None
    tok, sec = (x[: n * MSER_BATCH].reshape(n, MSER_BATCH).sum(axis=1) for x in (tokens, seconds))
    d = mser_truncation(tok / sec)
    if n - d < BATCHES:
        return None
    kept = (n - d) // BATCHES * BATCHES  # whole batch means; the few newest observations wait for the next look
    bt, bs = (x[d : d + kept].reshape(BATCHES, -1).sum(axis=1) for x in (tok, sec))
    rate, rates = bt.sum() / bs.sum(), bt / bs
    half = T_975_19 * rates.std(ddof=1) / np.sqrt(BATCHES)
    # MSER5: a minimum at the edge of the half searched means the warm-up has not ended (the run is too short);
    # BATCHMEANS: correlated batch means make the t interval too narrow, so their lag-1 correlation must be small
    settled = d < n // 2 - 1 and n - d >= MIN_KEPT and lag1_correlation(rates) < MAX_LAG1
    return SteadyState(rate_tok_s=rate, low_tok_s=rate - half, high_tok_s=rate + half,
                       warmup_iterations=d * MSER_BATCH, iterations=kept * MSER_BATCH,
                       converged=bool(settled and half <= REL_HALF_WIDTH * rate))
