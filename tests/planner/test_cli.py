"""Bad input: one message naming file, line and field; exit code 2; never a traceback."""

import json
import textwrap

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import cli
from tests.conftest import SCENARIOS

MODEL = """\
name: bad
attention: gqa
ffn: dense
vocab_size: 1000
hidden_size: 512
num_hidden_layers: 4
num_attention_heads: 8
num_key_value_heads: 2
intermediate_size: 1024
"""

SCENARIO = """\
name: s
variants:
  - name: v2
    model: deepseek-v2
    training:
      cluster: h800-1024
      parallelism: {pp: 16, ep: 8, dp: 64, micro_batches: 144}
      global_batch_seqs: 9216
"""

# (file text, expected field, expected line, words the message must contain)
BROKEN = [
    (MODEL.replace("hidden_size: 512", "hidden_sise: 512"), "hidden_sise", 5, "did you mean `hidden_size`"),
    (MODEL.replace("num_hidden_layers: 4", "num_hidden_layers: four"), "num_hidden_layers", 6, "integer"),
    (MODEL.replace("num_hidden_layers: 4", "num_hidden_layers: -4"), "num_hidden_layers", 6, "must be > 0"),
    (MODEL.replace("num_key_value_heads: 2", "num_key_value_heads: 3"), "num_key_value_heads", 8, "do not divide"),
    (MODEL.replace("num_attention_heads: 8", "num_attention_heads: 7").replace("num_key_value_heads: 2", "num_key_value_heads: 7"),
     "num_attention_heads", 7, "do not divide hidden_size"),
    (MODEL.replace("attention: gqa", "attention: flash"), "attention", 2, "one of"),
    (MODEL.replace("attention: gqa", "attention: mla"), "kv_lora_rank", 1, "required for attention: mla"),
    (MODEL.replace("intermediate_size: 1024\n", ""), "intermediate_size", 1, "required"),
    (MODEL + "  broken: [\n", None, 10, "malformed YAML"),
    (SCENARIO.replace("ep: 8", "ep: 7"), "variants.0.training.parallelism.ep", 7, "does not divide 160 routed experts"),
    (SCENARIO.replace("dp: 64", "dp: 32"), "variants.0.training.parallelism.dp", 7, "1024"),
    (SCENARIO.replace("model: deepseek-v2", "model: deepseek-v9"), "variants.0.model", 4, "no model named 'deepseek-v9'"),
    (SCENARIO.replace("cluster: h800-1024", "cluster: {gpu: h900, nodes: 128}"), "variants.0.training.cluster.gpu", 6, "no gpu named"),
    (SCENARIO.replace("global_batch_seqs: 9216", "global_batch_seqs: 9000"), "variants.0.training.global_batch_seqs", 8, "do not split"),
    (SCENARIO + "  - name: v2\n    model: deepseek-v2\n", "variants.1.name", 9, "duplicate"),
    (SCENARIO.replace("name: s\n", "name: s\nbaseline: nope\n"), "baseline", 2, "no variant named"),
    ("- just\n- a list\n", None, 1, "mapping"),
    ("colour: blue\n", None, 1, "cannot tell"),
    ("name: g\npeak_flops_per_s: {bf16: {value: 1.0e12}}\n", "peak_flops_per_s.bf16.source", 2, "required"),
]


@pytest.mark.parametrize("text, field, line, words", BROKEN)
def test_broken_file_exits_2_and_names_field(tmp_path, text, field, line, words):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    msg = result.output
    assert "Traceback" not in msg
    assert str(path) in msg and f"line {line}" in msg
    if field:
        assert f"field `{field}`" in msg
    assert words in msg
    assert "Fix:" in msg


def test_error_inside_referenced_file_names_that_file(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.yaml").write_text(MODEL.replace("hidden_size: 512", "hidden_size: 0"))
    scen = tmp_path / "s.yaml"
    scen.write_text("name: s\nvariants:\n  - name: a\n    model: mine\n")
    result = CliRunner().invoke(cli, ["report", str(scen)])
    assert result.exit_code == 2
    assert "models/mine.yaml, line 5" in result.output and "field `hidden_size`" in result.output


def test_report_refuses_broken_and_writes_nothing_to_stdout(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(SCENARIO.replace("ep: 8", "ep: 7"))
    result = CliRunner().invoke(cli, ["report", str(path), "--format", "json"])
    assert result.exit_code == 2 and result.stdout == ""


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=20,
)
keys = st.sampled_from(["name", "variants", "hidden_size", "attention", "ffn", "model", "gpu", "training",
                        "peak_flops_per_s", "prompt_tokens", "nodes", "num_hidden_layers", "parallelism"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(keys, yaml_values, max_size=6) | yaml_values, raw=st.text(max_size=60))
def test_arbitrary_yaml_never_tracebacks(tmp_path, doc, raw):
    for text in (yaml.safe_dump(doc), raw):
        path = tmp_path / "fuzz.yaml"
        path.write_text(text)
        result = CliRunner().invoke(cli, ["validate", str(path)])
        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_json_report_shape(tmp_path):

    result = CliRunner().invoke(cli, ["report", str(SCENARIOS / "deepseek-v2-paper.yaml"), "--format", "json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    assert rep["scenario"] == "deepseek-v2-paper" and rep["baseline"] == "deepseek-llm-67b"
    names = [v["name"] for v in rep["variants"]]
    assert names == ["deepseek-v2", "deepseek-llm-67b"]
    v2 = rep["variants"][0]
    for key in ("params_total", "params_active", "kv_cache_elements_per_token", "kv_cache_bytes_per_token",
                "train_flops_per_token"):
        assert key in v2
    kv = next(c for c in rep["comparisons"] if c["metric"] == "kv_cache_bytes_per_token")
    assert kv["variant"] == "deepseek-v2" and round(kv["change_pct"], 1) == -93.3


def test_table_report_shows_paper_numbers():

    result = CliRunner().invoke(cli, ["report", str(SCENARIOS / "deepseek-v2-paper.yaml")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "25.9 KB (-93.3%)" in result.output and "389.1 KB" in result.output


def test_bare_model_file_is_one_variant_at_checkpoint_precision():

    result = CliRunner().invoke(cli, ["report", str(SCENARIOS / "models" / "deepseek-v3.yaml"), "--format", "json"])
    rep = json.loads(result.stdout)
    (v3,) = rep["variants"]
    assert v3["weight_bits"] == 8 and v3["weight_bytes_total"] == v3["params_total"]  # FP8 checkpoint


def test_every_bundled_file_validates():

    files = [str(p) for p in SCENARIOS.rglob("*.yaml")]
    result = CliRunner().invoke(cli, ["validate", *files])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok:") == len(files)


def test_debug_flag_shows_traceback(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(textwrap.dedent(MODEL).replace("ffn: dense", "ffn: sparse"))
    result = CliRunner().invoke(cli, ["--debug", "report", str(path)])
    assert result.exit_code != 0 and result.exception is not None


def test_report_html_is_one_page_that_needs_no_server():
    """planner report --format html: the report table and the memory figures, plotly.js inline (no
    script fetched from anywhere), so the file opens as it is."""
    result = CliRunner().invoke(cli, ["report", str(SCENARIOS / "deepseek-v2-paper.yaml"), "--format", "html"])
    assert result.exit_code == 0, result.output
    page = result.stdout
    assert page.startswith("<!DOCTYPE html>") and "<td>25.9 KB (-93.3%)</td>" in page
    assert page.count('class="plotly-graph-div"') == 2  # training and serving memory (no --simulate)
    assert "<script src=" not in page.replace('<script type="text/javascript">', "") and len(page) > 3_000_000


def test_serve_progress_makes_one_task_per_variant_and_phase():
    """The table's progress bar: one task per (variant, phase) however often the simulator reports (a task
    per report made the table run 8x slower than JSON)."""
    from rich.progress import Progress

    from costmodel.app import study
    from planner.render import PhaseTasks

    bar = Progress(disable=True)
    calls = []
    tasks = PhaseTasks(bar)
    study.serve(study.open_study(SCENARIOS / "deepseek-v2-paper.yaml"), requests=400,
                progress=lambda *a: (calls.append(a), tasks(*a)))
    names = {v.name for v in study.open_study(SCENARIOS / "deepseek-v2-paper.yaml").scenario.variants if v.inference}
    assert len(calls) > len(bar.tasks)  # reported more often than there are tasks
    assert sorted(tasks.tasks) == sorted((n, p) for n in names for p in ("mixed", "decode", "prefill"))
    assert len(bar.tasks) == 3 * len(names)
