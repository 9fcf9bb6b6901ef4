"""Bad files end in one PlannerError naming the file (exit 2 from the CLI), quickly, never a traceback."""

import json
import math

import pytest
from click.testing import CliRunner

from costmodel.inputs.reading import strict_dumps
from planner.cli import cli
from tests.conftest import SCENARIOS

LITE = (SCENARIOS / "models" / "deepseek-v2-lite.yaml").read_text()
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)) + "description: *i\n"

CASES = {
    "utf16": (LITE.encode("utf-16"), "not UTF-8"),
    "latin1": ("source: caf\xe9\n".encode("latin-1") + LITE.encode(), "not UTF-8"),
    "deep": (("a: " + "[" * 3000 + "]" * 3000 + "\n").encode(), "nest"),
    "laughs": (LAUGHS.encode(), "aliases"),
    "duplicate key": ((LITE + "hidden_size: 1024\n").encode(), "appears twice"),
    "5000-digit integer": (LITE.replace("vocab_size: 102400", "vocab_size: " + "9" * 5000).encode(), "cannot be read"),
    "2 MB": (b"x: " + b"a" * 2_000_000 + b"\n", "over the 1,000,000"),
    "infinite width": (LITE.replace("hidden_size: 2048", "hidden_size: .inf").encode(), "hidden_size"),
    "boolean count": (LITE.replace("num_hidden_layers: 27", "num_hidden_layers: true").encode(), "num_hidden_layers"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_model_file_is_one_clear_error(case, tmp_path):
    body, expected = CASES[case]
    path = tmp_path / "model.yaml"
    path.write_bytes(body)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert expected in result.output and str(path) in result.output
    assert len(result.output) < 600  # one line: no value quoted whole


def test_a_directory_is_not_a_file(tmp_path):
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output


def test_json_output_is_strict():
    """NaN and infinities become null: the output parses under RFC 8259 (no NaN tokens)."""
    text = strict_dumps({"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard {c}")) == \
        {"a": None, "b": [None, 1.5], "c": {"d": None}}


@pytest.mark.parametrize("missing", ["num_local_experts", "intermediate_size"])
def test_import_hf_of_an_incomplete_mixtral_names_the_key(missing, tmp_path):
    cfg = {"model_type": "mixtral", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 32000, "num_local_experts": 8, "intermediate_size": 14336,
           "num_experts_per_tok": 2}
    del cfg[missing]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    result = CliRunner().invoke(cli, ["import-hf", str(path)])
    assert result.exit_code == 2 and missing in result.output


@pytest.mark.parametrize("value", ["0", "-5"])
def test_requests_must_be_positive(value):
    result = CliRunner().invoke(cli, ["simulate", "serve", str(SCENARIOS / "deepseek-v2-paper.yaml"), "--requests", value])
    assert result.exit_code == 2 and "--requests" in result.output


def _trace_scenario(tmp_path, rows: str):
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "t.yaml").write_text(
        "prompt_tokens: {value: 100}\noutput_tokens: {value: 10}\narrival: trace\ntrace_csv: t.csv\n")
    (tmp_path / "workloads" / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n" + rows)
    path = tmp_path / "s.yaml"
    path.write_text((SCENARIOS / "deepseek-v2-paper.yaml").read_text()
                    .replace("workload: deepseek-chat-assumed", "workload: t"))
    return path


@pytest.mark.parametrize("rows, expected", [
    ("", "no requests"), ("0,-5,10\n", "line 2: field `prompt_tokens`: '-5' is not a whole number above 0"),
    ("0,500000,10\n", "line 2: field `prompt_tokens`: 500,000 tokens is beyond the model's 163,840-token context"),
    ("x,1,1\n", "line 2: field `arrival_s`: 'x' is not a finite number of 0 or more"),
    ("0,1,1\n-1,10,10\n", "line 3: field `arrival_s`: '-1'"), ("0,1,1\n0,nan,1\n", "line 3: field `prompt_tokens`"),
    ("0,1,1\n0,1\n", "line 3: this row has 2 fields, the header 3"), ("inf,1,1\n", "field `arrival_s`: 'inf'")])
def test_a_bad_trace_is_one_clear_error(tmp_path, rows, expected):
    """The trace is found next to its workload file (as documented), and checked before any run."""
    path = _trace_scenario(tmp_path, rows)
    result = CliRunner().invoke(cli, ["simulate", "serve", str(path), "--variant", "deepseek-v2"])
    assert result.exit_code == 2 and expected in result.output and "workloads/t.csv" in result.output


def test_a_run_beyond_the_work_budget_is_refused_quickly(tmp_path):
    text = (SCENARIOS / "deepseek-v2-paper.yaml").read_text().replace(
        "      cluster: h800-node      # V2P §3.2.3: one node of 8 H800\n",
        "      cluster: h800-node      # V2P §3.2.3: one node of 8 H800\n      max_running: 1\n", 1)
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["simulate", "serve", str(path), "--variant", "deepseek-v2"])
    assert result.exit_code == 2 and "variants.0.inference.max_running" in result.output and "iterations" in result.output
    assert CliRunner().invoke(cli, ["validate", str(path)]).exit_code == 2  # validate runs the same check


@pytest.mark.parametrize("change, field", [("sigma: 0.8", "sigma: 50"), ("seed: 0", "seed: -1")])
def test_workload_values_out_of_range(tmp_path, change, field):
    text = (SCENARIOS / "workloads" / "deepseek-chat-assumed.yaml").read_text()
    assert change.split(":")[0] in text
    path = tmp_path / "w.yaml"
    path.write_text(text.replace(change, field, 1))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and field.split(":")[0] in result.output


def test_trace_output_into_a_directory_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["simulate", "train", str(SCENARIOS / "deepseek-v2-paper.yaml"), "--trace", str(tmp_path)])
    assert result.exit_code == 2 and "--trace" in result.output


def test_one_token_outputs_give_strict_json_with_undefined_ratios(tmp_path):
    """Outputs of one token: no TPOT and no decode throughput, so the ratio to the baseline's 0 tok/s is
    null with the reason, never NaN or a ZeroDivisionError."""
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "one.yaml").write_text("prompt_tokens: {value: 100}\noutput_tokens: {value: 1}\n"
                                                     "arrival: burst\nrequests: 50\n")
    path = tmp_path / "s.yaml"
    path.write_text((SCENARIOS / "deepseek-v2-paper.yaml").read_text().replace("workload: deepseek-chat-assumed", "workload: one"))
    result = CliRunner().invoke(cli, ["simulate", "serve", str(path), "--format", "json", "--requests", "50"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-standard {c}"))
    assert all(v["latency"]["tpot_p50_s"] is None for v in out["variants"])
    gen = [c for c in out["comparisons"] if c["metric"] == "max_generation_throughput_tok_s"]
    assert gen and gen[0]["baseline_value"] == 0 and gen[0]["ratio"] is None and "is 0" in gen[0]["undefined"]


# ------------------------------------------------------------------ files that are not regular files


@pytest.mark.parametrize("command", [["validate"], ["import-hf"], ["check-timing"], ["simulate", "serve"]])
@pytest.mark.parametrize("target", ["device", "fifo", "symlink to a device"])
def test_a_device_or_fifo_is_refused_without_reading_it(tmp_path, command, target):
    """/dev/zero never ends and reports size 0; a FIFO blocks its reader: both refused at once."""
    import os

    path = tmp_path / "x.yaml"
    if target == "device":
        path = "/dev/zero"
    elif target == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    result = CliRunner().invoke(cli, [*command, str(path)])
    assert result.exit_code == 2, result.output
    kind = "FIFO" if target == "fifo" else "character device"
    assert f"{path}: is not a regular file (a {kind})" in result.output and len(result.output.splitlines()) == 1


def test_a_file_is_read_only_up_to_its_limit(tmp_path):
    """At most limit + 1 bytes are read: a file one byte over is refused, one at the limit is read."""
    from costmodel.inputs.errors import PlannerError
    from costmodel.inputs.reading import read_bytes

    path = tmp_path / "f"
    path.write_bytes(b"a" * 101)
    with pytest.raises(PlannerError, match="over the 100 bytes"):
        read_bytes(path, 100)
    assert read_bytes(path, 101) == b"a" * 101


# ------------------------------------------------------------------------------ profile CSV schema

PROFILE_HEAD = "# peak_matmul_flops_per_s: 1e11\n# peak_copy_bytes_per_s: 5e10\n# device: cpu\n"
COLUMNS = "op,pass,dtype,shape,median_s,status\n"
ROW = 'gemm,fwd,float32,"{{""m"": 32, ""n"": 64, ""k"": 128}}",{t},ok\n'
BAD_PROFILES = {
    "header only": (PROFILE_HEAD + COLUMNS, "has no point measured ok"),
    "no peaks": (COLUMNS + ROW.format(t="1e-3"), "no finite positive `# peak_matmul_flops_per_s:`"),
    "ragged row": (PROFILE_HEAD + COLUMNS + ROW.format(t="1e-3") + "gemm,fwd\n", "line 6: this row has 2 fields, the header 6"),
    "missing column": (PROFILE_HEAD + "op,pass,dtype,shape,status\n", "lacks the column(s) median_s"),
    "zero time": (PROFILE_HEAD + COLUMNS + ROW.format(t="0"), "line 5: field `median_s`: '0' is not a finite number above 0"),
    "negative time": (PROFILE_HEAD + COLUMNS + ROW.format(t="-1e-3"), "field `median_s`: '-1e-3'"),
    "NaN time": (PROFILE_HEAD + COLUMNS + ROW.format(t="nan"), "field `median_s`: 'nan'"),
    "infinite time": (PROFILE_HEAD + COLUMNS + ROW.format(t="inf"), "field `median_s`: 'inf'"),
    "shape not an object": (PROFILE_HEAD + COLUMNS + "gemm,fwd,float32,[1],1e-3,ok\n", "field `shape`: '[1]' is not a JSON object"),
    "shape not JSON": (PROFILE_HEAD + COLUMNS + "gemm,fwd,float32,m=3,1e-3,ok\n", "field `shape`: 'm=3'"),
    "million rows": (PROFILE_HEAD + COLUMNS + ROW.format(t="1e-3") * 1_000_000, "over the 100,000 this kind of file may have"),
}


@pytest.mark.parametrize("case", list(BAD_PROFILES))
def test_a_bad_profile_is_one_line_naming_file_line_and_column(tmp_path, case):
    body, expected = BAD_PROFILES[case]
    path = tmp_path / "p.csv"
    path.write_text(body)
    for command in (["check-timing", str(path)], ["validate-sim", "--profile", str(path)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2, (command, result.output)
        assert result.output.startswith(f"error: {path}") and expected in result.output, result.output
        assert len(result.output.splitlines()) == 1


def test_a_good_profile_row_reads_as_written(tmp_path):
    from costmodel.inputs.profiles import load_profile

    path = tmp_path / "p.csv"
    path.write_text(PROFILE_HEAD + COLUMNS + ROW.format(t="1.5e-3") + 'gemm,fwd,float32,"{}",,failed\n')
    prof = load_profile(path)
    assert [(p.op, p.shape, p.median_s) for p in prof.points] == [("gemm", {"m": 32, "n": 64, "k": 128}, 1.5e-3)]
    assert prof.failed == 1 and prof.peak_flops_per_s == 1e11


def test_work_beyond_the_budget_is_refused_before_it_starts(tmp_path):
    """10M requests (it ran past 120 s), a 65-variant scenario, a million-row trace: each one line, exit 2."""
    result = CliRunner().invoke(cli, ["simulate", "serve", str(SCENARIOS / "deepseek-v2-paper.yaml"), "--requests", "10000000"])
    assert result.exit_code == 2 and "1<=x<=200000" in result.output
    many = tmp_path / "many.yaml"
    many.write_text("name: many\nvariants:\n" + "".join(f"  - {{name: v{i}, model: deepseek-v2-lite}}\n" for i in range(65)))
    result = CliRunner().invoke(cli, ["validate", str(many)])
    assert result.exit_code == 2 and "field `variants`" in result.output and "at most 64" in result.output, result.output
    path = _trace_scenario(tmp_path, "0,100,10\n" * 200_001)
    result = CliRunner().invoke(cli, ["simulate", "serve", str(path), "--variant", "deepseek-v2"])
    assert result.exit_code == 2 and "over the 200,000 this kind of file may have" in result.output


@pytest.mark.parametrize("written, value", [("2e1", 20.0), ("2E+1", 20.0), ("1.5e1", 15.0), ("20", 20)])
def test_a_number_is_a_number_in_every_yaml_notation(tmp_path, written, value):
    """YAML 1.1 reads 2e1 as a string; here, as in YAML 1.2 and JSON, it is the number 20."""
    from costmodel.inputs.loader import load_spec

    path = tmp_path / "w.yaml"
    path.write_text((SCENARIOS / "workloads" / "deepseek-chat-assumed.yaml").read_text()
                    .replace("rate_per_s: 8", f"rate_per_s: {written}"))
    assert load_spec("workload", path).rate_per_s == value
    path.write_text(path.read_text().replace(f"rate_per_s: {written}", "rate_per_s: true"))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2 and "rate_per_s" in result.output  # a boolean is never a number
