from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


PAPER = str(SCENARIOS / "deepseek-v2-paper.yaml")
PAPER_COMMANDS = {"report": ["report", PAPER, "--format", "json"],  # the golden files pin these outputs
                  "train": ["simulate", "train", PAPER, "--format", "json"],
                  "serve": ["simulate", "serve", PAPER, "--format", "json"]}


def paper_output(name: str) -> dict:
    """The JSON that PAPER_COMMANDS[name] prints."""
    import json

    from click.testing import CliRunner

    from planner.cli import cli

    result = CliRunner().invoke(cli, PAPER_COMMANDS[name])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def paper_cli() -> dict[str, dict]:
    """`planner report | simulate train | simulate serve` of the paper scenario as JSON, each run once a
    session (the serving runs take half a minute): the golden files and the dashboard compare with it."""
    return {name: paper_output(name) for name in PAPER_COMMANDS}


@pytest.fixture(scope="session")
def dashboard_cache(paper_cli) -> Path:
    """The dashboard's disk cache holding the paper scenario's serving results, as the CLI computed them:
    the AppTest pages and the browser tests' Streamlit server read them instead of simulating the same
    half-minute again (tests/dashboard/test_app.py checks that the dashboard's own computation gives the
    CLI's result)."""
    from dashboard import data

    text = (SCENARIOS / "deepseek-v2-paper.yaml").read_text()
    for v in paper_cli["serve"]["variants"]:
        data._disk(f"serve-{v['name']}", text, lambda v=v: v)
    return data.CACHE


@pytest.fixture(scope="session")
def models():
    from costmodel.inputs.loader import load_spec

    return {p.stem: load_spec("model", p) for p in (SCENARIOS / "models").glob("*.yaml")}


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="run the kernel tests on this torch device (cpu|cuda)")


@pytest.fixture(autouse=True)
def _torch_device(request):
    """With --device cuda, tensors and modules the kernel tests create land on the GPU."""
    device = request.config.getoption("--device")
    if device == "cpu" or not request.node.nodeid.startswith("tests/kernels"):
        yield
        return
    import torch

    torch.set_default_device(device)
    yield
    torch.set_default_device("cpu")


def validate_edit(tmp_path: Path, source: Path, old: str, new: str):
    """`planner validate` on a copy of `source` with `old` replaced by `new` once (which must be there)."""
    from click.testing import CliRunner

    from planner.cli import cli

    text = source.read_text()
    assert old in text, old
    path = tmp_path / source.name
    path.write_text(text.replace(old, new, 1))
    return CliRunner().invoke(cli, ["validate", str(path)])
