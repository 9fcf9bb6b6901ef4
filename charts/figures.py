"""Pure figure builders: data in, plotly Figure out (no Streamlit, no costmodel calls)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = ["#2563eb", "#9ca3af", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6"]


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


OVERVIEW_PANELS = (("Training cost (K GPU-hours / T tokens)", "K GPU-hours per trillion tokens", "{:.1f}K", "pct"),
                   ("KV cache (KB / token)", "KB per token", "{:.1f}", "pct"),
                   ("Max generation throughput (tok/s)", "generated tokens/s", "{:,.0f}", "ratio"))


def plot_overview(names: list[str], gpu_hours: list[float | None], kv_kb: list[float], max_gen: list[float | None],
                  baseline: str) -> go.Figure:
    """The paper's Figure 1(b) for any scenario: training cost, KV cache, maximum generation throughput
    (a panel no variant has a value for, e.g. training in a serving-only scenario, is left out)."""
    panels = [(p, v) for p, v in zip(OVERVIEW_PANELS, (gpu_hours, kv_kb, max_gen), strict=True) if any(x is not None for x in v)]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p, _ in panels])
    base = names.index(baseline)
    for col, ((_, unit, fmt, change_kind), values) in enumerate(panels, start=1):
        ref = values[base]
        text = ["n/a" if v is None else fmt.format(v) + (
            f" ({v / ref:.2f}x)" if change_kind == "ratio" else f" ({(v / ref - 1) * 100:+.1f}%)") if v is not None and ref
            and v is not ref else fmt.format(v) for v in values]
        fig.add_trace(go.Bar(y=names, x=[v if v is not None else 0 for v in values], orientation="h", text=text,
                             textposition="outside", textangle=0, cliponaxis=False, showlegend=False, name=unit,
                             marker_color=[_color(i) for i in range(len(names))],
                             hovertemplate="%{y}: %{text} " + unit + "<extra></extra>"), row=1, col=col)
        if col > 1:
            fig.update_yaxes(showticklabels=False, row=1, col=col)
    fig.update_layout(height=320, margin=dict(l=10, r=80, t=40, b=10))  # room for the labels outside the bars
    return fig


def plot_memory(names: list[str], parts: dict[str, list[float]], capacity: list[float]) -> go.Figure:
    """Training memory per GPU (GB), stacked by kind, against the GPU's capacity."""
    fig = go.Figure()
    for i, (kind, values) in enumerate(parts.items()):
        fig.add_trace(go.Bar(x=names, y=[v / 1e9 for v in values], name=kind, marker_color=_color(i),
                             hovertemplate="%{x}: %{y:,.1f} GB of " + kind + "<extra></extra>"))
    fig.add_trace(go.Scatter(x=names, y=[c / 1e9 for c in capacity], mode="markers", name="GPU memory",
                             marker=dict(symbol="line-ew-open", size=40, color="black")))
    fig.update_layout(barmode="stack", yaxis_title="GB per GPU", height=320, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def plot_serving_memory(names: list[str], weights: list[float], kv_budget: list[float], capacity: list[float]) -> go.Figure:
    """Serving memory per GPU (GB): weights at the serving precision and the KV-cache room left."""
    fig = go.Figure([go.Bar(x=names, y=[w / 1e9 for w in weights], name="weights", marker_color=_color(0),
                            hovertemplate="%{x}: %{y:,.1f} GB of weights<extra></extra>"),
                     go.Bar(x=names, y=[k / 1e9 for k in kv_budget], name="KV cache room", marker_color=_color(3),
                            hovertemplate="%{x}: %{y:,.1f} GB for the KV cache<extra></extra>"),
                     go.Scatter(x=names, y=[c / 1e9 for c in capacity], mode="markers", name="GPU memory",
                                marker=dict(symbol="line-ew-open", size=40, color="black"))])
    fig.update_layout(barmode="stack", yaxis_title="GB per GPU", height=320, margin=dict(l=10, r=10, t=30, b=10))
    return fig


PASS_NAMES = {"F": "forward", "B": "backward", "W": "weight grad"}
PASS_COLORS = {"F": "#2563eb", "B": "#10b981", "W": "#f59e0b", "busy": "#64748b"}
COMM_COLOR = "#ef4444"


def busy_spans(passes: list, stage: int, gap_s: float) -> list[tuple[float, float, int, float]]:
    """A stage's passes merged into busy spans (start, end, passes, exposed communication s) wherever the
    idle gap between two is under gap_s: one step at a glance, the bubbles being the gaps left."""
    spans: list[list] = []
    for p in sorted((p for p in passes if p[0] == stage), key=lambda p: p[3]):
        if spans and p[3] - spans[-1][1] <= gap_s:
            spans[-1][1] = max(spans[-1][1], p[3] + p[4])
            spans[-1][2] += 1
            spans[-1][3] += p[5]
        else:
            spans.append([p[3], p[3] + p[4], 1, p[5]])
    return [tuple(x) for x in spans]


def plot_timeline(passes: list, pp: int, detail_micro_batches: int | None = None) -> go.Figure:
    """Gantt of one training step, one row per pipeline stage (the gaps are the bubble) and beside each a
    row of its exposed communication, apart from the pass colours. By default each stage's back-to-back
    passes are merged into busy spans (thousands of passes would draw as a smear; a span's hover gives its
    passes and exposed communication); with `detail_micro_batches`, each forward, backward and
    weight-gradient pass of the first that many micro-batches is drawn, with its exposed communication."""
    fig = go.Figure()
    if detail_micro_batches:
        shown = [p for p in passes if p[2] < detail_micro_batches]
        for kind, name in PASS_NAMES.items():
            sel = [p for p in shown if p[1] == kind]
            if sel:
                fig.add_trace(_bars([f"stage {p[0]}" for p in sel], [p[3] for p in sel], [p[4] for p in sel], name,
                                    PASS_COLORS[kind], [f"micro-batch {p[2]}" for p in sel]))
    else:
        step_s = max((p[3] + p[4] for p in passes), default=0.0)
        for s in range(pp):
            spans = busy_spans(passes, s, gap_s=step_s * 1e-4)
            fig.add_trace(_bars([f"stage {s}"] * len(spans), [a for a, *_ in spans], [b - a for a, b, *_ in spans],
                                "busy (forward, backward, weight grad)", PASS_COLORS["busy"],
                                [f"{n} passes, {c:.3f} s of it exposed communication" for _, _, n, c in spans],
                                legend=s == 0))
        shown = []
    comm = [p for p in shown if p[5] > 0]
    if comm:
        fig.add_trace(_bars([f"stage {p[0]} comm" for p in comm], [p[3] + p[4] - p[5] for p in comm], [p[5] for p in comm],
                            "exposed communication", COMM_COLOR, [f"micro-batch {p[2]}" for p in comm]))
    order = [r for s in reversed(range(pp)) for r in ((f"stage {s} comm",) if comm else ()) + (f"stage {s}",)]
    fig.update_layout(barmode="overlay", xaxis_title="seconds into the step", height=140 + 30 * pp,
                      yaxis=dict(categoryorder="array", categoryarray=order), margin=dict(l=10, r=10, t=30, b=10))
    return fig


def _bars(y: list, start: list, length: list, name: str, color: str, what: list, legend: bool = True) -> go.Bar:
    return go.Bar(y=y, x=length, base=start, orientation="h", name=name, marker_color=color, showlegend=legend,
                  legendgroup=name, customdata=what,
                  hovertemplate="%{y}: %{customdata}<br>from %{base:.3f} s for %{x:.3f} s<extra>" + name + "</extra>")


def plot_breakdown(results: list[dict]) -> go.Figure:
    """Where a step goes on the busiest stage: compute, exposed communication, the rest (bubble, sync)."""
    names = [r["name"] for r in results]
    compute = [r["compute_s"] for r in results]
    exposed = [r["exposed_comm_s"] for r in results]
    rest = [max(0.0, r["step_time_s"] - c - e) for r, c, e in zip(results, compute, exposed, strict=True)]
    fig = go.Figure([go.Bar(x=names, y=ys, name=label, hovertemplate="%{x}: %{y:.2f} s of " + label + " per step<extra></extra>")
                     for label, ys in (("compute", compute), ("exposed comm", exposed), ("bubble + other", rest))])
    fig.update_layout(barmode="stack", yaxis_title="seconds per step", height=320, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def plot_latency_curve(curves: dict[str, list[dict]], maxima: dict[str, float] | None = None) -> go.Figure:
    """Steady generation throughput against TPOT p50 (ms) and TTFT p99 (s, log axis) as the arrival rate
    grows (the rate on hover); a dotted line at each variant's maximum generation throughput."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("TPOT p50 (ms)", "TTFT p99 (s, log scale)"))
    for i, (name, pts) in enumerate(curves.items()):
        x = [p["generation_throughput_tok_s"] for p in pts]
        rates = [p["rate_per_s"] for p in pts]
        for col, y, unit in ((1, [None if p["tpot_p50_s"] is None else 1e3 * p["tpot_p50_s"] for p in pts], "ms"),
                             (2, [p["ttft_p99_s"] for p in pts], "s")):
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, marker_color=_color(i),
                                     showlegend=col == 1, legendgroup=name, customdata=rates,
                                     hovertemplate=f"{name}<br>%{{customdata:,.1f}} requests/s<br>%{{x:,.0f}} tok/s"
                                                   f"<br>%{{y:,.3g}} {unit}<extra></extra>"), row=1, col=col)
        if maxima and name in maxima:
            for col in (1, 2):
                fig.add_vline(x=maxima[name], line_dash="dot", line_color=_color(i), row=1, col=col)
    fig.update_xaxes(title_text="generation tok/s (steady)", tickformat=",.0f")
    fig.update_yaxes(type="log", dtick=1, tickformat=".3~g", row=1, col=2)  # one labelled tick a decade
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def plot_distributions(samples: dict[str, dict]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT (s)", "TPOT (ms)"))
    for i, (name, s) in enumerate(samples.items()):
        fig.add_trace(go.Histogram(x=s["ttft_s"], name=name, marker_color=_color(i), opacity=0.7), row=1, col=1)
        fig.add_trace(go.Histogram(x=[1e3 * t for t in s["tpot_s"]], name=name, marker_color=_color(i), opacity=0.7,
                                   showlegend=False), row=1, col=2)
    fig.update_layout(barmode="overlay", height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def plot_occupancy(timelines: dict[str, dict]) -> go.Figure:
    """Running requests and KV-cache use over simulated time."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("running requests", "KV cache used (% of capacity)"))
    for i, (name, tl) in enumerate(timelines.items()):
        fig.add_trace(go.Scatter(x=tl["t_s"], y=tl["running"], name=name, marker_color=_color(i),
                                 hovertemplate="%{x:.1f} s: %{y:,} requests<extra>" + name + "</extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=tl["t_s"], y=[100 * u for u in tl["kv_utilisation"]], name=name, marker_color=_color(i),
                                 showlegend=False, hovertemplate="%{x:.1f} s: %{y:.1f}%<extra>" + name + "</extra>"),
                      row=1, col=2)
    fig.update_xaxes(title_text="simulated s")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def plot_measured_vs_model(rows: list[dict]) -> go.Figure:
    """Each profiled point: measured time against the roofline fit's and the interpolator's prediction."""
    fig = go.Figure()
    lo = min(r["measured_s"] for r in rows)
    hi = max(r["measured_s"] for r in rows)
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="exact", line=dict(color="black", dash="dot")))
    for i, op in enumerate(sorted({r["op"] for r in rows})):
        sel = [r for r in rows if r["op"] == op]
        fig.add_trace(go.Scatter(x=[r["measured_s"] for r in sel], y=[r["roofline_s"] for r in sel], mode="markers",
                                 name=f"{op} (roofline)", marker=dict(color=_color(i), symbol="circle-open")))
    fig.update_xaxes(type="log", title_text="measured s", dtick=1, tickformat=".1e")
    fig.update_yaxes(type="log", title_text="roofline s", dtick=1, tickformat=".1e")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def metric_label(name: str) -> str:
    """A sweep metric's name as an axis title: words, with its unit ("ttft_p99_s" -> "ttft p99 (s)")."""
    units = {"_s": " (s)", "_gb": " (GB)", "_tok_s": " (tok/s)", "_per_s": " per s"}
    for suffix, unit in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return name[: -len(suffix)].replace("usd_", "$ ").replace("_", " ") + unit
    return name.replace("usd_", "$ ").replace("_", " ")


def plot_pareto(points: list[dict], x: str, y: str, front: list[dict], rejected: list[dict] | None = None) -> go.Figure:
    """Feasible plans, the Pareto front among them, and the plans a constraint rejected (reason on hover)."""
    hover = "%{hovertext}<br>" + metric_label(x) + ": %{x:,.4~g}<br>" + metric_label(y) + ": %{y:,.4~g}<extra></extra>"
    fig = go.Figure([go.Scatter(x=[p[x] for p in points], y=[p[y] for p in points], mode="markers", name="feasible plans",
                                marker=dict(color="#9ca3af"), hovertext=[p.get("label", "") for p in points],
                                hovertemplate=hover),
                     go.Scatter(x=[p[x] for p in front], y=[p[y] for p in front], mode="lines+markers",
                                name="Pareto front", marker=dict(color="#2563eb"),
                                hovertext=[p.get("label", "") for p in front], hovertemplate=hover)])
    if rejected:
        fig.add_trace(go.Scatter(x=[p[x] for p in rejected], y=[p[y] for p in rejected], mode="markers",
                                 name="rejected (constraint)", marker=dict(color="#ef4444", symbol="x"),
                                 hovertext=[f"{p.get('label', '')}: {p['reason']}" for p in rejected], hovertemplate=hover))
    fig.update_layout(xaxis_title=metric_label(x), yaxis_title=metric_label(y), xaxis_tickformat=",.4~g",
                      yaxis_tickformat=",.4~g", height=380, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def plot_plan(front: list[dict], per_gpu: list[dict], tpot_target_s: float) -> go.Figure:
    """Sized deployments: cost per hour against TPOT p50 (the screen's Pareto front, and each GPU's cheapest
    verified plan), with the TPOT target; hover names the layout."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[1e3 * p["tpot_p50_s"] for p in front], y=[p["usd_per_hour"] for p in front],
                             mode="lines+markers", name="Pareto front (screened)", marker=dict(color="#9ca3af"),
                             hovertemplate="%{text}<br>TPOT %{x:.1f} ms<br>$%{y:,.0f} per hour<extra></extra>",
                             text=[f"{p['gpu']} {p['mode']} {p['layout']}" for p in front]))
    for i, p in enumerate(per_gpu):
        fig.add_trace(go.Scatter(x=[1e3 * p["tpot_p50_s"]], y=[p["usd_per_hour"]], mode="markers", name=f"{p['gpu']} (verified)",
                                 marker=dict(color=_color(i), size=14, symbol="star"),
                                 hovertemplate=f"{p['gpu']} {p['mode']} {p['layout']}<br>TPOT %{{x:.1f}} ms (simulated)"
                                               "<br>$%{y:,.0f} per hour<extra></extra>"))
    fig.add_vline(x=1e3 * tpot_target_s, line_dash="dot", annotation_text="TPOT target")
    fig.update_layout(xaxis_title="TPOT p50 (ms)", yaxis_title="$ per hour", yaxis_tickformat=",.0f", height=380,
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig


VALIDATION_BAND = 0.20  # the shaded band: within 20% of the measurement


def plot_validation(points: list[dict], metric: str) -> go.Figure:
    """check-serving's simulated points: predicted against measured `metric` (ttft_ms | tpot_ms), log-log,
    coloured by GPU, with the 1:1 line and the +-20% band around it."""
    done = [p for p in points if p.get("predicted") and p["predicted"].get(metric)]
    fig = go.Figure()
    if not done:
        return fig
    values = [p["measured"][metric] for p in done] + [p["predicted"][metric] for p in done]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    fig.add_trace(go.Scatter(x=[lo, hi, hi, lo], y=[lo * (1 - VALIDATION_BAND), hi * (1 - VALIDATION_BAND),
                                                    hi * (1 + VALIDATION_BAND), lo * (1 + VALIDATION_BAND)],
                             fill="toself", mode="none", fillcolor="rgba(156,163,175,0.25)", name="within 20%"))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="predicted = measured",
                             line=dict(color="black", dash="dot")))
    for i, gpu in enumerate(sorted({p["group"]["gpu"] for p in done})):
        sel = [p for p in done if p["group"]["gpu"] == gpu]
        fig.add_trace(go.Scatter(
            x=[p["measured"][metric] for p in sel], y=[p["predicted"][metric] for p in sel], mode="markers", name=gpu,
            marker=dict(color=_color(i), size=6, opacity=0.75),
            text=[f"{p['id']}<br>{p['group']['engine']} {p['group']['mode']} {p['group']['family']}" for p in sel],
            hovertemplate="%{text}<br>measured %{x:.3g} ms<br>predicted %{y:.3g} ms<extra></extra>"))
    label = {"ttft_ms": "TTFT (ms)", "tpot_ms": "TPOT (ms)"}.get(metric, metric)
    fig.update_xaxes(type="log", title_text=f"measured {label}")
    fig.update_yaxes(type="log", title_text=f"predicted {label}")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), title=label)
    return fig
