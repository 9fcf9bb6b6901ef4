"""Goodput (counts/reliability.py): the first-order checkpoint/restart cost by hand, Young's interval,
its place in the whole-run cost and nowhere in the step."""

import math

import pytest

from costmodel.counts.reliability import checkpoint_bytes, goodput
from costmodel.inputs.loader import load_scenario
from costmodel.inputs.specs import LLAMA3_GPU_MTBF_HOURS, ReliabilitySpec
from costmodel.sim.train_sim import simulate_training
from tests.conftest import SCENARIOS, validate_edit

MEGATRON = SCENARIOS / "deepseek-v3-megatron-h100.yaml"


def megatron():
    return load_scenario(MEGATRON).variants[1]


def test_the_llama3_rate_is_its_papers_count():
    assert LLAMA3_GPU_MTBF_HOURS == pytest.approx(16_384 * 54 * 24 / 419)  # 50,677 GPU-hours


def test_wall_time_by_hand():
    """1,024 GPUs at 1,024 GPU-hours each: one interruption an hour. Checkpoints of 10 s every 1,000 s,
    restarts of 100 s: each interruption costs 500 + 100 + 10 s, so W = 36,000 x 1.01 / (1 - 610/3,600)."""
    v = megatron()
    r = ReliabilitySpec(gpu_mtbf_hours=1024, checkpoint_write_s=10, checkpoint_interval_s=1000, restart_s=100)
    g = goodput(v.model, v.training, 36_000, r)
    wall = 36_000 * 1.01 / (1 - 610 / 3600)
    assert g.wall_s == pytest.approx(wall) and g.goodput == pytest.approx(36_000 / wall)
    assert g.expected_interruptions == pytest.approx(wall / 3600) and g.checkpoints_s == pytest.approx(360)


def test_the_default_interval_is_youngs_and_the_write_is_the_state_over_the_bandwidth():
    v = megatron()
    r = ReliabilitySpec()
    g = goodput(v.model, v.training, 1e6, r)
    delta = checkpoint_bytes(v.model, v.training) / 2e12
    assert g.checkpoint_write_s == pytest.approx(delta)
    assert g.checkpoint_interval_s == pytest.approx(math.sqrt(2 * delta * LLAMA3_GPU_MTBF_HOURS * 3600 / 1024))


def test_failures_lengthen_the_run_not_the_step():
    """Halving the GPUs' MTBF costs more whole-run GPU-hours; the step, and the per-token figures, stay."""
    v = megatron()
    t = v.training
    runs = [simulate_training("v", v.model, t.model_copy(update={"reliability": r}))
            for r in (None, ReliabilitySpec(), ReliabilitySpec(gpu_mtbf_hours=LLAMA3_GPU_MTBF_HOURS / 2))]
    assert len({r.step_time_s for r in runs}) == 1 and len({r.gpu_hours_per_trillion_tokens for r in runs}) == 1
    assert runs[0].gpu_hours_total < runs[1].gpu_hours_total < runs[2].gpu_hours_total
    assert runs[0].goodput is None and 0.95 < runs[1].goodput < 1 and runs[2].goodput < runs[1].goodput
    assert runs[1].days_total == pytest.approx(runs[0].days_total / runs[1].goodput)


def test_a_job_that_fails_faster_than_it_recovers_is_refused(tmp_path):
    result = validate_edit(tmp_path, MEGATRON, "      reliability: {}", "      reliability: {gpu_mtbf_hours: 100}")
    assert result.exit_code == 2 and "reliability.gpu_mtbf_hours" in result.output, result.output
