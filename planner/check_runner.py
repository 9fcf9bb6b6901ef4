"""Runs `planner check-serving`'s points on Dask (the sweeps' local cluster, or the scheduler at `--address`)
or in this process, in batches of BATCH_POINTS so Dask's per-task cost stays small beside the work."""

from __future__ import annotations

from collections.abc import Callable

from costmodel.app.check_serving import check_points
from costmodel.inputs.measured_serving import MeasuredPoint
from planner.sweep_runner import dask_client

BATCH_POINTS = 4  # a point takes 0.02-2 s here: four a task keeps both workers busy to the end


def run_check(points: list[MeasuredPoint], *, address: str | None = None, sequential: bool = False,
              workers: int = 2, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Each point's result (check_serving.PointResult as a dict), in the points' order."""
    done: dict[str, dict] = {}

    def record(rows: list[dict]) -> None:
        done.update((r["id"], r) for r in rows)
        if progress:
            progress(len(done), len(points))

    batches = [points[i:i + BATCH_POINTS] for i in range(0, len(points), BATCH_POINTS)]
    if sequential or len(batches) <= 1:
        for batch in batches:
            record(check_points(batch))
    else:
        from dask.distributed import as_completed

        with dask_client(address, workers) as client:
            for fut in as_completed(client.map(check_points, batches, pure=False)):
                record(fut.result())
    return [done[p.id] for p in points]
