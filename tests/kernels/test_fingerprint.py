"""Profiles carry the machine that measured them; another machine's profile is reported as foreign."""

import json
import re

from click.testing import CliRunner

from kernels.fingerprint import fingerprint_id, foreign, here
from planner.cli import cli
from tests.conftest import ROOT


def test_fingerprint_names_this_machine():
    mine = here("cpu", "float32")
    assert mine["device_name"] and mine["logical_cpus"] >= 1 and mine["torch"].startswith("2.13.0")
    assert re.fullmatch(r"[0-9a-f]{10}", fingerprint_id(mine))
    assert foreign(mine, mine) is None
    assert fingerprint_id({**mine, "platform": "elsewhere"}) == fingerprint_id(mine)  # not an identity field


def test_another_cpu_is_foreign_and_says_how():
    mine = here("cpu", "float32")
    theirs = {**mine, "device_name": "Some Other CPU 9000", "logical_cpus": 64}
    note = foreign(theirs, mine)
    assert note and "another machine" in note and "Some Other CPU 9000" in note and "64" in note
    assert fingerprint_id(theirs) != fingerprint_id(mine)
    assert "no machine fingerprint" in foreign({"device": "cpu", "dtype": "float32"}, mine)


def test_check_timing_reports_a_foreign_profile(tmp_path):
    text = (ROOT / "profiles" / "cpu-deepseek-v2-lite.csv").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("# device_name:")]
    foreign_csv = tmp_path / "foreign.csv"
    foreign_csv.write_text("# device_name: Some Other CPU 9000\n" + "\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["check-timing", str(foreign_csv), "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert "another machine" in out["machine"] and "Some Other CPU 9000" in out["machine"]
