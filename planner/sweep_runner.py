"""Runs a sweep's points on Dask (a LocalCluster on 127.0.0.1 by default, or the scheduler at
`--address`) or in a plain loop, journaling each result as it finishes so a run resumes where it stopped.

The journal is JSON lines: a header line (the sweep's name, objectives, constraints), then one line per
point. With `--out X.parquet` the journal is `X.parquet.jsonl` and the Parquet table is written at the end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from costmodel.errors import PlannerError
from costmodel.pareto import pareto_front
from costmodel.reading import strict_dumps
from costmodel.sweep import evaluate
from costmodel.sweep_spec import expand, load_sweep, point_id

BATCH_TARGET_S = 0.05  # group quick points so Dask's ~2 ms per task stays small beside the work


def journal_path(out: Path) -> Path:
    return out if out.suffix == ".jsonl" else out.with_name(out.name + ".jsonl")


def read_journal(path: Path) -> tuple[dict, list[dict]]:
    """(header, rows) of a journal; a half-written last line is ignored."""
    header, rows = {}, []
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "sweep" in item and "id" not in item:
            header = item
        else:
            rows.append(item)
    return header, rows


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
              "objectives": [o.model_dump() for o in spec.objectives],
              "constraints": [c.model_dump() for c in spec.constraints], "points": len(points)}
    done: set[str] = set()
    if journal.exists() and journal.stat().st_size:
        if not resume:
            raise PlannerError(f"{journal} exists", file=str(journal), field="--out",
                               fix="add --resume to continue it, or choose another --out")
        _, rows = read_journal(journal)
        done = {r["id"] for r in rows}
        text_end = journal.read_text()
        if not text_end.endswith("\n"):  # drop a half-written line before appending
            journal.write_text(text_end[: text_end.rfind("\n") + 1])
    else:
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal.write_text(strict_dumps(header) + "\n")
    todo = [p for p in points if point_id(p) not in done]
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
    _, rows = read_journal(journal)
    if out.suffix == ".parquet":
        write_parquet(rows, out)
    return header, rows


def _run_dask(todo: list[dict], text: str, base: str, spec: dict, address: str | None, workers: int, record) -> None:
    import tempfile

    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    dask.config.set({"temporary-directory": os.environ.get("DASK_TEMPORARY_DIRECTORY", tempfile.gettempdir()),
                     "distributed.worker.daemon": False})
    cluster = None
    if address:
        client = Client(address, timeout="10s")
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0")  # loopback only, any free port
        client = Client(cluster)
    try:
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
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


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
            "invalid_reasons": sorted({r["reason"] for r in rows if r["status"] != "ok"})[:10]}
