"""Human units and tables for the CLI. SI inside the code; KB = 1000 B as in V2P Figure 1."""

from __future__ import annotations

import html
import json
import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from charts import figures  # pure plotly builders, shared with the dashboard
from costmodel.app import check_serving
from costmodel.counts.report import ScenarioReport, compare

PIPE_WIDTH = 200  # columns of a table written to a file or a pipe: rich's 80 would fold every wide table


def stdout_console() -> Console:
    """The console of a command's result: the terminal's width, or PIPE_WIDTH when stdout is redirected
    (COLUMNS, when set, wins as rich reads it)."""
    console = Console()
    return console if console.is_terminal or "COLUMNS" in os.environ else Console(width=PIPE_WIDTH, soft_wrap=True)


def progress_bar(**kwargs) -> Progress:
    """The one progress bar of long commands (profile, simulate serve, sweep, validate-sim): done/total,
    elapsed, ETA; on stderr, so that stdout stays the command's result (JSON included)."""
    kwargs.setdefault("console", Console(stderr=True))
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), **kwargs)


class PhaseTasks:
    """Progress of `simulate serve`: one task per (variant, phase), made on its first report. Each
    refresh draws every task, so a task per call (as before) made the table run 8x slower than JSON."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[tuple[str, str], int] = {}

    def __call__(self, name: str, phase: str, done: int, total: int) -> None:
        key = (name, phase)
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(f"{name} ({phase})", total=total)
        self.bar.update(self.tasks[key], completed=done, total=total)


def human(value: float, unit: str) -> str:
    if unit == "params":
        return f"{value / 1e9:.2f}B" if value >= 1e9 else f"{value / 1e6:.1f}M"
    if unit == "flops":
        return f"{value / 1e9:.1f} GFLOP"
    if unit == "bytes":
        for scale, name in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
            if value >= scale:
                return f"{value / scale:.1f} {name}"
        return f"{value:.0f} B"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:g}"


# (label, field, unit) rows of the report table; ratios shown for the compared metrics
ROWS = (
    ("attention / FFN", None, None),
    ("params total", "params_total", "params"),
    ("params active (no input emb.)", "params_active", "params"),
    ("KV cache elements / token", "kv_cache_elements_per_token", "count"),
    ("KV cache bits / element", "kv_cache_bits", "plain"),
    ("KV cache / token", "kv_cache_bytes_per_token", "bytes"),
    ("KV cache as GQA groups", "kv_cache_equivalent_gqa_groups", "plain"),
    ("train FLOPs / token", "train_flops_per_token", "flops"),
    ("weights (serving bits)", "weight_bytes_total", "bytes"),
)


def _cells(rep: ScenarioReport) -> list[tuple[str, list[str]]]:
    ratio = {(c.variant, c.metric): c.change_pct for c in rep.comparisons if c.change_pct is not None}
    rows = []
    for label, field, unit in ROWS:
        cells = []
        for v in rep.variants:
            if field is None:
                cells.append(f"{v.attention} / {v.ffn}")
                continue
            text = human(getattr(v, field), unit)
            if (v.name, field) in ratio:
                text += f" ({ratio[v.name, field]:+.1f}%)"
            cells.append(text)
        rows.append((label, cells))
    for label, key in (("train memory / GPU", "train_memory"), ("serving weights / GPU", "serving_memory")):
        cells = []
        for v in rep.variants:
            mem = getattr(v, key)
            if mem is None:
                cells.append("-")
            elif key == "train_memory":
                fits = "fits" if mem["fits"] else "DOES NOT FIT"
                cells.append(f"{human(mem['total_bytes'], 'bytes')} of {human(mem['capacity_bytes'], 'bytes')} ({fits})")
            else:
                cells.append(f"{human(mem['weights_bytes'], 'bytes')}; KV room {mem['kv_capacity_tokens'] / 1e6:.2f}M tok")
        rows.append((label, cells))
    return rows


def _header(rep: ScenarioReport) -> list[str]:
    return [v.name + (" (baseline)" if v.name == rep.baseline else "") for v in rep.variants]


def report_table(rep: ScenarioReport, console: Console | None = None) -> None:
    console = console or stdout_console()
    table = Table(title=f"{rep.scenario}: ratios vs {rep.baseline}", title_justify="left")
    table.add_column("metric")
    for h in _header(rep):
        table.add_column(h, justify="right")
    for label, cells in _cells(rep):
        table.add_row(label, *cells)
    console.print(table)


def report_markdown(rep: ScenarioReport) -> str:
    head = ["metric", *_header(rep)]
    lines = [f"### {rep.scenario} (ratios vs {rep.baseline})", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in _cells(rep)]
    return "\n".join(lines)


HTML_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#1f2937}"
              "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d1d5db;padding:4px 10px;"
              "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f4f6}")


def html_table(header, rows) -> str:
    """A header row and rows of cells as one escaped HTML table."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def report_html(rep: ScenarioReport, train: list | None = None, serve: list | None = None) -> str:
    """The report as one HTML page that opens without a server: the table, then plotly figures with
    plotly.js inline (training and serving memory per GPU; with `train` and `serve` results, the
    Figure 1(b) comparison of GPU-hours, KV cache and maximum generation throughput)."""
    esc = html.escape
    table = html_table(["metric", *_header(rep)], [[label, *cells] for label, cells in _cells(rep)])
    figs = _report_figures(rep, train, serve)
    parts = [f"<h2>{esc(title)}</h2>" + fig.to_html(full_html=False, include_plotlyjs=i == 0)
             for i, (title, fig) in enumerate(figs)]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(rep.scenario)}</title>"
            f"<style>{HTML_STYLE}</style></head><body><h1>{esc(rep.scenario)}</h1><p>{esc(rep.description)}</p>"
            f"<p>Ratios against {esc(rep.baseline)}. Made by moe-planner (planner report --format html).</p>"
            f"{table}{''.join(parts)}</body></html>")


def _report_figures(rep: ScenarioReport, train: list | None, serve: list | None) -> list[tuple[str, object]]:
    names = [v.name for v in rep.variants]
    out = []
    if train is not None and serve is not None:
        t, s = {r.name: r for r in train}, {r.name: r for r in serve}
        out.append(("Training cost, KV cache and maximum generation throughput", figures.plot_overview(
            names, [t[n].gpu_hours_per_trillion_tokens / 1e3 if n in t else None for n in names],
            [v.kv_cache_bytes_per_token / 1e3 for v in rep.variants],
            [s[n].max_generation_throughput_tok_s if n in s else None for n in names], rep.baseline)))
    mem = [v for v in rep.variants if v.train_memory]
    if mem:
        parts = {k: [v.train_memory[f"{k}_bytes"] for v in mem] for k in ("weights", "grads", "optimizer", "activations")}
        out.append(("Training memory per GPU (busiest stage)", figures.plot_memory(
            [v.name for v in mem], parts, [v.train_memory["capacity_bytes"] for v in mem])))
    smem = [v for v in rep.variants if v.serving_memory]
    if smem:
        out.append(("Serving memory per GPU", figures.plot_serving_memory(
            [v.name for v in smem], [v.serving_memory["weights_bytes"] for v in smem],
            [v.serving_memory["kv_budget_bytes"] for v in smem], [v.serving_memory["capacity_bytes"] for v in smem])))
    return out


def timing_table(result: dict, title: str, console: Console | None = None) -> None:
    """Held-out absolute % errors of the measured and roofline backends, per operator and overall."""
    console = console or stdout_console()
    table = Table(title=f"{title}: held-out error ({result['held_out_points']} of "
                        f"{result['held_out_points'] + result['train_points']} points)", title_justify="left")
    for col in ("operator", "measured median", "measured p90", "roofline median", "roofline p90", "points"):
        table.add_column(col, justify="left" if col == "operator" else "right")
    ops = sorted(set(result["measured"]["per_op"]) | set(result["roofline"]["per_op"]))

    def pct(d: dict | None, key: str) -> str:
        return "-" if not d or d.get(key) is None else f"{d[key]:.1f}%"

    for op in ops:
        m, r = result["measured"]["per_op"].get(op), result["roofline"]["per_op"].get(op)
        table.add_row(op, pct(m, "median_abs_pct_error"), pct(m, "p90_abs_pct_error"),
                      pct(r, "median_abs_pct_error"), pct(r, "p90_abs_pct_error"), str((r or m)["points"]))
    m, r = result["measured"], result["roofline"]
    table.add_row("overall", pct(m, "median_abs_pct_error"), pct(m, "p90_abs_pct_error"),
                  pct(r, "median_abs_pct_error"), pct(r, "p90_abs_pct_error"), str(r["points"]), style="bold")
    for part, label in (("inside_range", "  inside the curves' sizes"), ("beyond_range", "  beyond them")):
        mi, ri = m[part], r[part]
        table.add_row(label, pct(mi, "median_abs_pct_error"), pct(mi, "p90_abs_pct_error"),
                      pct(ri, "median_abs_pct_error"), pct(ri, "p90_abs_pct_error"), str(ri["points"]))
    console.print(table)
    console.print(f"machine: {result.get('machine', 'unknown')}", style="dim")


MEMORY_PARTS = ("weights_bytes", "grads_bytes", "optimizer_bytes", "activations_bytes")
TRAIN_ROWS = (
    ("GPUs", "num_gpus", "count"),
    ("step time", "step_time_s", "s"),
    ("tokens / s / GPU", "tokens_per_s_per_gpu", "count"),
    ("MFU", "mfu", "pct"),
    ("pipeline bubble", "bubble_fraction", "pct"),
    ("compute / step (busiest stage)", "compute_s", "s"),
    ("communication / step", "comm_s", "s"),
    ("exposed communication / step", "exposed_comm_s", "s"),
    ("  of the step", "exposed_comm_fraction", "pct"),
    ("peak memory / GPU", "peak_memory_bytes_per_gpu", "bytes"),
    ("  weights / grads / optimizer / activations", "memory", "mem"),
    ("GPU-hours / trillion tokens", "gpu_hours_per_trillion_tokens", "kilo"),
    ("$ / trillion tokens", "cost_usd_per_trillion_tokens", "usd"),
    ("whole run: GPU-hours", "gpu_hours_total", "kilo"),
    ("  of which the batch ramp adds", "ramp_gpu_hours", "kilo"),
    ("whole run: $", "cost_usd_total", "usd"),
    ("whole run: days", "days_total", "plain"),
)


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{1e3 * value:.1f} ms"
    if unit == "pct":
        return f"{100 * value:.1f}%"
    if unit == "kilo":
        return f"{value / 1e3:,.1f}K"
    if unit == "usd":
        return f"${value / 1e6:,.2f}M"
    if unit == "plain":
        return f"{value:,.1f}"
    return human(value, unit)


TRAIN_COMPARED = ("gpu_hours_per_trillion_tokens", "cost_usd_per_trillion_tokens", "tokens_per_s_per_gpu")
SERVE_COMPARED = ("max_generation_throughput_tok_s", "prompt_throughput_tok_s")


def train_comparisons(results: list, base) -> list[dict]:
    return [c.model_dump() for c in compare(results, base, TRAIN_COMPARED)]


def _variant_table(title: str, results: list, base) -> Table:
    """A metric column, then one right-aligned column per variant, the baseline marked."""
    table = Table(title=f"{title} (ratios vs {base.name})", title_justify="left")
    table.add_column("metric")
    for r in results:
        table.add_column(r.name + (" (baseline)" if r is base else ""), justify="right")
    return table


def _stage_range(memory: dict) -> str:
    per = memory.get("per_stage_bytes") or [memory["total_bytes"]]
    return f"{min(per) / 1e9:.1f} - {max(per) / 1e9:.1f} GB (stage {memory['stage']})"


def train_table(results: list, base, title: str, console: Console | None = None) -> None:
    console = console or stdout_console()
    table = _variant_table(f"{title}: one training step, simulated", results, base)
    change = {(c["variant"], c["metric"]): c["change_pct"] for c in train_comparisons(results, base)
              if c["change_pct"] is not None}
    for label, field, unit in TRAIN_ROWS:
        if field == "memory":
            table.add_row(label, *(" / ".join(f"{r.memory[k] / 1e9:.1f}" for k in MEMORY_PARTS) + " GB"
                                   for r in results))
            table.add_row("  stages: lightest - heaviest", *(_stage_range(r.memory) for r in results))
            continue
        cells = []
        for r in results:
            text = _fmt(getattr(r, field), unit)
            if (r.name, field) in change:
                text += f" ({change[r.name, field]:+.1f}%)"
            if field == "peak_memory_bytes_per_gpu":
                text += f" of {human(r.memory_capacity_bytes, 'bytes')}"

            cells.append(text)
        table.add_row(label, *cells)
    _band_rows(table, results)
    console.print(table)
    console.print(f"MFU convention: {results[0].flop_convention}.", style="dim")
    for r in results:
        if r.timing_coverage is not None:
            console.print(training_coverage_line(r.name, r.timing_coverage))
        if r.reliability is not None:
            console.print(goodput_line(r.name, r.reliability))


def goodput_line(name: str, g) -> str:
    """What failures and checkpoints add to the whole run (already in its GPU-hours, $ and days)."""
    return (f"{name}: goodput {100 * g.goodput:.1f}%: {g.expected_interruptions:,.0f} interruptions expected, a "
            f"{g.checkpoint_write_s:.1f} s checkpoint every {g.checkpoint_interval_s / 60:.1f} min; "
            f"{g.lost_s / 86400:.1f} days lost and {g.checkpoints_s / 86400:.1f} days writing checkpoints, "
            "counted in the whole-run rows above")


SERVE_ROWS = (
    ("max generation throughput", "max_generation_throughput_tok_s", "tok/s"),
    ("  per GPU (decode unit)", "generation_tok_s_per_gpu", "tok/s"),
    ("  per node (decode unit)", "generation_tok_s_per_node", "tok/s"),
    ("prompt throughput", "prompt_throughput_tok_s", "tok/s"),
    ("  per GPU (prefill unit)", "prompt_tok_s_per_gpu", "tok/s"),
    ("  per node (prefill unit)", "prompt_tok_s_per_node", "tok/s"),
    ("GPUs: decode unit / prefill unit", ("decode_gpus", "prefill_gpus"), "pair"),
    ("max concurrent requests", "max_concurrent_requests", "count"),
    ("KV capacity (tokens)", "kv_capacity_tokens", "count"),
    ("workload: generation tok/s", "generation_throughput_tok_s", "tok/s"),
    ("workload: TTFT p50 / p99", ("ttft_p50_s", "ttft_p99_s"), "s2"),
    ("workload: TPOT p50 / p99", ("tpot_p50_s", "tpot_p99_s"), "ms2"),
    ("workload: end-to-end p50 / p99", ("e2e_p50_s", "e2e_p99_s"), "s2"),
    ("workload: preemptions", "preemptions", "count"),
)


def serve_comparisons(results: list, base) -> list[dict]:
    return [c.model_dump() for c in compare(results, base, SERVE_COMPARED)]


def _latency_pair(latency, fields: tuple[str, str], unit: str) -> str:
    """"a / b s" (or ms) of two LatencyStats fields; "n/a" where a field is undefined (null)."""
    scale, fmt, suffix = (1e3, "{:.0f}", "ms") if unit == "ms2" else (1.0, "{:.2f}", "s")
    values = [getattr(latency, f) for f in fields]
    return " / ".join("n/a" if v is None else fmt.format(scale * v) for v in values) + f" {suffix}"


def _serve_cell(r, field, unit: str, ratio: dict) -> str:
    if unit in ("s2", "ms2"):
        return _latency_pair(r.latency, field, unit)
    if unit == "pair":
        return " / ".join(f"{getattr(r, f):,}" for f in field)
    if unit == "tok/s":
        text = f"{getattr(r, field):,.0f}"
        return text + (f" ({ratio[r.name, field]:.2f}x)" if (r.name, field) in ratio else "")
    return human(getattr(r, field), unit)


def serve_table(results: list, base, title: str, console: Console | None = None) -> None:
    console = console or stdout_console()
    table = _variant_table(f"{title}: one serving instance, simulated", results, base)
    ratio = {(c["variant"], c["metric"]): c["ratio"] for c in serve_comparisons(results, base) if c["ratio"] is not None}
    for label, field, unit in SERVE_ROWS:
        table.add_row(label, *(_serve_cell(r, field, unit, ratio) for r in results))
    _band_rows(table, results)
    console.print(table)
    for r in results:
        if "moe_layer_s" in r.decode_iteration:
            console.print(decode_line(r.name, r.decode_iteration))
        console.print(coverage_line(r.name, r.timing_coverage))
        if r.fleet:
            console.print(fleet_line(r.name, r.fleet))
        console.print(steady_line(r.name, r.max_generation_steady_state))
        if r.saturation_note:
            console.print(f"{r.name}: {r.saturation_note}")
        if r.overload_note:
            console.print(f"{r.name}: warning: {r.overload_note}")


def steady_line(name: str, ss) -> str:
    """How the maximum generation throughput was read off its saturated run."""
    if ss is None:
        return f"{name}: max generation: saturated stretch too short for a steady state; 10th-90th percentile window"
    interval = f"{ss.rate_tok_s:,.0f} tok/s, 95% interval {ss.low_tok_s:,.0f}-{ss.high_tok_s:,.0f}"
    if ss.converged:
        where = "stopped there" if ss.stopped_early else "ran to its end"
        return (f"{name}: max generation: steady state {interval} after a {ss.warmup_iterations:,}-iteration "
                f"warm-up (MSER-5, batch means; {where})")
    return (f"{name}: max generation: the saturated stretch did not settle (its MSER-5 warm-up had not ended, or "
            f"the interval is wider than +-0.5%: {interval}); figure from the completions' 10th-90th percentile window")


def coverage_line(name: str, coverage: dict | None) -> str:
    """Which share of the iteration time came from measured kernels, family by family."""
    if coverage is None:
        return f"{name}: timing: roofline at the GPU file's sourced efficiencies (no engine or profile)"
    parts = [f"{c['measured_share']:.1%} of a {it} iteration measured ({_families(c)})"
             for it, c in ((it, coverage[it]) for it in ("decode", "prefill"))]
    return f"{name}: timing: " + "; ".join(parts)


def training_coverage_line(name: str, coverage: dict | None) -> str:
    """Which share of a training step's compute came from the kernel database's GEMMs."""
    if coverage is None:
        return f"{name}: timing: roofline at the GPU file's sourced efficiencies x the stack efficiency (no kernel_database)"
    return (f"{name}: timing: {coverage['measured_share']:.1%} of the compute measured ({_families(coverage)}); "
            "collectives from the link model")


def _families(c: dict) -> str:
    return ", ".join(f"{f} {s:.0%}" for f, s in sorted(c["per_family"].items(), key=lambda kv: -kv[1]) if s >= 0.005)


BANDS = {  # metric -> (row label, unit)
    "step_time_s": ("step time", "s"), "tokens_per_s_per_gpu": ("tokens / s / GPU", "plain"),
    "gpu_hours_per_trillion_tokens": ("GPU-hours / T tokens", "kilo"), "gpu_hours_total": ("whole run: GPU-hours", "kilo"),
    "max_generation_throughput_tok_s": ("max generation", "tok/s"), "prompt_throughput_tok_s": ("prompt", "tok/s"),
    "ttft_p50_s": ("TTFT p50", "ms"), "tpot_p50_s": ("TPOT p50", "ms")}


def _band_rows(table: Table, results: list) -> None:
    """p10 / p50 / p90 of each banded metric (simulate --bands), a row per metric."""
    for m, (label, unit) in BANDS.items():
        if not any(r.bands and m in r.bands for r in results):
            continue
        cells = [" / ".join(_fmt(r.bands[m][q], unit) for q in ("p10", "p50", "p90"))
                 if r.bands and m in r.bands else "" for r in results]
        table.add_row(f"{label}, p10 / p50 / p90", *cells)


def decode_line(name: str, d: dict) -> str:
    """The saturated decode iteration of one variant, per MoE layer."""
    overlap = "two-batch overlap" if d["two_batch_overlap"] else "no overlap"
    return (f"{name}: decode iteration of {d['requests']:,} requests at {d['context_tokens']:,} tokens: "
            f"{1e3 * d['iteration_s']:.1f} ms; per MoE layer attention {1e6 * d['attention_s']:.0f} us + experts "
            f"{1e6 * d['moe_compute_s']:.0f} us, all-to-all {1e6 * d['all_to_all_s']:.0f} us "
            f"({d['all_to_all_kernels']} kernels, {overlap}) -> {1e6 * d['moe_layer_s']:.0f} us; busiest EP rank "
            f"{d['busiest_rank_load_placed']:.2f}x the mean" + (
                "" if d["busiest_rank_load_no_replication"] is None
                else f" ({d['busiest_rank_load_no_replication']:.2f}x without the expert placement)"))


def fleet_line(name: str, f: dict) -> str:
    """One variant's fleet plan in a sentence."""
    return (f"{name}: {f['requests_per_s']:,.0f} req/s need {f['prefill_units']} prefill + {f['decode_units']} "
            f"decode unit(s) = {f['gpus']:,} GPUs (utilisation {100 * f['prefill_utilisation']:.0f}% / "
            f"{100 * f['decode_utilisation']:.0f}%), ${f['usd_per_hour']:,.0f}/h; $ per M tokens: input "
            f"{_usd(f['usd_per_m_input_tokens_cache_miss'])} (cache miss) / {_usd(f['usd_per_m_input_tokens_cache_hit'])} "
            f"(hit), output {_usd(f['usd_per_m_output_tokens'])}")


def _usd(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def validate_sim_markdown(r: dict) -> str:
    """The validate-sim results table (also committed under profiles/)."""
    lines = [f"### Serving simulator vs a real run on this machine ({r['model']}, {r['layers']} layers, "
             f"{r['requests']} requests, {r['iterations']} iterations)", "",
             "| quantity | real | simulated | abs. error |", "|---|---|---|---|",
             f"| run time | {r['real_total_s']:.2f} s | {r['sim_total_s']:.2f} s | {r['end_to_end_time_abs_pct_error']:.1f}% |",
             f"| generation throughput | {r['real_generation_tok_s']:.2f} tok/s | {r['sim_generation_tok_s']:.2f} tok/s "
             f"| {r['throughput_abs_pct_error']:.1f}% |",
             f"| iteration time, median error | | | {r['iteration_median_abs_pct_error']:.1f}% |",
             f"| iteration time, p90 error | | | {r['iteration_p90_abs_pct_error']:.1f}% |"]
    for kind, k in r["per_kind"].items():
        if k["iterations"]:
            lines.append(f"| {kind} iterations ({k['iterations']}), mean | {1e3 * k['measured_mean_s']:.1f} ms "
                         f"| {1e3 * k['predicted_mean_s']:.1f} ms | median {k['median_abs_pct_error']:.1f}% |")
    if r.get("bands"):
        b = r["bands"]["sim_generation_tok_s"]
        lines.append(f"| simulated throughput, p10 / p50 / p90 (the profile's held-out errors drawn) | "
                     f"{r['real_generation_tok_s']:.2f} tok/s | {b['p10']:.2f} / {b['p50']:.2f} / {b['p90']:.2f} | "
                     f"{'real inside' if r['real_throughput_within_p10_p90'] else 'real outside'} |")
    machine = r.get("machine") or {}
    lines += ["", f"Profile: `{r['profile']}` ({machine.get('device_name')}, {machine.get('logical_cpus')} CPUs, torch "
                  f"{machine.get('torch')}, fingerprint {machine.get('fingerprint_id')}"
                  f"{'; ' + r['profile_foreign'] if r.get('profile_foreign') else ''}); settings: {r['settings']}."]
    return "\n".join(lines)


def sweep_summary(header: dict, summary: dict, where: str, console: Console | None = None) -> None:
    console = console or stdout_console()
    metrics = [o["metric"] for o in header["objectives"]]
    console.print(f"[bold]{header['sweep']}[/]: {summary['points']} points, {summary['valid']} valid, "
                  f"{summary['invalid']} dropped; results in {where}")
    for reason in summary["invalid_reasons"]:
        console.print(f"  dropped: {reason}", style="dim")
    table = Table(title="Pareto front (" + ", ".join(f"{o['metric']} {o['goal']}" for o in header["objectives"]) + ")",
                  title_justify="left")
    table.add_column("plan")
    for m in metrics:
        table.add_column(m, justify="right")
    def num(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"

    for p in sorted(summary["front"], key=lambda p: p[metrics[0]]):
        table.add_row(p["label"], *(num(p[m]) for m in metrics))
    console.print(table)
    for m, p in summary["best"].items():
        console.print(f"best {m}: [bold]{p['label']}[/] ({num(p[m])})")


def comm_table(result: dict, console: Console | None = None) -> None:
    """`planner check-comm`: one row per published DeepEP case."""
    console = console or stdout_console()
    table = Table(title="DeepEP published vs predicted (H800)", title_justify="left")
    for col in ("case", "published", "predicted", "error"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for c in result["cases"]:
        mark = " (anchor)" if c["anchor"] else ""
        table.add_row(c["name"] + mark, f"{c['published']:,.0f}", f"{c['predicted']:,.1f}", f"{c['abs_pct_error']:.1f}%")
    console.print(table)
    console.print(f"median error {result['median_abs_pct_error']:.1f}% "
                  f"({result['median_abs_pct_error_excluding_anchors']:.1f}% without the anchor row), "
                  f"max {result['max_abs_pct_error']:.1f}%")
    _comm_domain_table(result, console)
    _comm_database_table(result, console)


def _comm_domain_table(result: dict, console: Console) -> None:
    """The low-latency benchmark call on the chosen part, in its NVLink domains against 8-GPU nodes."""
    table = Table(title=f"DeepEP low-latency call (128 tokens, top-8, hidden 7168) on {result['gpu']}: "
                  f"NVLink domains of {result['nvlink_domain_gpus']} GPUs against 8-GPU nodes", title_justify="left")
    for col in ("EP", "domains", "RDMA MB/GPU", "NVLink MB/GPU", "dispatch us", "combine us", "8-GPU nodes: dispatch us",
                "combine us "):
        table.add_column(col, justify="right")
    for r in result["domain"]:
        table.add_row(str(r["ep"]), str(r["domains"]), f"{r['dispatch_rdma_bytes'] / 1e6:.2f}",
                      f"{r['dispatch_nvlink_bytes'] / 1e6:.2f}", f"{r['dispatch_us']:.0f}", f"{r['combine_us']:.0f}",
                      f"{r['hgx_dispatch_us']:.0f}", f"{r['hgx_combine_us']:.0f}")
    console.print(table)


def _comm_database_table(result: dict, console: Console) -> None:
    """The same call as the kernel database measured it on this part, against the model on its layout."""
    rows = result["database"]
    if not rows:
        console.print(f"the kernel database holds no DeepEP low-latency rows for {result['gpu']}")
        return
    table = Table(title=f"measured in the kernel database ({rows[0]['database_gpu']}, SGLang's DeepEP) vs predicted",
                  title_justify="left")
    for col in ("nodes x GPUs", "EP", "release", "dispatch measured", "predicted", "combine measured", "predicted "):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['nodes']} x {r['gpus_per_node']}", str(r["ep"]), r["version"],
                      f"{r['measured_dispatch_us']:.0f} us", f"{r['predicted_dispatch_us']:.0f} us",
                      f"{r['measured_combine_us']:.0f} us", f"{r['predicted_combine_us']:.0f} us")
    console.print(table)


PLAN_COLUMNS = (("GPU", "gpu", "{}"), ("mode", "mode", "mode"), ("layout", "layout", "{}"), ("units D+P", "units", "{}"),
                ("GPUs", "gpus", "{:,}"),
                ("$/h", "usd_per_hour", "{:,.0f}"), ("$/M input", "usd_per_m_input_tokens", "{:.3f}"),
                ("$/M output", "usd_per_m_output_tokens", "{:.3f}"), ("TTFT p99", "ttft_p99_s", "{:.2f} s"),
                ("TPOT p50", "tpot_p50_s", "ms"))


def _plan_cell(p: dict, key: str, fmt: str) -> str:
    v = f"{p['decode_units']}+{p['prefill_units']}" if key == "units" else p.get(key)
    if v is None:
        return "-"
    if fmt == "mode":
        return {"aggregated": "agg", "disaggregated": "P/D"}[v]
    return f"{1e3 * v:.1f} ms" if fmt == "ms" else fmt.format(v)


def plan_answer(result: dict, console: Console | None = None) -> None:
    """`planner plan`: the recommendation, the cheapest verified plan per GPU, the front, the rejections."""
    console = console or stdout_console()
    slo, traffic = result["slo"], result["traffic"]
    console.print(f"[bold]{result['plan']}[/]: {traffic['requests_per_s']:,.4g} requests/s, TTFT p99 <= "
                  f"{slo['ttft_p99_s']:g} s, TPOT p50 <= {1e3 * slo['tpot_p50_s']:.1f} ms; "
                  f"{result['layouts_screened']} layouts screened")
    rec = result["recommended"]
    if rec is None:
        console.print("[bold red]no plan meets the targets[/]: see the rejections below")
    else:
        units = f"{rec['decode_units']} decode" + (f" + {rec['prefill_units']} prefill" if rec["prefill_units"] else "")
        console.print(f"recommended: [bold]{rec['gpu']} {rec['layout']}[/], {rec['mode']}, {units} unit(s), "
                      f"{rec['gpus']:,} GPUs ({rec['nodes']} node(s)), "
                      f"${rec['usd_per_hour']:,.0f}/h = ${rec['usd_per_m_input_tokens']:.3f} per M input and "
                      f"${rec['usd_per_m_output_tokens']:.3f} per M output tokens; simulated TTFT p99 "
                      f"{_plan_cell(rec, 'ttft_p99_s', '{:.2f} s')}, TPOT p50 {_plan_cell(rec, 'tpot_p50_s', 'ms')}, with at most "
                      f"{rec['max_running_per_rank']} requests and {rec['budget_tokens_per_rank']:,} tokens per "
                      "iteration on each attention rank")
    for title, rows in (("Cheapest verified plan per GPU type", result["per_gpu_type"]),
                        ("Pareto front: cost per hour against TPOT (screened, not simulated)", result["front"])):
        table = Table(title=title, title_justify="left")
        for label, _, _ in PLAN_COLUMNS:
            table.add_column(label, justify="left" if label in ("GPU", "mode", "layout") else "right")
        for p in rows:
            table.add_row(*(_plan_cell(p, key, fmt) for _, key, fmt in PLAN_COLUMNS))
        console.print(table)
    for r in result["rejected"]:
        console.print(f"  rejected {r['plan']}: {r['reason']}", style="dim")


def sources_table(rows: list[dict], assumption_notes: int = 0, console: Console | None = None) -> None:
    """`planner report --sources`: each sourced number, its source and whether it is published, measured
    or assumed (keys are explained in docs/sources.md)."""
    console = console or stdout_console()
    table = Table(title="Where the numbers come from (keys: docs/sources.md)", title_justify="left")
    for col in ("variant", "field", "value", "kind", "source"):
        table.add_column(col, justify="right" if col == "value" else "left", overflow="fold")
    style = {"assumed": "yellow", "measured": "cyan", "published": ""}
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.4g}"
        table.add_row(r["variant"], r["field"], value, f"[{style[r['kind']]}]{r['kind']}[/]" if style[r["kind"]] else r["kind"],
                      r["source"])
    console.print(table)
    counts = {k: sum(r["kind"] == k for r in rows) for k in ("published", "measured", "assumed")}
    console.print(", ".join(f"{n} {k}" for k, n in counts.items()) + " sourced numbers" + (
        f"; the scenario file's comments mark {assumption_notes} more choice(s) ASSUMPTION (layouts, workloads, "
        "engine settings: read them there)" if assumption_notes else ""))


def _pct(value: float | None, signed: bool = False) -> str:
    return "—" if value is None else (f"{value:+.0f}%" if signed else f"{value:.0f}%")


CHECK_COLUMNS = ("GPU", "engine", "mode", "family", "points", "sim", "TPOT med", "p90", "bias", "TTFT med", "p90",
                 "bias")  # |error| median and p90, and the signed median, of each
CHECK_LABELS = ("GPU", "engine", "mode", "family", "points", "simulated", "TPOT |err| median", "TPOT |err| p90",
                "TPOT bias", "TTFT |err| median", "TTFT |err| p90", "TTFT bias")  # the same, unique: for tables


def check_rows(summary: dict) -> list[list[str]]:
    """One row per GPU x engine x mode x family, then all points."""
    return [[g["gpu"], g["engine"], g["mode"], g["family"], str(g["points"]), str(g["simulated"]),
             _pct(g["tpot_median_abs_pct_error"]), _pct(g["tpot_p90_abs_pct_error"]),
             _pct(g["tpot_median_signed_pct_error"], True), _pct(g["ttft_median_abs_pct_error"]),
             _pct(g["ttft_p90_abs_pct_error"]), _pct(g["ttft_median_signed_pct_error"], True)]
            for g in [*summary["groups"], {"gpu": "all", "engine": "", "mode": "", "family": "", **summary}]]


PER_POINT_MAX = 30  # a check of this many points or fewer lists them by default


def point_cells(r: dict) -> list[str]:
    """One point: id, how it ran, measured and predicted TTFT and TPOT (ms), their errors, or why skipped."""
    meas, pred = r["measured"], r["predicted"] or {}
    ran = r["setup"].get("layout", "")
    cells = [r["id"], ran, f"{meas['ttft_ms']:.1f}", f"{meas['tpot_ms']:.2f}"]
    if not pred:
        return [*cells, "—", "—", "—", "—", r["skipped"] or ""]
    ttft, tpot = pred["ttft_ms"], pred["tpot_ms"]
    err = [check_serving.pct_error(ttft, meas["ttft_ms"]), check_serving.pct_error(tpot, meas["tpot_ms"])]
    return [*cells, f"{ttft:.1f}", "—" if tpot is None else f"{tpot:.2f}", _pct(err[0], True), _pct(err[1], True), ""]


POINT_COLUMNS = ("id", "ran as", "TTFT ms", "TPOT ms", "pred TTFT", "pred TPOT", "TTFT err", "TPOT err", "skipped")


def check_serving_table(source: str, split: str, summary: dict, points: list[dict] | None = None,
                        console: Console | None = None) -> None:
    """`planner check-serving`: per GPU x engine x mode x model family, the points simulated and the errors;
    then `points` one by one, when given; then each skip reason (word for word where one point has it)."""
    console = console or stdout_console()
    table = Table(title=f"{source}, {split} split: predicted p50 against measured (error = predicted / measured - 1)")
    for col in CHECK_COLUMNS:
        table.add_column(col, justify="left" if col in ("GPU", "engine", "mode", "family") else "right")
    for cells in check_rows(summary):
        table.add_row(*cells)
    console.print(table)
    if points:
        each = Table(title="each point (measured and predicted p50)")
        for col in POINT_COLUMNS:
            each.add_column(col, justify="right" if "TTFT" in col or "TPOT" in col else "left")
        for r in points:
            each.add_row(*point_cells(r))
        console.print(each)
    console.print(f"coverage: {summary['simulated']} of {summary['points']} points simulated ({summary['coverage']:.0%})")
    for reason, n in summary["skipped_reasons"].items():
        console.print(f"  skipped {n:>5}: {skip_text(summary, reason, n)}", soft_wrap=True)


def skip_text(summary: dict, reason: str, n: int) -> str:
    """A skip reason as shown: the one point's own words, or the shared reason and its first point."""
    example = summary.get("skipped_examples", {}).get(reason)
    if example is None:
        return reason
    return example if n == 1 else f"{reason} (first: {example.split(': ', 1)[0]})"


def check_serving_html(source: str, split: str, points: list[dict], summary: dict) -> str:
    """check-serving as one page that opens without a server: the summary table, the predicted-against-
    measured TTFT and TPOT figures, every point, and every skipped reason."""
    esc = html.escape
    figs = "".join(figures.plot_validation(points, metric).to_html(full_html=False, include_plotlyjs=i == 0)
                   for i, metric in enumerate(("ttft_ms", "tpot_ms")))
    each = f"<details><summary>each point</summary>{html_table(POINT_COLUMNS, map(point_cells, points))}</details>"
    skipped = "".join(f"<li>{n}: {esc(skip_text(summary, reason, n))}</li>"
                      for reason, n in summary["skipped_reasons"].items())
    title = f"check-serving: {source}, {split} split"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body><h1>{esc(title)}</h1>"
            f"<p>{summary['simulated']} of {summary['points']} points simulated ({summary['coverage']:.0%}); "
            "errors are predicted p50 / measured - 1. Made by moe-planner (planner check-serving --format html).</p>"
            f"{html_table(CHECK_COLUMNS, check_rows(summary))}{figs}<h2>Each point</h2>{each}<h2>Skipped</h2><ul>{skipped}</ul>"
            "</body></html>")


def emitted(out, paths: list, e, err: bool = False) -> None:
    """What `planner plan --emit` wrote: the folder, its files, how many differences its README lists
    (on stderr with `err`, so that a JSON answer on stdout stays JSON)."""
    console = Console(stderr=True) if err else stdout_console()
    record = json.loads(e.files["planner.json"])
    console.print(f"wrote {len(paths)} files to {out} for {record['target']} ({record['engine']} {record['version']}); "
                  f"{len(record['differences'])} difference(s) from the plan in {out}/README.md")
