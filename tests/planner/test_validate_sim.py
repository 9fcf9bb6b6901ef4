"""`planner validate-sim` runs the real kernels and the simulator on the same requests (a small run here;
its accuracy is measured by the full command, whose results are committed under profiles/)."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from costmodel.inputs.specs import ModelSpec
from planner import validate_sim as validation
from planner.cli import cli
from tests.conftest import ROOT
from tests.planner.test_profile import TINY


def test_validate_sim_small_run_profiles_this_machine_then_reports_errors(tmp_path, monkeypatch):
    """No profile of this machine: it measures the run's shapes (cached under a fingerprinted name),
    then compares. The figures checked are recomputations and shapes, not accuracies, so the run is
    shrunk: a tiny MLA + MoE model of the same structure, each point timed for 0.02 s with no re-timing
    (V2-Lite's widths took 93 s here; test_the_run_grid_* check the grid at the real widths)."""
    tiny = ModelSpec.model_validate(yaml.safe_load(TINY))
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(validation, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(validation, "PROFILE_MIN_TIME_S", 0.002)
    monkeypatch.setattr(validation, "PROFILE_REMEASURE_S", 0.0)
    monkeypatch.setattr(validation, "run_model", lambda o: tiny.model_copy(update={
        "num_hidden_layers": o["layers"], "vocab_size": o["vocab"]}))
    out = tmp_path / "v.json"
    result = CliRunner().invoke(cli, ["validate-sim", "--requests", "4", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    cached = validation.cached_profile_path()
    assert cached.exists() and validation.fingerprint_id(validation.machine_here("cpu", "float32")) in cached.name
    assert f"{cached}: measured" in result.output
    r = json.loads(out.read_text())
    assert json.loads(result.stdout)["profile"] == str(cached)  # stdout is the JSON alone
    assert r["profile_foreign"] is None
    # the summary errors are the per-iteration and end-to-end figures it reports, recomputed here
    errors = [abs(it["predicted_s"] / it["measured_s"] - 1) * 100 for it in r["per_iteration"]]
    assert r["iteration_median_abs_pct_error"] == pytest.approx(float(np.median(errors)))
    assert r["iteration_p90_abs_pct_error"] == pytest.approx(float(np.percentile(errors, 90)))
    assert r["throughput_abs_pct_error"] == pytest.approx(
        abs(r["sim_generation_tok_s"] / r["real_generation_tok_s"] - 1) * 100)
    assert sum(len(it["prefill_tokens"]) for it in r["per_iteration"]) == 4  # each prompt prefilled once
    assert r["requests"] == 4 and len(r["per_iteration"]) == r["iterations"]
    assert out.with_suffix(".md").read_text().startswith("### Serving simulator vs a real run")


def test_validate_sim_refuses_a_gpu_profile(tmp_path):
    src = (ROOT / "profiles" / "cpu-deepseek-v2-lite.csv").read_text().replace("# device: cpu", "# device: cuda")
    prof = tmp_path / "gpu.csv"
    prof.write_text(src)
    result = CliRunner().invoke(cli, ["validate-sim", "--profile", str(prof)])
    assert result.exit_code == 2 and "planner profile --device cpu" in result.output


def test_the_run_grid_covers_every_shape_the_simulation_asks(monkeypatch):
    """Each operator curve the simulator queries for the default run is measured at sizes spanning
    the ones it asks (so the measured backend interpolates rather than extrapolates)."""
    monkeypatch.chdir(ROOT)
    points = validation.grid_for_run(validation.DEFAULTS)
    assert 20 <= len(points) <= 120
    ops = {(op, p) for op, p, _ in points}
    assert ops == {("gemm", "fwd"), ("ffn", "fwd"), ("moe", "fwd"), ("mla", "fwd")}
    decode_b = sorted({s["b"] for op, _, s in points if op == "mla" and s["q"] == 1})
    assert decode_b[0] == 1 and decode_b[-1] >= validation.DEFAULTS["max_rows"]


def test_the_run_grid_measures_every_small_size_asked(monkeypatch):
    """Under EXACT_BELOW rows kernels change algorithm with each row count, so every decode size the
    simulation asks of the FFN, MoE and head curves is measured, none interpolated."""
    monkeypatch.chdir(ROOT)
    points = validation.grid_for_run(validation.DEFAULTS)
    ffn_tokens = {s["tokens"] for op, _, s in points if op == "ffn" and s["inter"] == 10944}
    small = {t for t in ffn_tokens if t < validation.EXACT_BELOW}
    assert small == {1, 2, 3, 5, 6, 7, 9, 10, 11, 14, 16}  # the decode batch sizes of the default run
    head_m = {s["m"] for op, _, s in points if op == "gemm"}
    assert {1, 2, 3, 16} <= head_m
