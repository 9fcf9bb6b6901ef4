"""`planner plan`: screen a plan's layouts on Dask (a local cluster, or a scheduler at --address), then
size, verify and recommend in this process (costmodel/app/plan.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from costmodel.app.plan import Layout, Screened, answer, checked_plan, layouts, screen
from costmodel.inputs.plan_spec import PlanSpec
from costmodel.inputs.specs import InferenceSpec
from planner.sweep_runner import dask_client

BATCHES_PER_WORKER = 4  # layouts travel in this many batches per worker: few round trips, even load


def screen_batch(plan: PlanSpec, engine: InferenceSpec, batch: list[Layout]) -> list[Screened]:
    """A Dask task: screen a batch of layouts."""
    return [screen(plan, engine, lay) for lay in batch]


def screen_all(plan: PlanSpec, engine: InferenceSpec, todo: list[Layout], *, sequential: bool, address: str | None,
               workers: int, progress: Callable[[int, int], None] | None = None) -> list[Screened]:
    """Every layout screened, in the layouts' order."""
    if sequential:
        out = []
        for lay in todo:
            out.append(screen(plan, engine, lay))
            if progress:
                progress(len(out), len(todo))
        return out
    from dask.distributed import as_completed  # Dask only when it runs: the rest of the CLI stays quick

    size = max(1, -(-len(todo) // (workers * BATCHES_PER_WORKER)))
    batches = [todo[i:i + size] for i in range(0, len(todo), size)]
    done: dict[Layout, Screened] = {}
    with dask_client(address, workers) as client:
        futures = client.map(screen_batch, [plan] * len(batches), [engine] * len(batches), batches, pure=False)
        for fut in as_completed(futures):
            done |= {s.layout: s for s in fut.result()}
            if progress:
                progress(len(done), len(todo))
    return [done[lay] for lay in todo]


def run_plan(path: Path, *, text: str | None = None, sequential: bool = False, address: str | None = None,
             workers: int = 2, progress: Callable[[int, int], None] | None = None,
             note: Callable[[str], None] | None = None) -> dict:
    """The plan file at `path` (or `text` as that file) screened, sized, verified and answered."""
    plan, engine = checked_plan(path, text)
    screened = screen_all(plan, engine, layouts(plan), sequential=sequential, address=address, workers=workers,
                          progress=progress)
    return {"file": str(path), **answer(plan, engine, screened, note)}
