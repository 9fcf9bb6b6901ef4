"""`planner import-profile aiconfigurator`, `check-timing` on what it writes, and `engine:` in scenarios."""

import json
import textwrap

import pytest
from click.testing import CliRunner

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


def test_an_engine_on_a_gpu_the_database_lacks_names_the_field(tmp_path):
    gpu = (SCENARIOS / "gpus" / "h200.yaml").read_text().replace("name: h200", "name: myh200")
    gpu = "\n".join(line for line in gpu.splitlines() if not line.startswith("kernel_database"))
    (tmp_path / "gpus").mkdir()
    (tmp_path / "gpus" / "myh200.yaml").write_text(gpu + "\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(textwrap.dedent("""\
        name: s
        variants:
          - name: a
            model: deepseek-v3
            inference:
              cluster: {gpu: myh200, gpus_per_node: 8, nodes: 1}
              parallelism: {tp: 1, dp: 8, ep: 8, zero_stage: 0}
              weight_bits: 8
              engine: {name: sglang}
        """))
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
