"""`planner simulate serve` as a person runs it (a table, with the live progress bar drawn on a terminal)
against `--format json` (no bar), side by side in one run, alternating, the installed CLI in a fresh
process each time. Target: the table within 10% of JSON (issue 22: it was 8x slower, 267 s against 33 s,
because the bar made a new task on every progress report and redrew them all).

The terminal is a pseudo-terminal, so rich draws the bar exactly as in a shell. Writes
benchmarks/results/cli-serve-formats.json; exits 1 when the table run is over 10% slower.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLANNER = str(Path(sys.executable).parent / "planner")
SCENARIO = os.environ.get("SCENARIO", str(ROOT / "scenarios" / "deepseek-v2-paper.yaml"))
REPEATS = int(os.environ.get("REPEATS", "2"))
LIMIT = 1.10


def _drain(fd: int, sink: list[bytes]) -> None:
    """Read the terminal until it closes (a full pty would block the CLI)."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        sink.append(chunk)


def run_on_terminal(argv: list[str]) -> tuple[float, int, int]:
    """(seconds, exit code, bytes drawn) of the CLI with stdout and stderr on a pseudo-terminal."""
    master, slave = pty.openpty()
    sink: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, sink), daemon=True)
    reader.start()
    start = time.perf_counter()
    proc = subprocess.run([PLANNER, *argv], stdout=slave, stderr=slave, cwd=ROOT)
    seconds = time.perf_counter() - start
    os.close(slave)
    reader.join(timeout=5)
    os.close(master)
    return seconds, proc.returncode, sum(map(len, sink))


def main() -> None:
    runs: dict[str, list[float]] = {"table": [], "json": []}
    argv = {"table": ["simulate", "serve", SCENARIO], "json": ["simulate", "serve", SCENARIO, "--format", "json"]}
    for i in range(REPEATS):
        for fmt in ("json", "table") if i % 2 else ("table", "json"):
            seconds, rc, drawn = run_on_terminal(argv[fmt])
            if rc != 0:
                sys.exit(f"{fmt} run failed with exit code {rc}")
            runs[fmt].append(seconds)
            print(f"{fmt:>5}: {seconds:6.1f} s ({drawn:,} bytes drawn)", flush=True)
    table_s, json_s = min(runs["table"]), min(runs["json"])
    ratio = table_s / json_s
    result = {"scenario": os.path.relpath(SCENARIO, ROOT), "repeats": REPEATS, "table_s": runs["table"],
              "json_s": runs["json"], "best_table_over_json": round(ratio, 3), "limit": LIMIT}
    (ROOT / "benchmarks" / "results" / "cli-serve-formats.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"table / json (best of {REPEATS} each): {ratio:.3f} (limit {LIMIT})")
    if ratio > LIMIT:
        sys.exit(1)


if __name__ == "__main__":
    main()
