"""Regression suite: the paper scenario's report, training and serving outputs pinned to 0.5%.

Separate from the paper-range tests (which check the physics against V2P's figures with wide bands):
these catch any unintended change in what the tool prints. After an intended change, regenerate with
`.venv/bin/python -m tests.test_golden` and say why in the commit.
"""

import json
import math

import pytest
from click.testing import CliRunner

from planner.cli import cli
from tests.conftest import PAPER_COMMANDS, ROOT, SCENARIOS

GOLDEN = ROOT / "tests" / "golden"
PAPER = str(SCENARIOS / "deepseek-v2-paper.yaml")
COMMANDS = {"report": ["report", PAPER, "--format", "json"],
            "train": ["simulate", "train", PAPER, "--format", "json"],
            "serve": ["simulate", "serve", PAPER, "--format", "json"]}
SKIPPED = {"sim_wall_s", "samples", "timeline"}  # wall time varies; distributions are pinned by their percentiles
REL = 0.005


def run(name: str) -> dict:
    result = CliRunner().invoke(cli, COMMANDS[name])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def stripped(x):
    """x without the SKIPPED keys, at any depth."""
    if isinstance(x, dict):
        return {k: stripped(v) for k, v in x.items() if k not in SKIPPED}
    return [stripped(v) for v in x] if isinstance(x, list) else x


def leaves(x, path: str = "") -> dict[str, object]:
    """Every scalar of a JSON value by its path (lists by index), skipping SKIPPED keys."""
    if isinstance(x, dict):
        return {k2: v for k, val in x.items() if k not in SKIPPED for k2, v in leaves(val, f"{path}.{k}").items()}
    if isinstance(x, list):
        return {k2: v for i, val in enumerate(x) for k2, v in leaves(val, f"{path}[{i}]").items()}
    return {path: x}


def test_the_shared_paper_outputs_are_these_commands():
    """The session's paper outputs (conftest.paper_cli) run exactly the commands pinned here."""
    assert {name: [*c, PAPER, "--format", "json"] for name, c in PAPER_COMMANDS.items()} == COMMANDS


@pytest.mark.parametrize("name", list(COMMANDS))
def test_paper_outputs_match_the_golden_files(name, paper_cli):
    want, got = leaves(json.loads((GOLDEN / f"paper-{name}.json").read_text())), leaves(paper_cli[name])
    assert set(got) == set(want)
    off = {k: (want[k], got[k]) for k in want
           if (isinstance(want[k], float) and not math.isclose(got[k], want[k], rel_tol=REL))
           or (not isinstance(want[k], float) and got[k] != want[k] and not
               (isinstance(want[k], int) and math.isclose(got[k], want[k], rel_tol=REL)))}
    assert off == {}


if __name__ == "__main__":
    for name in COMMANDS:
        (GOLDEN / f"paper-{name}.json").write_text(json.dumps(stripped(run(name)), indent=1) + "\n")
        print(f"wrote {GOLDEN / f'paper-{name}.json'}")
