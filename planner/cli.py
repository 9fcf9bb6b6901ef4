"""`planner`: the command line over costmodel (and, lazily, kernels)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from costmodel.errors import PlannerError


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
    """Check scenario, model, GPU, cluster or workload files."""
    from costmodel.loader import load_file

    failed = 0
    for f in files:
        try:
            kind, spec = load_file(f)
        except PlannerError as e:
            click.echo(f"error: {e}", err=True)
            failed += 1
            continue
        click.echo(f"ok: {f} ({kind} {getattr(spec, 'name', '')})")
    if failed:
        sys.exit(2)


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table")
def report(scenario: Path, fmt: str) -> None:
    """Parameters, FLOPs, KV cache and memory of each variant, with ratios to the baseline."""
    from costmodel.loader import load_scenario
    from costmodel.report import build_report
    from planner import render

    rep = build_report(load_scenario(scenario))
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
    from costmodel.hf_import import import_hf, to_yaml

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


def main() -> None:
    cli(prog_name="planner")


if __name__ == "__main__":
    main()
