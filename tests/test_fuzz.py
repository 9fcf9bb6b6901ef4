"""Fuzzing the CLI with bad values (hypothesis): whatever a field of a scenario, model, workload, HF
config or sweep holds, `validate`, `report`, `simulate train`, `simulate serve`, `import-hf` and
`sweep` end with exit 0 or 2, never a traceback, and their JSON is strict RFC 8259 (no NaN or Infinity
tokens)."""

import json
from contextlib import contextmanager

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import cli
from tests.conftest import SCENARIOS

PAPER = yaml.safe_load((SCENARIOS / "deepseek-v2-paper.yaml").read_text())
MODEL = yaml.safe_load((SCENARIOS / "models" / "deepseek-v2-lite.yaml").read_text())

BAD_VALUES = st.one_of(
    st.sampled_from([0, -1, -5, True, False, None, "", "a", "1e12", [], {}, [1, 2], {"value": None},
                     float("inf"), float("-inf"), float("nan"), 10**30, 0.5, 1e-300, 2**63]),
    st.integers(min_value=-10**6, max_value=10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8))


def _paths(tree, prefix=()):
    """Every path to a leaf of a YAML tree."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, (*prefix, i))
    else:
        yield prefix


def _set(tree, path, value):
    tree = json.loads(json.dumps(tree))  # a deep copy of plain data
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def _strict(text: str):
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(f"non-standard {c}")))


def _dump(tree) -> str:
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def _runs_cleanly(args: list[str], json_out: bool) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 2), (args, result.output[-2000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if json_out and result.exit_code == 0:
        _strict(result.stdout)


@contextmanager
def beside_bundled(folder, tree):
    """The tree written as a YAML file in `folder` (beside the bundled files, where names and bases must
    resolve), removed afterwards."""
    f = folder / ".fuzz.yaml"
    try:
        f.write_text(_dump(tree))
        yield f
    finally:
        f.unlink(missing_ok=True)


FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(path=st.sampled_from(list(_paths(MODEL))), value=BAD_VALUES)
def test_any_model_field_value(tmp_path, path, value):
    with beside_bundled(tmp_path, _set(MODEL, path, value)) as f:
        for args, json_out in ((["validate", str(f)], False), (["report", str(f), "--format", "json"], True)):
            _runs_cleanly(args, json_out)


@FUZZ
@given(path=st.sampled_from([p for p in _paths(PAPER) if "training" in p or "inference" in p]), value=BAD_VALUES)
def test_any_scenario_field_value(path, value):
    with beside_bundled(SCENARIOS, _set(PAPER, path, value)) as f:
        _runs_cleanly(["validate", str(f)], json_out=False)
        if "training" in path:
            _runs_cleanly(["simulate", "train", str(f), "--format", "json", "--variant", PAPER["variants"][path[1]]["name"]],
                          json_out=True)


WORKLOAD = yaml.safe_load((SCENARIOS / "workloads" / "deepseek-chat-assumed.yaml").read_text())


SERVE_PAPER = {k: v for k, v in PAPER.items() if k != "baseline"} | {"variants": [dict(PAPER["variants"][0])]}
SERVE_PAPER["variants"][0].pop("training")
SERVE_PAPER["variants"][0]["inference"] = {**SERVE_PAPER["variants"][0]["inference"], "workload": "fuzz"}
FEW = settings(FUZZ, max_examples=30)  # each example simulates (about a second)


@FEW
@given(path=st.sampled_from(list(_paths(WORKLOAD))), value=BAD_VALUES)
def test_any_workload_field_value(tmp_path, path, value):
    """The fuzzed workload file is validated alone, then served by the paper's V2 instance (20 requests)."""
    (tmp_path / "workloads").mkdir(exist_ok=True)
    f = tmp_path / "workloads" / "fuzz.yaml"
    f.write_text(_dump(_set(WORKLOAD, path, value)))
    _runs_cleanly(["validate", str(f)], json_out=False)
    scenario = tmp_path / "serve.yaml"
    scenario.write_text(_dump(SERVE_PAPER))
    _runs_cleanly(["simulate", "serve", str(scenario), "--requests", "20", "--format", "json"], json_out=True)


HF_CONFIG = {"model_type": "deepseek_v2", **{k: v for k, v in MODEL.items() if k not in ("name", "source", "attention", "ffn")}}
SWEEP = yaml.safe_load((SCENARIOS / "sweeps" / "deepseek-v2-training.yaml").read_text())


@FUZZ
@given(path=st.sampled_from(list(_paths(HF_CONFIG))), value=BAD_VALUES)
def test_any_hf_config_value(tmp_path, path, value):
    f = tmp_path / "config.json"
    f.write_text(json.dumps(_set(HF_CONFIG, path, value)))  # Python's json writes NaN/Infinity, as HF files may
    _runs_cleanly(["import-hf", str(f)], json_out=False)


SMALL_SWEEP = {**SWEEP, "axes": {"gpu": ["h800"], "ep": [8]}}  # one point: each example runs the sweep


@FEW
@given(path=st.sampled_from(list(_paths(SWEEP)) + list(_paths(SMALL_SWEEP))), value=BAD_VALUES)
def test_any_sweep_field_value(tmp_path, path, value):
    """Fuzzed over the bundled sweep's fields (validated) and a one-point sweep's (validated and run)."""
    small = path in set(_paths(SMALL_SWEEP)) and path[0] == "axes"
    with beside_bundled(SCENARIOS / "sweeps", _set(SMALL_SWEEP if small else SWEEP, path, value)) as f:
        _runs_cleanly(["validate", str(f)], json_out=False)
        if small:
            _runs_cleanly(["sweep", str(f), "--sequential", "--out", str(tmp_path / "r.jsonl"), "--format", "json"],
                          json_out=True)


def test_the_unfuzzed_files_run(tmp_path):
    """The fuzz tests' starting points succeed, so their exit-2 outcomes come from the fuzzed value."""
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "fuzz.yaml").write_text(_dump(WORKLOAD))
    (tmp_path / "serve.yaml").write_text(_dump(SERVE_PAPER))
    result = CliRunner().invoke(cli, ["simulate", "serve", str(tmp_path / "serve.yaml"), "--requests", "20", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert _strict(result.stdout)["variants"][0]["saturation_requests"] == 20
    with beside_bundled(SCENARIOS / "sweeps", SMALL_SWEEP) as f:
        result = CliRunner().invoke(cli, ["sweep", str(f), "--sequential", "--out", str(tmp_path / "r.jsonl"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2  # the header and the one point
