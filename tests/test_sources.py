"""Every number's source is one a user can follow: a key of docs/sources.md, a measurement of this
project, or a stated assumption; and nothing points outside the repository."""

import json
import re
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from planner.cli import cli
from tests.conftest import ROOT, SCENARIOS

KEYS = re.findall(r"^### `([^`]+)`", (ROOT / "docs" / "sources.md").read_text(), flags=re.M)
OUTSIDE = ("FACTS" + ".md", "../" + "shared")  # spelled apart so this file does not name them itself


def sources_in(tree, where=""):
    """(path, value) of every `source:` in a YAML tree."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            if k == "source" and isinstance(v, str):
                yield where, v
            else:
                yield from sources_in(v, f"{where}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from sources_in(v, f"{where}.{i}")


def followable(source: str) -> bool:
    """Starts with a key of docs/sources.md, or says it was measured here or assumed."""
    return source.startswith(("measured:", "ASSUMPTION", *KEYS))


def test_the_references_document_has_the_keys_the_code_uses():
    assert {"V2P", "V3P", "DEP", "FMLA", "DGEMM", "OII", "PD", "NV-H100", "NV-H200", "NV-B200", "NV-A100"} <= set(KEYS)
    assert len(KEYS) == len(set(KEYS))


@pytest.mark.parametrize("path", sorted(SCENARIOS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(SCENARIOS)))
def test_every_scenario_source_names_a_key(path):
    bad = [(where, s) for where, s in sources_in(yaml.safe_load(path.read_text())) if not followable(s)]
    assert bad == []


def tracked_files() -> list:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        return [ROOT / n for n in names]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but the environment's
        return [p for p in ROOT.rglob("*") if p.is_file() and not {".venv", ".git", ".cache"} & set(p.parts)]


def test_no_tracked_file_points_outside_the_repository():
    found = []
    for path in tracked_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # images, binaries
        found += [(str(path.relative_to(ROOT)), word) for word in OUTSIDE if word in text]
    assert found == []


def test_report_sources_lists_each_number_with_its_kind():
    result = CliRunner().invoke(cli, ["report", str(SCENARIOS / "deepseek-v2-paper.yaml"), "--sources", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    h800 = [r for r in rows if r["field"] == "training.cluster.gpu.price_usd_per_hour" and r["variant"] == "deepseek-v2"]
    assert h800 == [{"variant": "deepseek-v2", "field": "training.cluster.gpu.price_usd_per_hour", "value": 2.0,
                     "source": "V3P Table 1: $2 per H800 GPU-hour", "kind": "published"}]
    assert all(followable(r["source"]) for r in rows)
    assert {r["kind"] for r in rows if r["variant"] == "(cost model)"} == {"measured", "published"}
    wide = CliRunner().invoke(cli, ["report", str(SCENARIOS / "wide-ep-examples.yaml"), "--sources", "--format", "json"])
    assert "assumed" in {r["kind"] for r in json.loads(wide.stdout)}  # H200/B200 prices are assumptions
