"""The bundled Megatron-Core layout of DeepSeek-V3 on 1,024 H100: the sweep that chose it reads the same
figures as `simulate train`, it fits, and it hides all but a small share of its communication."""

import pytest

from costmodel.inputs.loader import load_scenario
from costmodel.sim.train_sim import simulate_training
from planner.sweep_runner import run_sweep
from tests.conftest import ROOT, SCENARIOS

MEGATRON = SCENARIOS / "deepseek-v3-megatron-h100.yaml"
SWEEP = ROOT / "scenarios" / "sweeps" / "deepseek-v3-megatron-layouts.yaml"


@pytest.fixture(scope="module")
def sweep_rows(tmp_path_factory):
    _, rows = run_sweep(SWEEP, tmp_path_factory.mktemp("sweep") / "layouts.jsonl", sequential=True)
    return {r["label"]: r for r in rows}


def test_the_bundled_layout_is_the_sweeps_fastest_that_fits(sweep_rows):
    v = load_scenario(MEGATRON).variants[2]
    par = v.training.parallelism
    r = simulate_training(v.name, v.model, v.training)
    ok = {label: row["metrics"] for label, row in sweep_rows.items() if row["status"] == "ok"}
    best = max(ok, key=lambda label: ok[label]["tokens_per_s_per_gpu"])
    assert best == f"tp={par.tp} cp={par.cp} ep={par.ep}"
    assert ok[best]["tokens_per_s_per_gpu"] == pytest.approx(r.tokens_per_s_per_gpu, rel=1e-9)
    assert ok[best]["exposed_comm_fraction"] == pytest.approx(r.exposed_comm_s / r.step_time_s, rel=1e-9)


def test_the_layouts_that_do_not_fit_are_dropped_naming_their_point(sweep_rows):
    dropped = [row for row in sweep_rows.values() if row["status"] != "ok"]
    assert {row["label"] for row in dropped} == {"tp=2 cp=1 ep=16", "tp=2 cp=1 ep=32"}
    assert all("GB per GPU" in row["reason"] for row in dropped)


def test_the_bundled_layout_fits_overlaps_and_exposes_under_a_fifth_of_its_step():
    v = load_scenario(MEGATRON).variants[2]
    par = v.training.parallelism
    assert par.overlap_moe_a2a and par.moe_folding and par.virtual_stages == 4 and par.cp == 2
    r = simulate_training(v.name, v.model, v.training)
    assert r.fits and r.exposed_comm_fraction < 0.20
