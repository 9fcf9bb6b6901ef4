"""Runs a sweep's points on Dask (a LocalCluster on 127.0.0.1 by default, or the scheduler at
`--address`) or in a plain loop, journaling each result as it finishes so a run resumes where it stopped.

The journal is JSON lines: a header line (the sweep's name, objectives, constraints), then one line per
point. With `--out X.parquet` the journal is `X.parquet.jsonl` and the Parquet table is written at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from costmodel.app.pareto import pareto_front
from costmodel.app.sweep import evaluate
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.reading import MAX_DATA_BYTES, read_text, strict_dumps
from costmodel.inputs.sweep_spec import expand, load_sweep, point_id

ROW_KEYS = {"id", "label", "point", "status", "reason", "metrics"}
BATCH_TARGET_S = 0.05  # group quick points so Dask's ~2 ms per task stays small beside the work


def journal_path(out: Path) -> Path:
    return out if out.suffix == ".jsonl" else out.with_name(out.name + ".jsonl")


def read_journal(path: Path) -> tuple[dict, list[dict]]:
    """(header, rows) of a journal. A line that is not a row (garbage, a half-written last line) is
    skipped, reported on stderr with its line number, and left in the file; a file with no header line
    is not a journal (resume, best and the dashboard all refuse it)."""
    header, rows, seen = {}, [], set()
    for number, line in enumerate(read_text(path, MAX_DATA_BYTES).splitlines(), start=1):
        try:
            item = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError):
            item = None
        if isinstance(item, dict) and "sweep" in item and "id" not in item and not header:
            header = item
        elif isinstance(item, dict) and ROW_KEYS <= item.keys() and isinstance(item["metrics"], dict):
            if item["id"] not in seen:  # a point recorded twice counts once
                seen.add(item["id"])
                rows.append(item)
        elif line.strip():
            print(f"warning: {path}, line {number}: not a sweep result, skipped", file=sys.stderr)
    if not header:
        raise PlannerError("the file has no sweep header line, so it is not a journal `planner sweep` wrote",
                           file=str(path), line=1, fix="pass the .jsonl that `planner sweep` wrote (to --resume "
                           "into this path, move the file away or choose another --out)")
    return header, rows


def _identity(header: dict) -> tuple:
    return header.get("sweep"), header.get("points"), header.get("spec_sha")


def _reopen(journal: Path, header: dict) -> set[str]:
    """The ids already journaled, after checking the journal is this sweep's and ending it with a newline
    (a complete last row that lacks one is kept; a half-written one is left to be skipped)."""
    old, rows = read_journal(journal)
    if _identity(old) != _identity(header):
        raise PlannerError(f"the journal belongs to another sweep ({old.get('sweep')!r}, {old.get('points')} points)",
                           file=str(journal), field="--out", fix="choose another --out for this sweep")
    if not journal.read_bytes().endswith(b"\n"):
        with journal.open("a") as f:
            f.write("\n")
    return {r["id"] for r in rows}


def _lock(journal: Path) -> Path:
    """A lock file beside the journal, so that a second writer is refused rather than doubling rows."""
    lock = journal.with_name(journal.name + ".lock")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = lock.read_text().strip()
        if pid.isdigit() and _alive(int(pid)):
            raise PlannerError(f"another sweep (pid {pid}) is writing this journal", file=str(journal), field="--out",
                               fix="wait for it to finish, or choose another --out") from None
        lock.unlink(missing_ok=True)  # its writer is gone
        return _lock(journal)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def evaluate_batch(text: str, base: str, spec: dict, points: list[dict]) -> list[dict]:
    return [evaluate(text, base, spec, p) for p in points]


def run_sweep(path: Path, out: Path, *, address: str | None = None, sequential: bool = False, resume: bool = False,
              workers: int = 2, progress: Callable[[int, int], None] | None = None,
              stop_after: int | None = None) -> tuple[dict, list[dict]]:
    """Evaluate every point not yet in the journal; returns (header, all rows)."""
    spec, text, base = load_sweep(path)
    points = expand(spec)
    journal = journal_path(out)
    header = {"sweep": spec.name, "file": str(path), "kind": spec.kind,
              "spec_sha": hashlib.sha256(text.encode()).hexdigest()[:16],
              "objectives": [o.model_dump() for o in spec.objectives],
              "constraints": [c.model_dump() for c in spec.constraints], "points": len(points)}
    done: set[str] = set()
    if journal.exists() and journal.stat().st_size and not resume:
        raise PlannerError(f"{journal} exists", file=str(journal), field="--out",
                           fix="add --resume to continue it, or choose another --out")
    journal.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(journal)
    try:
        if journal.exists() and journal.stat().st_size:
            done = _reopen(journal, header)
        else:  # whole or not at all, so that a kill here leaves no half header for --resume to refuse
            fresh = journal.with_name(journal.name + ".new")
            fresh.write_text(strict_dumps(header) + "\n")
            os.replace(fresh, journal)
        _run_points(spec, text, base, points, [p for p in points if point_id(p) not in done], journal, sequential,
                    address, workers, progress, stop_after)
    finally:
        lock.unlink(missing_ok=True)
    _, rows = read_journal(journal)
    if out.suffix == ".parquet":
        write_parquet(rows, out)
    return header, rows


def _run_points(spec, text: str, base, points: list[dict], todo: list[dict], journal: Path, sequential: bool,
                address: str | None, workers: int, progress, stop_after: int | None) -> None:
    """Evaluate `todo`, appending each row to the journal as a whole line, flushed to disk."""
    spec_dict = spec.model_dump()
    finished = len(points) - len(todo)
    if progress:
        progress(finished, len(points))
    with journal.open("a") as f:
        def record(row: dict) -> None:
            nonlocal finished
            f.write(strict_dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            finished += 1
            if progress:
                progress(finished, len(points))

        if sequential or not todo:
            for i, p in enumerate(todo):
                if stop_after is not None and i >= stop_after:
                    break
                record(evaluate(text, str(base), spec_dict, p))
        else:
            _run_dask(todo, text, str(base), spec_dict, address, workers, record)


@contextmanager
def dask_client(address: str | None, workers: int):
    """A Dask client: of the scheduler at `address`, or of a local cluster of `workers` processes (closed
    afterwards). Sweeps and plans share it."""
    import tempfile

    import dask
    from dask.distributed import Client, LocalCluster

    dask.config.set({"temporary-directory": os.environ.get("DASK_TEMPORARY_DIRECTORY", tempfile.gettempdir()),
                     "distributed.worker.daemon": False})
    cluster = None
    if address:
        client = Client(address, timeout="10s")
    else:
        with _sigint_ignored():  # the workers inherit it: Ctrl-C reaches this process only, not five tracebacks
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0")  # loopback only, any free port
        client = Client(cluster)
    try:
        yield client
    finally:
        with _sigint_ignored():  # a second Ctrl-C does not leave the workers running
            client.close()
            if cluster is not None:
                cluster.close()


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while the block runs (in the main thread only, where signals can be set). A Python
    process started with SIGINT ignored keeps ignoring it, so the cluster's workers never see Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _run_dask(todo: list[dict], text: str, base: str, spec: dict, address: str | None, workers: int, record) -> None:
    from dask.distributed import as_completed

    with dask_client(address, workers) as client:
        # time one point here to size the batches: quick (static) points travel in groups
        t0 = time.perf_counter()
        record(evaluate(text, base, spec, todo[0]))
        one = time.perf_counter() - t0
        size = max(1, int(BATCH_TARGET_S / max(one, 1e-4)))
        batches = [todo[i:i + size] for i in range(1, len(todo), size)]
        futures = client.map(evaluate_batch, [text] * len(batches), [base] * len(batches), [spec] * len(batches),
                             batches, pure=False)
        for fut in as_completed(futures):
            for row in fut.result():
                record(row)


def write_parquet(rows: list[dict], out: Path) -> None:
    import pandas as pd

    flat = [{"id": r["id"], "label": r["label"], "status": r["status"], "reason": r["reason"],
             **{f"axis.{k}": v for k, v in r["point"].items()}, **r["metrics"]} for r in rows]
    pd.DataFrame(flat).to_parquet(out, index=False)


def summarise(header: dict, rows: list[dict]) -> dict:
    """Pareto front over the objectives and the best plan for each, among valid points."""
    ok = [r for r in rows if r["status"] == "ok"]
    objectives = [(o["metric"], o["goal"]) for o in header["objectives"]]
    pts = [{**r["metrics"], "label": r["label"], "id": r["id"]} for r in ok
           if all(m in r["metrics"] for m, _ in objectives)]
    front = pareto_front(pts, objectives)
    best = {}
    for metric, goal in objectives:
        if pts:
            pick = (min if goal == "min" else max)(pts, key=lambda p, m=metric: p[m])
            best[metric] = pick
    return {"points": len(rows), "valid": len(ok), "invalid": len(rows) - len(ok), "front": front, "best": best,
            "invalid_reasons": [f"{r['label']}: {r['reason']}" for r in rows if r["status"] != "ok"][:10]}
