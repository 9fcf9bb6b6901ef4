"""Steady state of a saturated run (sim/steady_state.py): MSER-5's warm-up and the batch-means interval
by hand, and a saturated run that stops there with the analytic rate."""

import numpy as np
import pytest

from costmodel.app.serving import run_serving
from costmodel.inputs.loader import load_scenario
from costmodel.inputs.specs import LengthDist, WorkloadSpec
from costmodel.sim.steady_state import T_975_19, mser_truncation, steady_state
from tests.conftest import SCENARIOS


def test_mser_drops_the_warm_up_and_nothing_more():
    # three high observations, then a flat series: dropping exactly three leaves zero variance
    assert mser_truncation(np.array([10.0, 10, 10, 1, 1, 1, 1, 1, 1, 1])) == 3
    assert mser_truncation(np.full(50, 7.0)) == 0


def test_a_slow_start_is_dropped_and_the_rate_is_exact():
    """200 iterations of 0.02 s, then 800 of 0.01 s, 1 token each: 40 MSER observations at 50 tok/s, then
    160 at 100. MSER-5 drops the 40 (200 iterations); what is left is exactly 100 tok/s, interval zero wide."""
    seconds = np.concatenate([np.full(200, 0.02), np.full(800, 0.01)])
    ss = steady_state(np.ones(1000), seconds)
    assert ss.warmup_iterations == 200 and ss.iterations == 800
    assert ss.rate_tok_s == pytest.approx(100) and ss.high_tok_s - ss.low_tok_s == pytest.approx(0, abs=1e-9)
    assert ss.converged


def test_the_interval_is_the_t_interval_of_twenty_batch_rates():
    """Batch rates alternating 90 and 110 tok/s over 20 batches of 50 iterations: mean 100 (equal seconds),
    s = sqrt(20/19) * 10, half-width 2.093 s / sqrt(20); too wide for +-0.5%."""
    seconds = np.full(1000, 0.01)
    tokens = np.repeat(np.tile([0.9, 1.1], 10), 50)
    ss = steady_state(tokens, seconds)
    assert ss.warmup_iterations == 0
    half = T_975_19 * np.sqrt(20 / 19) * 10 / np.sqrt(20)
    assert ss.rate_tok_s == pytest.approx(100) and ss.high_tok_s == pytest.approx(100 + half)
    assert not ss.converged


def test_too_short_a_series_has_no_verdict():
    assert steady_state(np.ones(150), np.full(150, 0.01)) is None  # 30 observations: fewer than 2 x 20


class FixedSteps:
    def __init__(self, decode_s: float):
        self.decode_s = decode_s

    def time(self, chunks, decode_batch, decode_ctx_sum):
        return self.decode_s


def test_a_saturated_run_stops_at_its_steady_state_with_the_analytic_rate():
    """8 attention ranks x 16 running, 10 ms a step whatever the batch: 12,800 tok/s. The run stops long
    before its 5,000 requests finish, at exactly that rate."""
    v = load_scenario(SCENARIOS / "deepseek-v2-paper.yaml").variants[0]
    inf = v.inference.model_copy(update={"max_running": 16})
    w = WorkloadSpec(prompt_tokens=LengthDist(value=100), output_tokens=LengthDist(value=50), arrival="burst",
                     requests=5000)
    full, stopped = (run_serving("sat", v.model, inf, w, phase="decode", step_model=FixedSteps(0.01),
                                 kv_capacity_tokens=10**7, steady=s) for s in (False, True))
    ss = stopped.steady_state
    assert ss.converged and ss.stopped_early and stopped.finished < full.finished == 5000
    assert stopped.max_generation_throughput_tok_s == pytest.approx(128 / 0.01)
    assert stopped.iterations < full.iterations / 2


def test_simulate_serve_reports_the_steady_state_in_json(paper_cli):
    ss = {v["name"]: v["max_generation_steady_state"] for v in paper_cli["serve"]["variants"]}
    assert set(ss["deepseek-llm-67b"]) == {"rate_tok_s", "low_tok_s", "high_tok_s", "warmup_iterations", "iterations",
                                           "converged", "stopped_early"}
    assert ss["deepseek-llm-67b"]["stopped_early"] and ss["deepseek-llm-67b"]["converged"]


def test_the_rate_is_tokens_over_seconds_not_a_mean_of_rates():
    """Batches alternating 10 ms and 30 ms iterations of one token: the rate is the kept tokens over the
    kept seconds (50 tok/s over whole periods), not the mean of 100 and 33 tok/s."""
    seconds = np.tile(np.repeat([0.01, 0.03], 50), 10)
    ss = steady_state(np.ones(1000), seconds)
    kept = slice(ss.warmup_iterations, ss.warmup_iterations + ss.iterations)
    assert ss.rate_tok_s == pytest.approx(ss.iterations / seconds[kept].sum())
    assert ss.rate_tok_s < 60


def test_correlated_batch_means_give_no_verdict():
    """Batch rates drifting in a slow wave (lag-1 correlation near 1) are not independent: however tight
    their t interval, the run goes on."""
    import numpy as np

    seconds = np.full(1000, 0.01)
    tokens = 1 + 0.001 * np.sin(np.linspace(0, np.pi, 1000))  # within +-0.1%, but one slow swell
    ss = steady_state(tokens, seconds)
    assert ss is not None and not ss.converged
