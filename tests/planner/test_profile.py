"""`planner profile`: a run killed mid-way resumes with every point exactly once; check-timing's shape."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from planner.cli import cli
from tests.conftest import ROOT

TINY = """\
name: tiny-mla-moe
attention: mla
ffn: moe
vocab_size: 256
hidden_size: 64
num_hidden_layers: 2
num_attention_heads: 4
kv_lora_rank: 32
qk_nope_head_dim: 16
qk_rope_head_dim: 8
v_head_dim: 16
intermediate_size: 128
moe_intermediate_size: 32
n_routed_experts: 8
n_shared_experts: 1
num_experts_per_tok: 2
first_k_dense_replace: 1
"""


def rows(path) -> list[dict]:
    body = "".join(line for line in path.read_text().splitlines(keepends=True) if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(body)))


def planner_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from planner.cli import main; main()", *args]


def test_killed_run_resumes_with_every_point_once(tmp_path):
    model = tmp_path / "tiny.yaml"
    model.write_text(TINY)
    out = tmp_path / "p.csv"
    args = ["profile", "--model", str(model), "--grid", "tiny", "--min-time-s", "0.002", "--remeasure-s", "0",
            "--out", str(out)]
    proc = subprocess.Popen(planner_cmd(*args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(rows(out)) < 5):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up
    proc.wait()
    partial = len(rows(out))
    assert 5 <= partial
    done = CliRunner().invoke(cli, [*args, "--resume"])  # in this process: torch is imported already
    assert done.exit_code == 0, done.output
    final = rows(out)
    keys = [(r["op"], r["pass"], r["dtype"], r["shape"]) for r in final]
    assert len(keys) == len(set(keys))  # nothing measured twice
    import yaml

    from kernels.config import ModelArgs
    from kernels.profiler import default_grid

    grid = default_grid(ModelArgs.from_hf(yaml.safe_load(TINY)), "tiny")
    assert len(final) == len(grid) > partial  # nothing lost
    assert all(r["status"] == "ok" for r in final)
    assert f"{len(grid) - partial} point(s) measured this run" in done.output


def test_existing_file_without_resume_is_refused(tmp_path):
    out = tmp_path / "p.csv"
    out.write_text("# format: x\n")
    result = CliRunner().invoke(cli, ["profile", "--out", str(out), "--grid", "tiny"])
    assert result.exit_code == 2 and "--resume" in result.output


def test_check_timing_json_shape():
    result = CliRunner().invoke(cli, ["check-timing", str(ROOT / "profiles" / "cpu-deepseek-v2-lite.csv"), "--format", "json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    for backend in ("measured", "roofline"):
        assert {"median_abs_pct_error", "p90_abs_pct_error", "per_op"} <= set(r[backend])
    assert r["measured"]["median_abs_pct_error"] <= 10  # the committed CPU profile (issue 4 acceptance)


def test_check_timing_on_a_missing_file_exits_2(tmp_path):
    result = CliRunner().invoke(cli, ["check-timing", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "planner profile" in result.output
