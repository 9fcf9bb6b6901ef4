"""Sweeps: Dask gives exactly the sequential results; an interrupted sweep resumes with every point once."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from costmodel.app.pareto import pareto_front
from costmodel.inputs.sweep_spec import expand, load_sweep, point_id
from planner.cli import cli
from planner.sweep_runner import read_journal, run_sweep
from tests.conftest import ROOT, SCENARIOS

SMALL = """\
name: small
base: {base}
variant: deepseek-v2
kind: train
axes:
  ep: [8, 16]
  pp: [8, 16]
  recompute: [selective, full]
objectives:
  - {{metric: cost_usd_per_trillion_tokens, goal: min}}
  - {{metric: days_total, goal: min}}
"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL.format(base=SCENARIOS / "deepseek-v2-paper.yaml"))
    return path


def stripped(rows):
    return sorted(({k: v for k, v in r.items() if k != "wall_s"} for r in rows), key=lambda r: r["id"])


def test_dask_equals_sequential(small, tmp_path):
    _, seq = run_sweep(small, tmp_path / "seq.jsonl", sequential=True)
    _, dask = run_sweep(small, tmp_path / "dask.jsonl", workers=2)
    assert len(seq) == 8 and stripped(dask) == stripped(seq)


def test_interrupted_sweep_resumes_with_every_point_once(small, tmp_path):
    out = tmp_path / "r.jsonl"
    cmd = [sys.executable, "-c", "from planner.cli import main; main()", "sweep", str(small), "--out", str(out),
           "--sequential"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(read_journal(out)[1]) < 3):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(read_journal(out)[1])
    assert 3 <= partial < 8
    result = CliRunner().invoke(cli, ["sweep", str(small), "--out", str(out), "--resume", "--format", "json"])
    assert result.exit_code == 0, result.output
    _, rows = read_journal(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 8  # nothing lost, nothing twice
    spec, _, _ = load_sweep(small)
    assert set(ids) == {point_id(p) for p in expand(spec)}


def test_existing_results_without_resume_are_refused(small, tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text('{"sweep": "small"}\n')
    result = CliRunner().invoke(cli, ["sweep", str(small), "--out", str(out), "--sequential"])
    assert result.exit_code == 2 and "--resume" in result.output


def test_invalid_points_are_dropped_with_their_reason(small, tmp_path):
    small.write_text(small.read_text().replace("recompute: [selective, full]", "recompute: [none]"))
    _, rows = run_sweep(small, tmp_path / "o.jsonl", sequential=True)
    assert any(r["status"] == "invalid" and "GB per GPU" in r["reason"] for r in rows)


def test_bad_sweep_file_exits_2(tmp_path, small):
    small.write_text(small.read_text().replace("ep: [8, 16]", "experts_per_gpu: [8]"))
    result = CliRunner().invoke(cli, ["sweep", str(small), "--sequential"])
    assert result.exit_code == 2 and "unknown axis 'experts_per_gpu'" in result.output
    small.write_text(SMALL.format(base=SCENARIOS / "deepseek-v2-paper.yaml").replace("ep: [8, 16]", "gpu: [h999]"))
    result = CliRunner().invoke(cli, ["sweep", str(small), "--sequential"])
    assert result.exit_code == 2 and "no gpu named 'h999'" in result.output


def test_best_and_parquet(small, tmp_path):
    out = tmp_path / "res.parquet"
    run_sweep(small, out, sequential=True)
    import pandas as pd

    table = pd.read_parquet(out)
    assert len(table) == 8 and {"axis.ep", "axis.pp", "cost_usd_per_trillion_tokens"} <= set(table.columns)
    result = CliRunner().invoke(cli, ["best", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["front"] and "cost_usd_per_trillion_tokens" in summary["best"]


def test_pareto_front_by_hand():
    pts = [{"c": 1, "t": 5}, {"c": 2, "t": 2}, {"c": 3, "t": 3}, {"c": 4, "t": 1}]
    assert pareto_front(pts, [("c", "min"), ("t", "min")]) == [pts[0], pts[1], pts[3]]


def test_complete_last_row_without_newline_is_kept_on_resume(small, tmp_path):
    out = tmp_path / "n.jsonl"
    run_sweep(small, out, sequential=True, stop_after=3)
    out.write_text(out.read_text().rstrip("\n"))  # killed just before the newline of a complete row
    _, rows = run_sweep(small, out, sequential=True, resume=True)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 8
    assert len([ln for ln in out.read_text().splitlines() if '"id"' in ln]) == 8  # every point once in the file


def test_corrupted_lines_are_reported_skipped_and_kept(small, tmp_path, capsys):
    out = tmp_path / "c.jsonl"
    run_sweep(small, out, sequential=True, stop_after=2)
    out.write_text(out.read_text() + "42\n{\"foo\": 1}\nnot json\n")
    _, rows = run_sweep(small, out, sequential=True, resume=True)
    assert len(rows) == 8
    err = capsys.readouterr().err
    assert "line 4: not a sweep result" in err and "line 6" in err
    assert "not json" in out.read_text()  # never removed from the file
    result = CliRunner().invoke(cli, ["best", str(out), "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["points"] == 8


def test_another_sweeps_journal_is_refused(small, tmp_path):
    out = tmp_path / "o.jsonl"
    run_sweep(small, out, sequential=True, stop_after=1)
    other = tmp_path / "other.yaml"
    other.write_text(small.read_text().replace("name: small", "name: other"))
    result = CliRunner().invoke(cli, ["sweep", str(other), "--out", str(out), "--resume", "--sequential"])
    assert result.exit_code == 2 and "another sweep" in result.output


def test_a_file_without_a_header_is_not_resumed(small, tmp_path):
    out = tmp_path / "notes.jsonl"
    out.write_text("42\n")
    result = CliRunner().invoke(cli, ["sweep", str(small), "--out", str(out), "--resume", "--sequential"])
    assert result.exit_code == 2 and "no sweep header" in result.output
    assert out.read_text() == "42\n"  # left as it was


def test_a_second_writer_is_refused(small, tmp_path):
    out = tmp_path / "l.jsonl"
    out.with_name(out.name + ".lock").write_text(str(os.getpid()))  # a live writer holds the journal
    result = CliRunner().invoke(cli, ["sweep", str(small), "--out", str(out), "--sequential"])
    assert result.exit_code == 2 and "another sweep" in result.output and "writing this journal" in result.output
    out.with_name(out.name + ".lock").write_text("999999999")  # its writer died: the stale lock is taken over
    assert len(run_sweep(small, out, sequential=True)[1]) == 8


@pytest.mark.parametrize("axis, values, expected", [
    ("tp", "[0]", "whole number"), ("tp", '["a"]', "whole number"), ("micro_batches", "[0]", "whole number"),
    ("pp", "[[1, 2]]", "whole number"), ("capacity_factor", "[.inf]", "finite"), ("pp", "[8, 8]", "twice")])
def test_bad_axis_values_are_refused_before_any_point_runs(tmp_path, small, axis, values, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(small.read_text().replace("  ep: [8, 16]", f"  ep: [8, 16]\n  {axis}: {values}")
                    .replace("  pp: [8, 16]\n", "" if axis == "pp" else "  pp: [8, 16]\n"))
    result = CliRunner().invoke(cli, ["sweep", str(path), "--out", str(tmp_path / "o.jsonl"), "--sequential"])
    assert result.exit_code == 2 and f"axes.{axis}" in result.output and expected in result.output
    assert not (tmp_path / "o.jsonl").exists()  # nothing written half-way


def test_an_unknown_objective_metric_is_refused(tmp_path, small):
    path = tmp_path / "bad.yaml"
    path.write_text(small.read_text().replace("metric: days_total", "metric: days_totl"))
    result = CliRunner().invoke(cli, ["sweep", str(path), "--out", str(tmp_path / "o.jsonl"), "--sequential"])
    assert result.exit_code == 2 and "objectives.1.metric" in result.output and "days_total" in result.output


def test_serve_sweep_points_still_saturate():
    """A serve sweep's `requests` shortens each point's workload run, not its saturated runs: the paper
    point's maximum generation throughput is the one `simulate serve` reports (83,435 tok/s)."""
    from costmodel.app.sweep import evaluate

    path = SCENARIOS / "sweeps" / "deepseek-v2-serving.yaml"
    spec, text, base = load_sweep(path)
    row = evaluate(text, str(base), spec.model_dump(), {"gpu": "h800", "kv_bits": 6})
    assert row["status"] == "ok", row
    assert row["metrics"]["max_generation_throughput_tok_s"] == pytest.approx(83_435, rel=0.005)


@pytest.mark.parametrize("change, field, expected", [
    (("variant: deepseek-v2", "variant: nope"), "variant", "has no variant 'nope'"),
    (("base: {base}", "base: small.yaml"), "base", "names this sweep file itself"),
    (("kind: train", "kind: serve\nrequests: 1e10"), "requests", "integer"),
    (("kind: train", "kind: serve\nrequests: true"), "requests", "valid integer"),
    (("  - {{metric: days_total, goal: min}}\n", "  - {{metric: days_total, goal: min}}\nconstraints:\n"
      "  - {{metric: days_total}}\n"), "constraints.0.max", "neither max nor min"),
    (("  recompute: [selective, full]", "  recompute: [selective, full]\n  global_batch_seqs: [" +
      ", ".join(str(4608 + 8 * i) for i in range(100)) + "]\n  seq_len: [" + ", ".join(str(1024 + i) for i in range(100))
      + "]\n  dispatch_bits: [" + ", ".join(str(1 + i) for i in range(20)) + "]"), "axes",
     "make 1,600,000 points"),
])
def test_sweep_file_mistakes_are_one_error_before_any_point_runs(tmp_path, change, field, expected):
    """Mistakes that used to surface per point (exit 0 with every point rejected) end the command at once."""
    path = tmp_path / "small.yaml"
    path.write_text(SMALL.replace(*change).format(base=SCENARIOS / "deepseek-v2-paper.yaml"))
    for args in (["sweep", str(path), "--out", str(tmp_path / "o.jsonl"), "--sequential"], ["validate", str(path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and f"field `{field}`" in result.output and expected in result.output, result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_the_sweep_budget_is_the_lower_of_points_and_work():
    from costmodel.inputs.budget import MAX_SWEEP_CORE_S, MAX_SWEEP_POINTS, SWEEP_POINT_CORE_S, largest_sweep

    assert largest_sweep("static") == MAX_SWEEP_POINTS
    assert largest_sweep("serve") == int(MAX_SWEEP_CORE_S / SWEEP_POINT_CORE_S["serve"]) == 30_857


def test_an_axis_number_in_exponent_notation_is_a_number(tmp_path):
    """YAML 1.1 reads 1e3 as a string; the sweep reads it as the number every other reader sees."""
    path = tmp_path / "serve.yaml"
    path.write_text((SCENARIOS / "sweeps" / "deepseek-v2-serving.yaml").read_text()
                    .replace("base: ../", f"base: {SCENARIOS}/").replace("kv_bits: [16, 8, 6]", "rate_per_s: [2e1, 1.5E+1]"))
    spec, _, _ = load_sweep(path)
    assert spec.axes["rate_per_s"] == [20.0, 15.0]


def test_ctrl_c_stops_a_dask_sweep_in_one_line_with_its_journal_intact(small, tmp_path):
    """SIGINT to the CLI (as Ctrl-C sends to the terminal's process group): one line, exit 130, no worker
    traceback, the workers gone, and the journal resumes to every point once."""
    out = tmp_path / "r.jsonl"
    cmd = [sys.executable, "-c", "from planner.cli import main; main()", "sweep", str(small), "--out", str(out)]
    # SIGINT at its default in the child, as in a terminal: a suite started in the background (`make test &`,
    # some CI runners) has SIGINT ignored, and a Python started so ignores it too, so the sweep ran to its end
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(read_journal(out)[1]) < 1):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # the whole group, workers included, as a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip() and "━" not in line and "sweep small" not in line
             and " - distributed." not in line]  # a cancelled task's log line from a worker, not a traceback
    assert len(lines) == 1 and lines[0].startswith("interrupted: ") and "--resume" in lines[0], err
    assert "Traceback" not in err
    for _ in range(100):  # the workers and the resource tracker exit within seconds of their parent
        alive = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not alive:
            break
        time.sleep(0.1)
    assert alive == [], f"worker processes left running: {alive}"
    result = CliRunner().invoke(cli, ["sweep", str(small), "--out", str(out), "--resume", "--format", "json"])
    assert result.exit_code == 0, result.output
    ids = [r["id"] for r in read_journal(out)[1]]
    assert len(ids) == len(set(ids)) == 8
