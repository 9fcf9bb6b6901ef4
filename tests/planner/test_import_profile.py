"""`planner import-profile aiconfigurator`, `check-timing` on what it writes, and `engine:` in scenarios."""

import json
import textwrap

import pytest
from click.testing import CliRunner

from costmodel.inputs import kernel_db
from costmodel.inputs.errors import PlannerError
from planner.cli import cli
from tests.conftest import SCENARIOS


@pytest.mark.parametrize("args, field", [
    (["--gpu", "h201", "--engine", "sglang", "--model", "deepseek-v3"], "--gpu"),
    (["--gpu", "h200", "--engine", "sglng", "--model", "deepseek-v3"], "--engine"),
    (["--gpu", "h200", "--engine", "sglang", "--version", "0.0.1", "--model", "deepseek-v3"], "--version"),
    (["--gpu", "h200", "--engine", "sglang", "--model", "deepseek-v9"], "--model"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, field):
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(cli, ["import-profile", "aiconfigurator", *args, "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and f"`{field}`" in r.output and "Fix:" in r.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_import_then_check_timing(tmp_path):
    out = tmp_path / "h200.csv"
    r = CliRunner().invoke(cli, ["import-profile", "aiconfigurator", "--gpu", "h200", "--engine", "sglang",
                                 "--model", "deepseek-v3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert list(tmp_path.iterdir()) == [out]  # the temporary name was moved into place
    r = CliRunner().invoke(cli, ["check-timing", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["machine"].startswith("imported from aiconfigurator-core==0.12.0")
    per_op = result["measured"]["per_op"]
    assert {"gemm/fwd", "moe_experts/fwd", "mla_generation/fwd", "mla_context/fwd", "mla_bmm/fwd"} <= set(per_op)
    for op in ("moe_experts/fwd", "mla_generation/fwd", "mla_context/fwd", "mla_bmm/fwd"):
        assert per_op[op]["median_abs_pct_error"] <= 5.0, (op, per_op[op])


ENGINE_SCENARIO = textwrap.dedent("""\
    name: s
    variants:
      - name: a
        model: deepseek-v3
        inference:
          cluster: {gpu: h200, gpus_per_node: 8, nodes: 1}
          parallelism: {tp: 1, dp: 8, ep: 8, zero_stage: 0}
          weight_bits: 8
          engine: {name: sglang}
    """)


def test_an_engine_on_a_gpu_the_database_lacks_names_the_field(tmp_path):
    gpu = (SCENARIOS / "gpus" / "h200.yaml").read_text().replace("name: h200", "name: myh200")
    gpu = "\n".join(line for line in gpu.splitlines() if not line.startswith("kernel_database"))
    (tmp_path / "gpus").mkdir()
    (tmp_path / "gpus" / "myh200.yaml").write_text(gpu + "\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(ENGINE_SCENARIO.replace("gpu: h200", "gpu: myh200"))
    r = CliRunner().invoke(cli, ["validate", str(scenario)])
    assert r.exit_code == 2
    assert "engine" in r.output and "kernel_database" in r.output and "Traceback" not in r.output
    scenario.write_text(scenario.read_text().replace("gpu: myh200", "gpu: h200").replace(
        "{name: sglang}", "{name: sglang, version: '0.0.1'}"))
    r = CliRunner().invoke(cli, ["validate", str(scenario)])
    assert r.exit_code == 2 and "engine.version" in r.output and "0.5.14" in r.output, r.output


def test_a_model_beside_the_user_is_found(tmp_path, monkeypatch):
    """`--model NAME` searches the working directory's scenarios/ first, as `planner profile` does (the
    import once searched from the working directory's parent and missed it)."""
    (tmp_path / "scenarios" / "models").mkdir(parents=True)
    text = (SCENARIOS / "models" / "deepseek-v3.yaml").read_text().replace("name: deepseek-v3", "name: my-v3", 1)
    (tmp_path / "scenarios" / "models" / "my-v3.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["import-profile", "aiconfigurator", "--gpu", "h200_sxm", "--engine", "sglang",
                                 "--model", "my-v3", "--out", "p.csv"])
    assert r.exit_code == 0, r.output
    assert "# model: my-v3" in (tmp_path / "p.csv").read_text()


@pytest.mark.parametrize("old, new, said", [
    # an engine runs NVFP4, FP8 or BF16 weights: a 7-bit width would be timed as FP8 without saying so
    ("weight_bits: 8", "weight_bits: 7",
     "field `variants.0.inference.weight_bits`: 7-bit weights are not a precision sglang runs"),
    # YAML reads an unquoted 0.5.10 as text but 9.9 as a number: the fix says to quote it
    ("{name: sglang}", "{name: sglang, version: 9.9}", 'must be text, got the number 9.9. Fix: quote the value as you wrote it'),
])
def test_an_engine_scenario_refuses_a_width_or_a_number_it_cannot_mean(tmp_path, old, new, said):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(ENGINE_SCENARIO.replace(old, new))
    r = CliRunner().invoke(cli, ["validate", str(scenario)], catch_exceptions=False)
    assert r.exit_code == 2 and said in r.output and r.output.count("\n") == 1, r.output
    scenario.write_text(ENGINE_SCENARIO)
    assert CliRunner().invoke(cli, ["validate", str(scenario)]).exit_code == 0


def test_a_gpu_without_the_engines_measurements_names_the_gpus_that_have_them():
    with pytest.raises(PlannerError) as e:
        kernel_db.resolve("l4", "sglang")
    assert e.value.field == "--gpu" and "no sglang measurements on l4" in e.value.problem
    listed = e.value.fix.split(": ")[1].rstrip(".").split(", ")
    assert "h200_sxm" in listed and "l4" not in listed


def test_a_gpu_file_naming_a_database_gpu_without_the_engine_says_which_have_it(tmp_path):
    gpu = (SCENARIOS / "gpus" / "h200.yaml").read_text().replace("name: h200", "name: myl4")
    (tmp_path / "gpus").mkdir()
    (tmp_path / "gpus" / "myl4.yaml").write_text(gpu.replace("gpu: h200_sxm", "gpu: l4"))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(ENGINE_SCENARIO.replace("gpu: h200", "gpu: myl4"))
    r = CliRunner().invoke(cli, ["validate", str(scenario)])
    assert r.exit_code == 2 and "no sglang measurements on l4" in r.output, r.output
    assert f"set kernel_database.gpu to a database GPU that has it ({', '.join(kernel_db.gpus_measuring('sglang'))})" in r.output
