"""Regression suite: the paper scenario's report, training and serving outputs pinned to 0.5%.

Separate from the paper-range tests (which check the physics against V2P's figures with wide bands):
these catch any unintended change in what the tool prints. After an intended change, regenerate with
`.venv/bin/python -m tests.test_golden` and say why in the commit.
"""

import json
import math

import pytest

from tests.conftest import PAPER_COMMANDS, ROOT, paper_output

GOLDEN = ROOT / "tests" / "golden"
SKIPPED = {"sim_wall_s", "samples", "timeline"}  # wall time varies; distributions are pinned by their percentiles
REL = 0.005


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


@pytest.mark.parametrize("name", list(PAPER_COMMANDS))
def test_paper_outputs_match_the_golden_files(name, paper_cli):
    want, got = leaves(json.loads((GOLDEN / f"paper-{name}.json").read_text())), leaves(paper_cli[name])
    assert set(got) == set(want)
    off = {k: (want[k], got[k]) for k in want
           if (isinstance(want[k], float) and not math.isclose(got[k], want[k], rel_tol=REL))
           or (not isinstance(want[k], float) and got[k] != want[k] and not
               (isinstance(want[k], int) and math.isclose(got[k], want[k], rel_tol=REL)))}
    assert off == {}


if __name__ == "__main__":
    for name in PAPER_COMMANDS:
        (GOLDEN / f"paper-{name}.json").write_text(json.dumps(stripped(paper_output(name)), indent=1) + "\n")
        print(f"wrote {GOLDEN / f'paper-{name}.json'}")
