"""`planner`: the command line over costmodel (and, lazily, kernels)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from costmodel.app import check_serving, study
from costmodel.app.kernel_import import import_to_file
from costmodel.app.launch.emit import TARGETS, chosen, emit, out_problem, write
from costmodel.app.launch.importer import scenario_text
from costmodel.app.plan import checked_plan
from costmodel.inputs.budget import MAX_REQUESTS
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.hf_import import import_hf, to_yaml
from costmodel.inputs.loader import model_on_command_line
from costmodel.inputs.measured_serving import SPLITS
from costmodel.inputs.profiles import load_profile
from costmodel.inputs.reading import clip, read_text, strict_dumps
from costmodel.inputs.sweep_spec import load_sweep
from costmodel.timing.operators import held_out_errors
from planner import render
from planner import validate_sim as validation
from planner.check_runner import run_check
from planner.plan_runner import run_plan
from planner.sweep_runner import journal_path, read_journal, run_sweep, summarise


class PlannerGroup(click.Group):
    """Turns PlannerError, and click's usage errors (a bad option value, an unknown command), into one
    message and exit code 2; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PlannerError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except click.UsageError as e:
            _usage_error(e)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            _usage_error(e)


def _usage_error(e: click.UsageError) -> None:
    """click's usage error on one line (click prints three: usage, a help hint, the error)."""
    command = e.ctx.command_path if e.ctx else "planner"
    click.echo(f"error: {command}: {e.format_message()} Fix: see `{command} --help`.", err=True)
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
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown", "html"]), default="table",
              help="html: one page with the plotly figures inline, that opens without a server.")
@click.option("--simulate", is_flag=True, help="html: also simulate training and serving (the Figure 1(b) chart).")
@click.option("--sources", "with_sources", is_flag=True,
              help="List the sources behind the scenario's numbers instead (published, measured or assumed).")
def report(scenario: Path, fmt: str, simulate: bool, with_sources: bool) -> None:
    """Parameters, FLOPs, KV cache and memory of each variant, with ratios to the baseline."""
    st_ = study.open_study(scenario)
    if with_sources:
        rows = study.sources(st_)
        if fmt == "json":
            click.echo(strict_dumps(rows, indent=2))
        else:
            render.sources_table(rows, read_text(scenario).count("ASSUMPTION"))
        return
    rep = study.report(st_)
    if fmt == "html":
        sims = (_each_ok(study.train, st_, "training"), _each_ok(study.serve, st_, "inference")) if simulate else (None, None)
        click.echo(render.report_html(rep, *sims))
    elif fmt == "json":
        click.echo(strict_dumps(rep.model_dump(), indent=2))
    elif fmt == "markdown":
        click.echo(render.report_markdown(rep))
    else:
        render.report_table(rep)


def _each_ok(run, st_, part: str) -> list:
    """Results of the variants with `part` that can run (a variant that cannot is left out of the chart)."""
    return [r for _, r in study.each_variant(st_, run, part) if not isinstance(r, PlannerError)]


@cli.command("import-hf")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--name", help="Model name (default: the config file's folder or stem).")
def import_hf_cmd(config: Path, name: str | None) -> None:
    """Convert a HuggingFace config.json into a model YAML on stdout."""
    try:
        cfg = json.loads(read_text(config))
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise PlannerError(f"cannot read JSON ({clip(str(e), 120)})", file=str(config),
                           fix="pass a HuggingFace config.json") from None
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
        click.echo(strict_dumps({"scenario": sc.name, "baseline": base.name, "variants": [r.model_dump() for r in results],
                               "comparisons": comparisons(results, base)}, indent=2))
    else:
        table(results, base, sc.name)


@simulate.command("train")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--trace", "trace", type=click.Path(path_type=Path), default=None,
              help="Write a Chrome-trace timeline of one step (opens in Perfetto); one file per variant.")
@click.option("--variant", "only", default=None, help="Simulate only this variant.")
@click.option("--bands", "with_bands", is_flag=True,
              help="Add p10/p50/p90 bands from the timing model's per-operator uncertainty (16 more runs).")
def simulate_train(scenario: Path, fmt: str, trace: Path | None, only: str | None, with_bands: bool) -> None:
    """One training step per variant on its cluster, extrapolated to GPU-hours and dollars."""
    if trace is not None and (trace.is_dir() or not trace.parent.is_dir()):
        raise PlannerError(f"cannot write the trace to {trace}", field="--trace",
                           fix="give a file path in an existing folder, e.g. --trace step.json")
    st = study.open_study(scenario)
    with render.progress_bar(transient=True, disable=fmt == "json") as bar:
        bar.add_task("simulating training steps", total=None)  # elapsed time shows while it runs
        results = study.train(st, only=only, trace=trace, with_bands=with_bands)
    if trace is not None:
        for r in results:
            click.echo(f"trace: {study.trace_path_for(trace, r.name, len(results) > 1)}", err=True)
    _emit(st.scenario, results, fmt, render.train_comparisons, render.train_table)


@simulate.command("serve")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--variant", "only", default=None, help="Simulate only this variant.")
@click.option("--requests", type=click.IntRange(1, MAX_REQUESTS), default=None,
              help=f"Override the workload's request count (at most {MAX_REQUESTS:,} per run: the work budget).")
@click.option("--bands", "with_bands", is_flag=True,
              help="Add p10/p50/p90 bands from the timing model's per-operator uncertainty (8 more workload runs).")
def simulate_serve(scenario: Path, fmt: str, only: str | None, requests: int | None, with_bands: bool) -> None:
    """Serve each variant's workload on its instance: throughput, TTFT, TPOT, KV use."""
    st = study.open_study(scenario)
    with render.progress_bar(transient=True, disable=fmt == "json") as bar:
        results = study.serve(st, only=only, requests=requests, progress=render.PhaseTasks(bar), with_bands=with_bands)
    _emit(st.scenario, results, fmt, render.serve_comparisons, render.serve_table)


@cli.command("validate-sim")
@click.option("--profile", "profile_path", type=click.Path(path_type=Path), default=None,
              help="A CPU profile to simulate from (default: this machine's own, measured now if missing).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--requests", type=click.IntRange(1, 1000), default=None, help="Requests to serve (default 24).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Also write the results (JSON, and a Markdown table beside it).")
def validate_sim(profile_path: Path | None, fmt: str, requests: int | None, out: Path | None) -> None:
    """Serve requests with the real kernels here, simulate the same run from a profile, compare.
    Without --profile it uses this machine's own profile of the shapes the run needs, measuring it
    first (about a minute and a half on 2 cores) when this machine has none."""
    opts = {**validation.DEFAULTS, **({"requests": requests} if requests else {})}
    if profile_path is None:
        profile_path = validation.cached_profile_path()
        _measure_for_run(profile_path, opts)
    profile = load_profile(profile_path)  # fail early, with exit 2, on a missing or bad profile
    if profile.header.get("device") != "cpu":
        raise PlannerError(f"the profile was measured on {profile.header.get('device')}, not this machine's CPU",
                           file=str(profile_path), fix="profile this machine first: planner profile --device cpu")
    note = validation.foreign_profile(profile.header)
    if note:
        click.echo(f"warning: {profile_path}: {note}", err=True)
    with click.progressbar(length=1, label="serving with the real kernels, then simulating", file=sys.stderr) as bar:
        result = validation.run(profile_path, opts)
        bar.update(1)
    table = render.validate_sim_markdown(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(strict_dumps(result, indent=2))
        out.with_suffix(".md").write_text(table + "\n")
    click.echo(strict_dumps({k: v for k, v in result.items() if k != "per_iteration"}, indent=2) if fmt == "json" else table)


def _measure_for_run(path: Path, opts: dict) -> None:
    """This machine's profile of the shapes the run needs: the points it lacks are measured now."""
    with render.progress_bar() as bar:
        task = bar.add_task(f"profiling this machine into {path}", total=None)
        measured = validation.profile_for_run(path, opts, lambda i, n: bar.update(task, completed=i, total=n))
    if measured:
        click.echo(f"{path}: measured {measured} point(s) of this run's shapes on this machine", err=True)


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
    try:
        with render.progress_bar(disable=fmt == "json") as bar:
            task = bar.add_task(f"sweep {spec.name}", total=None)
            header, rows = run_sweep(sweep_file, out, address=address, sequential=sequential, resume=resume,
                                     workers=workers, progress=lambda done, total: bar.update(task, completed=done, total=total))
    except KeyboardInterrupt:
        _interrupted(journal_path(out), sweep_file, out)
    summary = summarise(header, rows)
    if fmt == "json":
        click.echo(strict_dumps({"results": str(out), **summary}, indent=2))
    else:
        render.sweep_summary(header, summary, str(out))


def _interrupted(journal: Path, sweep_file: Path, out: Path) -> None:
    """Ctrl-C during a sweep: one line saying what is kept and how to go on; exit code 130 (SIGINT)."""
    kept = sum(1 for line in journal.read_text().splitlines()[1:] if line.strip()) if journal.is_file() else 0
    click.echo(f"interrupted: {kept} point(s) are journaled in {journal}; continue with "
               f"`planner sweep {sweep_file} --out {out} --resume`", err=True)
    sys.exit(130)


@cli.command("plan")
@click.argument("plan_file", type=click.Path(path_type=Path))
@click.option("--address", default=None, help="Dask scheduler to join (tcp://host:8786); default: a local cluster.")
@click.option("--sequential", is_flag=True, help="Screen the layouts in this process (no Dask).")
@click.option("--workers", type=click.IntRange(1, 256), default=2, show_default=True, help="Local cluster worker processes.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--emit", "target", type=click.Choice(TARGETS), default=None,
              help="Write the deployment's launch files for this engine or platform (with --out).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="The new folder --emit writes.")
@click.option("--rank", type=click.IntRange(1), default=1, show_default=True,
              help="Which of the verified deployments --emit writes (1: the recommended one).")
@click.option("--model-path", default=None, help="The checkpoint the engines load (default: the model's HF repo).")
def plan_cmd(plan_file: Path, address, sequential, workers, fmt, target, out, rank, model_path) -> None:
    """The cheapest deployment of a plan file's model for its traffic within its latency targets."""
    if (target is None) != (out is None):
        raise PlannerError("--emit and --out go together", field="--emit" if target is None else "--out",
                           fix="give both (planner plan FILE --emit sglang --out DIR), or neither")
    if out is not None and out_problem(out):
        raise PlannerError(out_problem(out), field="--out", fix="choose a new folder, or remove that one")
    plan, engine = checked_plan(plan_file)  # errors exit 2 before any worker starts
    with render.progress_bar(disable=fmt == "json") as bar:
        task = bar.add_task("screening layouts", total=None)
        result = run_plan(plan_file, sequential=sequential, address=address, workers=workers,
                          progress=lambda done, total: bar.update(task, completed=done, total=total),
                          note=lambda text: bar.update(task, description=text))
    if target is not None:
        try:
            emitted = emit(chosen(plan, engine, result, target, rank, model_path), target)
        except PlannerError as e:  # a setting of the plan the engine cannot run: the plan file's
            raise PlannerError(e.problem, file=e.file or str(plan_file), field=e.field, fix=e.fix) from e
        paths = write(emitted, out)
    if fmt == "json":
        click.echo(strict_dumps(result, indent=2))
    else:
        render.plan_answer(result)
    if target is not None:
        render.emitted(out, paths, emitted, err=fmt == "json")  # JSON on stdout stays JSON


@cli.command("import-deployment")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Scenario file to write (default: stdout).")
def import_deployment_cmd(folder: Path, out: Path | None) -> None:
    """A folder `planner plan --emit` wrote, back into a scenario for `planner simulate serve`."""
    if out is not None and not out.parent.is_dir():
        raise PlannerError(f"{out.parent} is not a folder", field="--out", fix="write the scenario into an existing folder")
    text = scenario_text(folder)
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text)
    click.echo(f"wrote {out}: planner simulate serve {out}", err=True)


@cli.command("best")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def best_cmd(results: Path, fmt: str) -> None:
    """Summarise a sweep's results: the Pareto front and the best plan per objective."""
    path = results if results.suffix == ".jsonl" else journal_path(results)
    if not path.exists():
        raise PlannerError("no sweep journal here", file=str(path), fix="run `planner sweep FILE --out RESULTS` first")
    header, rows = read_journal(path)
    summary = summarise(header, rows)
    if fmt == "json":
        click.echo(strict_dumps(summary, indent=2))
    else:
        render.sweep_summary(header, summary, str(path))


@cli.command("profile")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--model", "model_name", default="deepseek-v2-lite", show_default=True,
              help="Model whose real layer widths are profiled (a name in scenarios/models or a file).")
@click.option("--ops", default="gemm,mla,attn,moe,ffn", show_default=True, help="Comma-separated operators.")
@click.option("--grid", type=click.Choice(["tiny", "default", "cuda"]), default=None,
              help="Shape grid (default: 'default' on cpu, 'cuda' on cuda).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float8_e4m3fn"]), default=None,
              help="Default: float32 on cpu, bfloat16 on cuda; float8_e4m3fn times FP8 GEMMs (cuda, --ops gemm).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Default: profiles/DEVICE-MODEL.csv")
@click.option("--resume", is_flag=True, help="Continue an interrupted run: finished points are kept.")
@click.option("--min-time-s", type=click.FloatRange(min=0.001), default=0.3, show_default=True,
              help="Least time spent per point.")
@click.option("--remeasure-s", type=click.FloatRange(min=0), default=40.0, show_default=True,
              help="Time, in all, for re-timing points whose rounds disagree (0: none, a quick profile).")
def profile_cmd(device, model_name, ops, grid, dtype, out, resume, min_time_s, remeasure_s) -> None:
    """Time the kernels over a grid of shapes; each point is appended as it finishes."""
    spec = model_on_command_line(model_name)
    import torch  # kernels are loaded only here: costmodel never imports torch

    from kernels.config import ModelArgs
    from kernels.profiler import default_grid
    from kernels.profiler import profile as run_profile

    if device == "cuda" and not torch.cuda.is_available():
        raise PlannerError("no CUDA device is visible", field="--device", fix="run on a GPU machine or use --device cpu")
    if dtype == "float8_e4m3fn" and (device != "cuda" or ops != "gemm"):
        raise PlannerError("FP8 is profiled for GEMMs on a CUDA device only", field="--dtype",
                           fix="pass --device cuda --ops gemm with --dtype float8_e4m3fn, or choose bfloat16")
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
                                   extra_header={"model": spec.name}, min_time_s=min_time_s,
                                   remeasure_budget_s=remeasure_s):
                measured += 1
                failed += row["status"] != "ok"
                bar.update(task, advance=1, description=f"{row['op']} {row['pass']}")
    except FileExistsError as e:
        raise PlannerError(str(e), field="--out", fix="add --resume, or pick a new --out") from None
    except ValueError as e:
        raise PlannerError(str(e), field="--out", fix="profile into a new file") from None
    click.echo(f"{out}: {measured} point(s) measured this run, {failed} failed; {len(points)} in the grid")


@cli.command("import-profile")
@click.argument("source", type=click.Choice(["aiconfigurator"]))
@click.option("--gpu", required=True, help="A GPU file's name (h200) or the database's (h200_sxm).")
@click.option("--engine", required=True, help="sglang, vllm or trtllm.")
@click.option("--version", "engine_version", default="current", show_default=True,
              help="The engine's version in the database, or `current` (the one the database names).")
@click.option("--model", "model_name", required=True, help="A name in scenarios/models or a model YAML path.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Default: profiles/aic-GPU-ENGINE-VERSION-MODEL.csv")
@click.option("--for", "purpose", type=click.Choice(["serving", "training"]), default="serving", show_default=True,
              help="training adds the GEMM rows a backward reads (the transposed widths, every reduction length).")
def import_profile_cmd(source: str, gpu: str, engine: str, engine_version: str, model_name: str,
                       out: Path | None, purpose: str) -> None:
    """Write the measured kernel rows a model needs, from NVIDIA's kernel database, as a profile CSV."""
    written, n_rows = import_to_file(gpu, engine, engine_version, model_name, out, purpose)
    click.echo(f"{written}: {n_rows} measured rows")


@cli.command("check-serving")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(list(SPLITS)), default=None,
              help="The shipped sample's dev rows (sha1(id) not divisible by 4: to study; its default) or test rows "
                   "(the rest: to report only), or all. Default for your own files: all.")
@click.option("--model", "model_re", default=None, help="Only model paths matching this regex, e.g. 'deepseek|kimi'.")
@click.option("--gpu", default=None, help="Only this system, e.g. h200_sxm.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "html"]), default="table",
              help="html: one page with the summary and the predicted-against-measured figures.")
@click.option("--address", default=None, help="Dask scheduler to join (tcp://host:8786); default: a local cluster.")
@click.option("--sequential", is_flag=True, help="Run in this process, one point after another (no Dask).")
@click.option("--workers", type=click.IntRange(1, 256), default=2, show_default=True, help="Local cluster worker processes.")
@click.option("--per-point/--no-per-point", default=None,
              help=f"The table lists every point (default: when {render.PER_POINT_MAX} or fewer).")
def check_serving_cmd(source: Path, split: str | None, model_re: str | None, gpu: str | None, fmt: str, address,
                      sequential, workers, per_point: bool | None) -> None:
    """Replay measured serving points and report the predicted TTFT and TPOT against the measured ones.

    SOURCE: `aiconfigurator` (NVIDIA's silicon sample, shipped with the kernel database), a CSV of its
    columns, or a benchmark's result (`vllm bench serve --save-result` JSON, `sglang.bench_serving
    --output-file` JSONL) with a YAML sidecar of the same name: model (ORG/NAME or a bundled model),
    gpu (e.g. h200_sxm), engine (sglang | vllm | trtllm), layout ({tp, attention_dp, moe_tp, moe_ep}),
    and optionally engine_version, precision (fp4 | fp8 | bf16), isl, osl, concurrency."""
    split = split or check_serving.default_split(source)
    points = check_serving.select(check_serving.read_input(source), split, model_re, gpu)
    if not points:
        raise PlannerError(f"no point of {source} is in split {split!r} with those filters", field="--model/--gpu",
                           fix="widen --model or --gpu, or use --split all")
    with render.progress_bar(disable=fmt != "table") as bar:
        task = bar.add_task(f"check-serving {split}: {len(points)} points", total=len(points))
        rows = run_check(points, address=address, sequential=sequential, workers=workers,
                         progress=lambda done, total: bar.update(task, completed=done, total=total))
    summary = check_serving.summarise(rows)
    if fmt == "json":
        click.echo(strict_dumps({"source": str(source), "split": split, "points": rows, "summary": summary}, indent=2))
    elif fmt == "html":
        click.echo(render.check_serving_html(str(source), split, rows, summary))
    else:
        listed = per_point if per_point is not None else len(rows) <= render.PER_POINT_MAX
        render.check_serving_table(str(source), split, summary, rows if listed else None)


@cli.command("check-comm")
@click.option("--gpu", "gpu_name", default="h800", show_default=True,
              help="GPU file for the domain and database tables: its NVLink domain (nvlink_domain_gpus), links and "
                   "kernel database. DeepEP's published tables are always checked on H800's links, where they were measured.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def check_comm_cmd(gpu_name: str, fmt: str) -> None:
    """DeepEP's published all-to-all tables against this tool's communication model; then one part's EP groups
    over its NVLink domains, and the kernel database's measurements of that part."""
    result = study.check_comm(gpu_name)
    if fmt == "json":
        click.echo(strict_dumps(result, indent=2))
    else:
        render.comm_table(result)


@cli.command("check-timing")
@click.argument("profile_path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def check_timing(profile_path: Path, fmt: str) -> None:
    """Hold out a fifth of a profile's points; print the error of both timing backends on them, and
    whether the profile was measured on this machine."""
    profile = load_profile(profile_path)
    result = held_out_errors(profile)
    result["machine"] = validation.foreign_profile(profile.header) or "this machine"
    if result["machine"] != "this machine":
        click.echo(f"note: {profile_path}: {result['machine']}", err=True)
    if fmt == "json":
        click.echo(strict_dumps(result, indent=2))
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
