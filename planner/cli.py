"""`planner`: the command line over costmodel (and, lazily, kernels)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from costmodel import study
from costmodel.errors import PlannerError
from costmodel.hf_import import import_hf, to_yaml
from costmodel.loader import find_named, load_spec
from costmodel.profiles import load_profile
from costmodel.sweep_spec import load_sweep
from costmodel.timing import held_out_errors
from planner import render
from planner.sweep_runner import journal_path, read_journal, run_sweep, summarise
from planner.validate_sim import run as run_validation


class PlannerGroup(click.Group):
    """Turns PlannerError into one message and exit code 2; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PlannerError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=PlannerGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Plan what an MLA + MoE model costs to train and serve."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check scenario, model, GPU, cluster, workload or sweep files: every check `simulate` runs."""
    failed = 0
    for f in files:
        try:
            kind, name = study.validate_file(f)
        except PlannerError as e:
            click.echo(f"error: {e}", err=True)
            failed += 1
            continue
        click.echo(f"ok: {f} ({kind} {name})")
    if failed:
        sys.exit(2)


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table")
def report(scenario: Path, fmt: str) -> None:
    """Parameters, FLOPs, KV cache and memory of each variant, with ratios to the baseline."""
    rep = study.report(study.open_study(scenario))
    if fmt == "json":
        click.echo(json.dumps(rep.model_dump(), indent=2))
    elif fmt == "markdown":
        click.echo(render.report_markdown(rep))
    else:
        render.report_table(rep)


@cli.command("import-hf")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--name", help="Model name (default: the config file's folder or stem).")
def import_hf_cmd(config: Path, name: str | None) -> None:
    """Convert a HuggingFace config.json into a model YAML on stdout."""
    try:
        cfg = json.loads(config.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PlannerError(f"cannot read JSON ({e})", file=str(config), fix="pass a HuggingFace config.json") from None
    if not isinstance(cfg, dict):
        raise PlannerError("the JSON must be an object", file=str(config), fix="pass a HuggingFace config.json")
    name = name or (config.parent.name if config.stem == "config" and config.parent.name else config.stem)
    try:
        model, dropped = import_hf(cfg, name, source=str(config))
    except PlannerError as e:
        raise PlannerError(e.problem, file=str(config), field=e.field, fix=e.fix) from None
    click.echo(to_yaml(model, dropped, str(config)), nl=False)


@cli.group()
def simulate() -> None:
    """Discrete-event simulations of training and serving."""


def _emit(sc, results: list, fmt: str, comparisons, table) -> None:
    """Simulation results as JSON ({scenario, baseline, variants, comparisons}) or a table."""
    base = next((r for r in results if r.name == sc.baseline_variant.name), results[0])
    if fmt == "json":
        click.echo(json.dumps({"scenario": sc.name, "baseline": base.name, "variants": [r.model_dump() for r in results],
                               "comparisons": comparisons(results, base)}, indent=2))
    else:
        table(results, base, sc.name)


@simulate.command("train")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--trace", "trace", type=click.Path(path_type=Path), default=None,
              help="Write a Chrome-trace timeline of one step (opens in Perfetto); one file per variant.")
@click.option("--variant", "only", default=None, help="Simulate only this variant.")
def simulate_train(scenario: Path, fmt: str, trace: Path | None, only: str | None) -> None:
    """One training step per variant on its cluster, extrapolated to GPU-hours and dollars."""
    st = study.open_study(scenario)
    results = study.train(st, only=only, trace=trace)
    if trace is not None:
        for r in results:
            click.echo(f"trace: {study.trace_path_for(trace, r.name, len(results) > 1)}", err=True)
    _emit(st.scenario, results, fmt, render.train_comparisons, render.train_table)


@simulate.command("serve")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--variant", "only", default=None, help="Simulate only this variant.")
@click.option("--requests", type=int, default=None, help="Override the workload's request count.")
def simulate_serve(scenario: Path, fmt: str, only: str | None, requests: int | None) -> None:
    """Serve each variant's workload on its instance: throughput, TTFT, TPOT, KV use."""
    st = study.open_study(scenario)
    with render.progress_bar(transient=True, disable=fmt == "json") as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, phase: str, done: int, total: int) -> None:
            task = tasks.setdefault(name, bar.add_task(name, total=None))
            bar.update(task, description=f"{name} ({phase})", completed=done, total=total)

        results = study.serve(st, only=only, requests=requests, progress=progress)
    _emit(st.scenario, results, fmt, render.serve_comparisons, render.serve_table)


@cli.command("validate-sim")
@click.option("--profile", "profile_path", type=click.Path(path_type=Path),
              default=Path("profiles/cpu-deepseek-v2-lite.csv"), show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--requests", type=int, default=None, help="Requests to serve (default 24).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Also write the results (JSON, and a Markdown table beside it).")
def validate_sim(profile_path: Path, fmt: str, requests: int | None, out: Path | None) -> None:
    """Serve requests with the real kernels here, simulate the same run from the profile, compare."""

    profile = load_profile(profile_path)  # fail early, with exit 2, on a missing or bad profile
    if profile.header.get("device") != "cpu":
        raise PlannerError(f"the profile was measured on {profile.header.get('device')}, not this machine's CPU",
                           file=str(profile_path), fix="profile this machine first: planner profile --device cpu")
    with click.progressbar(length=1, label="serving with the real kernels, then simulating", file=sys.stderr) as bar:
        result = run_validation(profile_path, {"requests": requests} if requests else None)
        bar.update(1)
    table = render.validate_sim_markdown(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        out.with_suffix(".md").write_text(table + "\n")
    click.echo(json.dumps({k: v for k, v in result.items() if k != "per_iteration"}, indent=2) if fmt == "json" else table)


@cli.command("sweep")
@click.argument("sweep_file", type=click.Path(path_type=Path))
@click.option("--address", default=None, help="Dask scheduler to join (tcp://host:8786); default: a local cluster.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Results: .jsonl (journal) or .parquet; default results/SWEEP.jsonl")
@click.option("--resume", is_flag=True, help="Continue an interrupted sweep: finished points are kept.")
@click.option("--sequential", is_flag=True, help="Run in this process, one point after another (no Dask).")
@click.option("--workers", type=int, default=2, show_default=True, help="Local cluster worker processes.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def sweep_cmd(sweep_file: Path, address, out, resume, sequential, workers, fmt) -> None:
    """Expand a sweep file's grid and simulate every point on Dask; print the Pareto front."""
    spec, _, _ = load_sweep(sweep_file)  # errors exit 2 before any worker starts
    out = out or Path("results") / f"{spec.name}.jsonl"
    with render.progress_bar(disable=fmt == "json") as bar:
        task = bar.add_task(f"sweep {spec.name}", total=None)
        header, rows = run_sweep(sweep_file, out, address=address, sequential=sequential, resume=resume,
                                 workers=workers, progress=lambda done, total: bar.update(task, completed=done, total=total))
    summary = summarise(header, rows)
    if fmt == "json":
        click.echo(json.dumps({"results": str(out), **summary}, indent=2))
    else:
        render.sweep_summary(header, summary, str(out))


@cli.command("best")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def best_cmd(results: Path, fmt: str) -> None:
    """Summarise a sweep's results: the Pareto front and the best plan per objective."""
    path = results if results.suffix == ".jsonl" else journal_path(results)
    if not path.exists():
        raise PlannerError("no sweep journal here", file=str(path), fix="run `planner sweep FILE --out RESULTS` first")
    header, rows = read_journal(path)
    if not header:
        raise PlannerError("not a sweep journal (no header line)", file=str(path), line=1,
                           fix="pass the .jsonl that `planner sweep` wrote")
    summary = summarise(header, rows)
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        render.sweep_summary(header, summary, str(path))


@cli.command("profile")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--model", "model_name", default="deepseek-v2-lite", show_default=True,
              help="Model whose real layer widths are profiled (a name in scenarios/models or a file).")
@click.option("--ops", default="gemm,mla,attn,moe,ffn", show_default=True, help="Comma-separated operators.")
@click.option("--grid", type=click.Choice(["tiny", "default", "cuda"]), default=None,
              help="Shape grid (default: 'default' on cpu, 'cuda' on cuda).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=None,
              help="Default: float32 on cpu, bfloat16 on cuda.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Default: profiles/DEVICE-MODEL.csv")
@click.option("--resume", is_flag=True, help="Continue an interrupted run: finished points are kept.")
@click.option("--min-time-s", type=float, default=0.3, show_default=True, help="Least time spent per point.")
def profile_cmd(device, model_name, ops, grid, dtype, out, resume, min_time_s) -> None:
    """Time the kernels over a grid of shapes; each point is appended as it finishes."""
    path = Path(model_name) if model_name.endswith(".yaml") else find_named("model", model_name, Path.cwd() / "x")
    if path is None or not path.exists():
        raise PlannerError(f"no model named {model_name!r}", field="--model",
                           fix="use a name from scenarios/models (e.g. deepseek-v2-lite) or a model YAML path")
    spec = load_spec("model", path)
    import torch  # kernels are loaded only here: costmodel never imports torch

    from kernels.config import ModelArgs
    from kernels.profiler import default_grid
    from kernels.profiler import profile as run_profile

    if device == "cuda" and not torch.cuda.is_available():
        raise PlannerError("no CUDA device is visible", field="--device", fix="run on a GPU machine or use --device cpu")
    wanted = set(ops.split(","))
    unknown = wanted - {"gemm", "mla", "attn", "moe", "ffn"}
    if unknown:
        raise PlannerError(f"unknown operator(s) {sorted(unknown)}", field="--ops", fix="choose from gemm,mla,attn,moe,ffn")
    args = ModelArgs.from_hf(spec.model_dump())
    points = [p for p in default_grid(args, grid or ("cuda" if device == "cuda" else "default")) if p[0] in wanted]
    torch_dtype = getattr(torch, dtype or ("bfloat16" if device == "cuda" else "float32"))
    out = out or Path("profiles") / f"{device}-{spec.name}.csv"
    failed = measured = 0
    already = len(points) - _remaining(points, out, torch_dtype) if resume and out.exists() else 0
    try:
        with render.progress_bar() as bar:
            task = bar.add_task(f"{spec.name}", total=len(points), completed=already)
            for row in run_profile(points, out, device=device, dtype=torch_dtype, resume=resume,
                                   extra_header={"model": spec.name}, min_time_s=min_time_s):
                measured += 1
                failed += row["status"] != "ok"
                bar.update(task, advance=1, description=f"{row['op']} {row['pass']}")
    except FileExistsError as e:
        raise PlannerError(str(e), field="--out", fix="add --resume, or pick a new --out") from None
    except ValueError as e:
        raise PlannerError(str(e), field="--out", fix="profile into a new file") from None
    click.echo(f"{out}: {measured} point(s) measured this run, {failed} failed; {len(points)} in the grid")


@cli.command("check-comm")
@click.option("--gpu", "gpu_name", default="h800", show_default=True,
              help="GPU file whose NVLink and NIC give the links (DeepEP's tables were measured on H800).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def check_comm_cmd(gpu_name: str, fmt: str) -> None:
    """DeepEP's published all-to-all tables against this tool's communication model."""
    result = study.check_comm(gpu_name)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        render.comm_table(result)


@cli.command("check-timing")
@click.argument("profile_path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def check_timing(profile_path: Path, fmt: str) -> None:
    """Hold out a fifth of a profile's points; print the error of both timing backends on them."""
    result = held_out_errors(load_profile(profile_path))
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        render.timing_table(result, str(profile_path))


def _remaining(points, out: Path, dtype) -> int:
    from kernels.profiler import point_key, read_done  # kernels (torch) only for `planner profile`

    _, done = read_done(out)
    name = str(dtype).replace("torch.", "")
    return sum(point_key(op, p, name, s) not in done for op, p, s in points)


def main() -> None:
    cli(prog_name="planner")


if __name__ == "__main__":
    main()
