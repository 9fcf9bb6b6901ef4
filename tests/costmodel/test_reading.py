"""Bad files end in one PlannerError naming the file (exit 2 from the CLI), quickly, never a traceback."""

import json
import math

import pytest
from click.testing import CliRunner

from costmodel.reading import strict_dumps
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
