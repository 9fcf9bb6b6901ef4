"""The dashboard's pages: thin functions that read the active scenario, ask dashboard/data.py for
results and hand them to dashboard/figures.py."""

from __future__ import annotations

import json
from typing import get_args

import streamlit as st

from charts import figures
from costmodel.app.fleet import usd_per_million_output_tokens
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.reading import decode_text, strict_dumps
from costmodel.inputs.specs import Parallelism
from dashboard import data
from planner.render import CHECK_LABELS, check_rows, coverage_line, training_coverage_line


def active() -> tuple[str, str]:
    return st.session_state["scenario_text"], st.session_state["scenario_name"]


def plain(message: str) -> str:
    """A message shown as written: Markdown's emphasis and link characters escaped outside `code` spans
    (so "tp*pp*dp" is not read as italics)."""
    parts = message.split("`")
    for i in range(0, len(parts), 2):  # even parts lie outside backticks
        for ch in "\\*_~[]#<>":
            parts[i] = parts[i].replace(ch, "\\" + ch)
    return "`".join(parts)


def url_select(where, label: str, options: list, index: int, param: str, **kw):
    """A selectbox whose choice lives in the URL query too (?param=value), so a link or a reload keeps it."""
    asked = st.query_params.get(param)
    names = [str(o) for o in options]
    if asked in names:
        index = names.index(asked)
    value = where.selectbox(label, options, index=index, key=f"url-{param}", **kw)
    st.query_params[param] = str(value)
    return value


def _load(text: str, name: str, origin: str) -> None:
    """Make `text` the active scenario; `origin` (bundled, uploaded, edited) keys the editor so it shows it."""
    st.session_state.update(scenario_text=text, scenario_name=name, scenario_origin=origin)
    st.session_state["editor_version"] = st.session_state.get("editor_version", 0) + 1


def _load_checked(read, name: str, origin: str) -> None:
    """Make the text `read()` returns active, through the CLI's size and encoding limits; a refused text
    leaves the active scenario as it was and says why (one line, as the CLI would)."""
    try:
        _load(read(), name, origin)
    except PlannerError as e:
        st.session_state["load_error"] = str(e)


def scenario_bar() -> bool:
    """Sidebar: pick a bundled scenario, or upload / edit YAML. Returns whether the scenario is valid.
    The active scenario is one of: the picked file, the upload (until it is removed), the last applied
    edit; the sidebar says which."""
    files = data.scenario_files()
    with st.sidebar:
        st.header("Scenario")
        default = files.index("deepseek-v2-paper.yaml") if "deepseek-v2-paper.yaml" in files else 0
        requested = st.query_params.get("scenario")
        if requested in files and "loaded_file" not in st.session_state:
            default = files.index(requested)
        choice = st.selectbox("Scenario file", files, index=default, key="scenario_file")
        upload = st.file_uploader("…or upload a scenario YAML", type=["yaml", "yml"], key="upload")
        if st.session_state.get("loaded_file") != choice:
            st.session_state["loaded_file"] = choice
            _load((data.SCENARIOS / choice).read_text(), choice, "bundled")
        if upload is not None and st.session_state.get("uploaded_id") != upload.file_id:
            st.session_state["uploaded_id"] = upload.file_id
            _load_checked(lambda: decode_text(upload.getvalue(), f"{upload.name} (uploaded)"), upload.name, "uploaded")
        elif upload is None and st.session_state.pop("uploaded_id", None) is not None:  # the upload was removed
            _load((data.SCENARIOS / choice).read_text(), choice, "bundled")
        st.query_params["scenario"] = choice
        if "load_error" in st.session_state:
            st.error(plain(st.session_state.pop("load_error")))
        origin = st.session_state["scenario_origin"]
        st.caption(f"Active: **{plain(st.session_state['scenario_name'])}** ({origin})")
        with st.expander("Edit YAML"):
            edited = st.text_area("scenario", st.session_state["scenario_text"], height=300,
                                  key=f"editor-{st.session_state['editor_version']}", label_visibility="collapsed")
            if st.button("Apply edits"):
                name = st.session_state["scenario_name"]
                _load_checked(lambda: decode_text(edited.encode(), f"{name} (edited)"), name, "edited")
                st.rerun()
    text, name = active()
    sc, err = data.scenario(text, name, st.session_state["scenario_origin"])
    if err:
        st.error(plain(err))
        return False
    st.caption(f"**{plain(sc.name)}** — {plain(sc.description)}")
    return True


# Streamlit colours a delta green when it rises ("normal") or when it falls ("inverse"): lower is better
# for cost, latency and memory, higher for throughput.
DELTA_COLOR = {"cost": "inverse", "latency": "inverse", "memory": "inverse", "throughput": "normal"}


def relative_delta(value: float, base: float) -> str:
    """The change from `base` as a signed percentage ("-85.0%"): its sign is what Streamlit colours, so a
    loss is never shown as a gain (a bare ratio "0.15x" has no sign and was drawn green)."""
    return f"{(value / base - 1) * 100:+.1f}%"


def with_progress(kind: str, text: str, name: str) -> list[dict]:
    """Every variant's training or serving result, one at a time under a progress bar that names the
    variant being simulated (each is cached, in memory and on disk, after its first time)."""
    one, part = (data.training_one, "training") if kind == "training" else (data.serving_one, "inference")
    names = data.variants_with(text, name, part)
    bar = st.progress(0.0)
    out = []
    for i, variant in enumerate(names):
        bar.progress(i / len(names), text=f"simulating {kind} of {variant} ({i + 1} of {len(names)}; cached afterwards)…")
        out.append(one(text, name, variant))
    bar.empty()
    return out


def asked(key: str, choice: dict, configured: dict | None = None) -> bool:
    """A what-if simulates only on its Simulate button: True when the choices shown are the ones last
    asked for (before any ask, when they are `configured`, the scenario's own); else it says to press it."""
    token = json.dumps(choice, sort_keys=True, default=str)
    if st.button("Simulate", key=f"{key}-simulate", type="primary"):
        st.session_state[key] = token
    wanted = st.session_state.get(key, None if configured is None else json.dumps(configured, sort_keys=True, default=str))
    if wanted == token:
        return True
    st.info("Press **Simulate** to run these choices (nothing is simulated until then).")
    return False


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


def overview() -> None:
    st.title("Overview")
    text, name = active()
    rep = data.report(text, name)
    names = [v["name"] for v in rep["variants"]]
    baseline = st.selectbox("Baseline", names, index=names.index(rep["baseline"]))
    top = st.container()  # filled after the analytic charts below are drawn, which need no simulation
    _memory_and_counts(rep)
    with top:
        train = _overview_results(text, name, rep, names, baseline)
    if train:
        _download_row("training", list(train.values()))


def _overview_results(text: str, name: str, rep: dict, names: list[str], baseline: str) -> dict:
    """The simulated figures of every variant beside the baseline, and the overview chart; returns the
    training results (for their download)."""
    train, serve = _by_name(with_progress("training", text, name)), _by_name(with_progress("serving", text, name))
    cols = st.columns(len(names))
    for col, v in zip(cols, rep["variants"], strict=True):
        n = v["name"]
        with col:
            st.subheader(n)
            base_t, t = train.get(baseline, {}), train.get(n, {})
            if "gpu_hours_per_trillion_tokens" in t:
                key = "gpu_hours_per_trillion_tokens"
                delta = None if n == baseline or key not in base_t else relative_delta(t[key], base_t[key])
                st.metric("GPU-hours / T tokens", f"{t[key] / 1e3:,.1f}K", delta, delta_color=DELTA_COLOR["cost"])
                st.metric("$ / T tokens", f"${t['cost_usd_per_trillion_tokens'] / 1e6:,.2f}M")
                st.metric("MFU", f"{100 * t['mfu']:.1f}%")
            elif "error" in t:
                st.warning(plain(t["error"]))
            base_kv = next(x for x in rep["variants"] if x["name"] == baseline)["kv_cache_bytes_per_token"]
            st.metric("KV cache / token", f"{v['kv_cache_bytes_per_token'] / 1e3:.1f} KB",
                      None if n == baseline else relative_delta(v["kv_cache_bytes_per_token"], base_kv),
                      delta_color=DELTA_COLOR["memory"])
            s, base_s = serve.get(n, {}), serve.get(baseline, {})
            if "max_generation_throughput_tok_s" in s:
                key = "max_generation_throughput_tok_s"
                delta = None if n == baseline or key not in base_s else relative_delta(s[key], base_s[key])
                st.metric("Max generation tok/s", f"{s[key]:,.0f}", delta, delta_color=DELTA_COLOR["throughput"])
    st.plotly_chart(figures.plot_overview(
        names,
        [train[n]["gpu_hours_per_trillion_tokens"] / 1e3 if "gpu_hours_per_trillion_tokens" in train.get(n, {}) else None
         for n in names],
        [v["kv_cache_bytes_per_token"] / 1e3 for v in rep["variants"]],
        [serve[n]["max_generation_throughput_tok_s"] if "max_generation_throughput_tok_s" in serve.get(n, {}) else None
         for n in names],
        baseline), key="overview-chart")
    return train


def _memory_and_counts(rep: dict) -> None:
    """Training and serving memory per GPU, and the counts table, of every variant."""
    mem = [v for v in rep["variants"] if v["train_memory"]]
    smem = [v for v in rep["variants"] if v["serving_memory"]]
    left, right = st.columns(2)
    if mem:
        left.subheader("Training memory per GPU (busiest stage)")
        parts = {k: [v["train_memory"][f"{k}_bytes"] for v in mem] for k in ("weights", "grads", "optimizer", "activations")}
        left.plotly_chart(figures.plot_memory([v["name"] for v in mem], parts,
                                              [v["train_memory"]["capacity_bytes"] for v in mem]), key="memory-chart")
    if smem:
        right.subheader("Serving memory per GPU")
        right.plotly_chart(figures.plot_serving_memory(
            [v["name"] for v in smem], [v["serving_memory"]["weights_bytes"] for v in smem],
            [v["serving_memory"]["kv_budget_bytes"] for v in smem],
            [v["serving_memory"]["capacity_bytes"] for v in smem]), key="serving-memory-chart")
    st.subheader("Counts")
    st.dataframe([{"variant": v["name"], "params total (B)": round(v["params_total"] / 1e9, 2),
                   "params active (B)": round(v["params_active"] / 1e9, 2),
                   "KV elements / token": v["kv_cache_elements_per_token"], "KV bits": v["kv_cache_bits"],
                   "train GFLOP / token": round(v["train_flops_per_token"] / 1e9, 1)} for v in rep["variants"]],
                 hide_index=True)
    _download_row("report", rep["variants"])


def training() -> None:
    st.title("Training")
    text, name = active()
    sc, _ = data.scenario(text, name)
    trainable = [v for v in sc.variants if v.training is not None]
    if not trainable:
        st.info("No variant of this scenario has a `training:` part.")
        return
    chosen = url_select(st, "Variant", [x.name for x in trainable], 0, "train_variant")  # once, not per variant
    v = next(x for x in trainable if x.name == chosen)
    par, t = v.training.parallelism, v.training
    st.markdown("**What if** — change the layout and re-simulate:")
    c = st.columns(5)
    schedules = list(get_args(Parallelism.model_fields["schedule"].annotation))  # every schedule the specs know
    schedule = url_select(c[0], "Schedule", schedules, schedules.index(par.schedule) if par.schedule in schedules else 1,
                          f"{v.name}.schedule")
    per_replica = max(1, t.global_batch_seqs // par.dp)  # micro-batches must split a replica's sequences evenly
    micros = [d for d in range(1, per_replica + 1) if per_replica % d == 0]
    micro = url_select(c[1], "Micro-batches", micros, micros.index(par.micro_batches) if par.micro_batches in micros else 0,
                       f"{v.name}.micro_batches",
                       help=f"divisors of the {per_replica} sequences each data-parallel replica takes per step")
    eps = sorted({d for d in (1, 2, 4, 8, 16, 32, 64) if par.dp % d == 0 and (v.model.n_routed_experts or 1) % d == 0}
                 | {par.ep})
    ep = url_select(c[2], "EP", eps, eps.index(par.ep), f"{v.name}.ep")
    precision = url_select(c[3], "Precision", ["bf16", "fp8"], ["bf16", "fp8"].index(t.precision), f"{v.name}.precision")
    recompute = url_select(c[4], "Recompute", ["none", "selective", "full"],
                           ["none", "selective", "full"].index(par.recompute), f"{v.name}.recompute")
    overrides = _dp_follows_cp(v, {"schedule": schedule, "micro_batches": int(micro), "ep": ep, "precision": precision,
                                   "recompute": recompute, **_megatron_choices(v)})
    configured = {"schedule": par.schedule, "micro_batches": par.micro_batches, "ep": par.ep, "precision": t.precision,
                  "recompute": par.recompute, "cp": par.cp, "dp": par.dp,
                  "virtual_stages": par.virtual_stages, "moe_folding": par.moe_folding,
                  "overlap_moe_a2a": par.overlap_moe_a2a, "overlap_shared_experts": t.overlap_shared_experts}
    result = _training_result(text, name, v.name, overrides) if asked(f"train-whatif-{v.name}", overrides, configured) else None
    if result is not None:
        result, passes = result
        metric_row([("Step time", f"{result['step_time_s']:.2f} s"), ("MFU", f"{100 * result['mfu']:.1f}%"),
                    ("Bubble", f"{100 * result['bubble_fraction']:.1f}%"),
                    ("GPU-hours / T tokens", f"{result['gpu_hours_per_trillion_tokens'] / 1e3:,.1f}K"),
                    ("Tokens / s / GPU", f"{result['tokens_per_s_per_gpu']:,.0f}")])
        st.subheader("One step, per pipeline stage")
        detail = st.radio("Timeline", ["busy spans per stage", "every pass of the first 4 micro-batches"], horizontal=True,
                          key="timeline-detail")
        st.plotly_chart(figures.plot_timeline(passes, par.pp, 4 if detail.startswith("every") else None),
                        key="timeline-chart")
        st.caption(plain(training_coverage_line("Source", result.get("timing_coverage"))))
        _download_row("training-whatif", [result])
    st.subheader("Where the step goes (as configured in the scenario)")
    rows = [r for r in with_progress("training", text, name) if "step_time_s" in r]
    st.plotly_chart(figures.plot_breakdown(rows), key="breakdown-chart")


def _dp_follows_cp(v, overrides: dict) -> dict:
    """The what-if on the same GPUs: dp = GPUs / (tp x cp x pp), micro-batches of as many sequences as chosen."""
    par, t = v.training.parallelism, v.training
    dp = t.cluster.num_gpus // (par.tp * overrides["cp"] * par.pp)
    seqs_per_micro = max(1, (t.global_batch_seqs // par.dp) // overrides["micro_batches"])
    return overrides | {"dp": dp, "micro_batches": max(1, (t.global_batch_seqs // dp) // seqs_per_micro)}


def _megatron_choices(v) -> dict:
    """The what-if's Megatron-Core options: context parallelism, virtual stages (interleaved 1F1B), EP folded
    over TP x CP x DP, and combined 1F1B, which turns shared-expert overlap off as Megatron-Core does
    (README, training)."""
    par, t = v.training.parallelism, v.training
    c = st.columns(4)
    cps = sorted({x for x in (1, 2, 4, 8) if t.cluster.num_gpus % (par.tp * x * par.pp) == 0
                  and t.seq_len % (2 * x) == 0} | {par.cp})
    cp = url_select(c[3], "Context parallel (CP)", cps, cps.index(par.cp), f"{v.name}.cp",
                    help="each sequence split over cp GPUs (ring attention); DP shrinks to keep the GPUs")
    stages = sorted({1, 2, 4, 8, par.virtual_stages})
    virtual = url_select(c[0], "Virtual stages", stages, stages.index(par.virtual_stages), f"{v.name}.virtual_stages",
                         help="model chunks a pipeline rank holds (interleaved 1F1B); needs 1F1B and micro-batches "
                              "in groups of pp")
    onoff = ["off", "on"]
    folding = url_select(c[1], "EP over TP x CP x DP (folding)", onoff, int(par.moe_folding), f"{v.name}.moe_folding")
    overlap = url_select(c[2], "Combined 1F1B (EP overlap)", onoff, int(par.overlap_moe_a2a), f"{v.name}.overlap_moe_a2a",
                         help="each steady forward paired with a backward, all-to-alls under compute; turns "
                              "shared-expert overlap off")
    combined = overlap == "on"
    return {"cp": int(cp), "virtual_stages": int(virtual), "moe_folding": folding == "on", "overlap_moe_a2a": combined,
            "overlap_shared_experts": t.overlap_shared_experts and not combined}


def _training_result(text: str, name: str, variant: str, overrides: dict) -> tuple[dict, list] | None:
    """The what-if's step, or None with the reason shown (the choices made the layout invalid)."""
    try:
        with st.spinner("simulating the step…"):
            return data.training_whatif(text, name, variant, overrides)
    except PlannerError as e:  # the file is as it was: the what-if choices above made the layout invalid
        st.error(plain(f"With the what-if choices above: {e}"))
        return None


def serving() -> None:
    st.title("Serving")
    text, name = active()
    sc, _ = data.scenario(text, name)
    served = [v for v in sc.variants if v.inference is not None and v.inference.workload is not None]
    if not served:
        st.info("No variant of this scenario has an `inference:` part with a workload.")
        return
    results = _by_name(with_progress("serving", text, name))
    cols = st.columns(len(served))
    for col, v in zip(cols, served, strict=True):
        with col:
            st.subheader(v.name)
            _serving_cards(results.get(v.name, {}), v.inference)
    ok = {v.name: v for v in served if "error" not in results.get(v.name, {"error": 1})}
    _serving_whatif(text, name, served)
    curve_box = st.container()  # drawn last (the curve simulates 7 rates a variant), shown in this place
    st.subheader("TTFT and TPOT of the workload")
    st.plotly_chart(figures.plot_distributions({n: results[n]["samples"] for n in ok}), key="dist-chart")
    st.subheader("Running requests and KV cache over time")
    st.plotly_chart(figures.plot_occupancy({n: results[n]["timeline"] for n in ok}), key="occupancy-chart")
    _download_row("serving", [{k: v for k, v in r.items() if k not in ("timeline", "samples")} for r in results.values()])
    with curve_box:
        _latency_curve(text, name, ok, results)


def _latency_curve(text: str, name: str, ok: dict, results: dict) -> None:
    """Latency against steady throughput over arrival rates up to just past saturation, per variant."""
    st.subheader("Latency against throughput as the arrival rate grows, up to saturation")
    st.caption("Each point: Poisson arrivals at a share (10% to 110%) of the rate that saturates the instance, "
               "simulated for about 40 s; throughput is the steady rate between the completion-time percentiles "
               "where the run neither fills up nor drains. The dotted lines mark each variant's maximum generation "
               "throughput, measured decode-only (prompts arriving in the cache, as in a disaggregated decode pool); "
               "the workload mixes its prefill into the same iterations, so it saturates below that line.")
    curves = {n: data.latency_curve(text, name, n, tuple(data.curve_rates(
        results[n]["max_generation_throughput_tok_s"], v.inference.workload.output_tokens.mean))) for n, v in ok.items()}
    st.plotly_chart(figures.plot_latency_curve(curves, {n: results[n]["max_generation_throughput_tok_s"] for n in ok}),
                    key="latency-chart")
    _download_row("latency-curve", [dict(variant=n, **p) for n, pts in curves.items() for p in pts])


def metric_row(pairs: list[tuple[str, str]]) -> None:
    """(label, value) metrics side by side."""
    for col, (label, value) in zip(st.columns(len(pairs)), pairs, strict=True):
        col.metric(label, value)


def serving_figures(r: dict, usd_per_m_output: float | None) -> list[tuple[str, str]]:
    """(label, value) of a serving result's headline figures, as the cards and the what-if show them."""
    lat = r["latency"]
    return [("Max generation tok/s", f"{r['max_generation_throughput_tok_s']:,.0f}"),
            ("Prompt tok/s", f"{r['prompt_throughput_tok_s']:,.0f}"),
            ("$ / M output tokens (at max)", "n/a" if usd_per_m_output is None else f"${usd_per_m_output:.3f}"),
            ("TPOT p50 (workload)", "n/a" if lat["tpot_p50_s"] is None else f"{1e3 * lat['tpot_p50_s']:.0f} ms"),
            ("TTFT p99 (workload)", "n/a" if lat["ttft_p99_s"] is None else f"{lat['ttft_p99_s']:.2f} s")]


def _serving_cards(r: dict, inf) -> None:
    if "error" in r:
        st.warning(plain(r["error"]))
        return
    for label, value in serving_figures(r, usd_per_million_output_tokens(inf, r["max_generation_throughput_tok_s"])):
        st.metric(label, value)
    st.caption(plain(coverage_line("Source", r.get("timing_coverage"))))  # measured kernels or the roofline


def _serving_whatif(text: str, name: str, served: list) -> None:
    """Re-serve one variant on another GPU, layout, precision, workload or prefill/decode split."""
    with st.expander("**What if** — change the GPU, layout, precision, workload or P/D split and re-simulate"):
        chosen = url_select(st, "Variant", [x.name for x in served], 0, "serve_variant")
        v = next(x for x in served if x.name == chosen)
        inf = v.inference

        def at(options: list, value) -> int:
            return options.index(value) if value in options else 0
        c = st.columns(4)
        gpus, nodes_opts, tps = data.named_files("gpus"), [1, 2, 4, 8, 16, 18, 32], [1, 2, 4, 8]
        gpu = url_select(c[0], "GPU", gpus, at(gpus, inf.cluster.gpu.name), f"{v.name}.gpu")
        nodes = url_select(c[1], "Nodes", nodes_opts, at(nodes_opts, inf.cluster.nodes), f"{v.name}.nodes")
        tp = url_select(c[2], "Attention TP", tps, at(tps, inf.parallelism.tp), f"{v.name}.tp")
        ep_all = c[3].checkbox("EP over every GPU", value=inf.parallelism.ep == inf.cluster.num_gpus)
        c = st.columns(4)
        weight_bits = url_select(c[0], "Weight bits", [4, 8, 16], at([4, 8, 16], inf.weight_bits), f"{v.name}.weight_bits")
        kv_bits = url_select(c[1], "KV bits", [4, 6, 8, 16], at([4, 6, 8, 16], inf.kv_bits), f"{v.name}.kv_bits")
        workloads = ["(as configured)", *data.named_files("workloads")]
        workload = url_select(c[2], "Workload", workloads, 0, f"{v.name}.workload")
        prefill_nodes = url_select(c[3], "Prefill pool (P/D split)", ["(as configured)", "none", 1, 2, 4], 0,
                                   f"{v.name}.prefill_nodes", help="nodes of a separate prefill instance; none: "
                                   "prefill and decode share the instance")
        gpus_n = nodes * inf.cluster.gpus_per_node
        point = {"gpu": gpu, "nodes": nodes, "tp": tp, "ep": gpus_n if ep_all else inf.parallelism.ep,
                 "weight_bits": weight_bits, "kv_bits": kv_bits}
        extra = _serving_extra(workload, prefill_nodes, inf.cluster.gpus_per_node)
        if not asked(f"serve-whatif-{v.name}", {"point": point, "extra": extra}):
            return
        try:
            with st.spinner("simulating (the work budget of `simulate serve` applies)…"):
                r = data.serving_whatif(text, name, v.name, point, extra)
        except PlannerError as e:
            st.error(plain(str(e)))
            return
        metric_row(serving_figures(r, r["usd_per_million_output_tokens"]))


def _serving_extra(workload: str, prefill_nodes: int | str, gpus_per_node: int) -> dict:
    """Override paths for the what-if's workload and prefill pool ("(as configured)" leaves them be)."""
    extra = {}
    if workload != "(as configured)":
        extra["inference.workload"] = data.workload_dump(workload)
    if prefill_nodes == "none":
        extra["inference.prefill_pool"] = None
    elif isinstance(prefill_nodes, int):
        g = prefill_nodes * gpus_per_node
        extra["inference.prefill_pool"] = {"gpus_per_node": gpus_per_node, "nodes": prefill_nodes,
                                           "parallelism": {"tp": 1, "dp": g, "ep": g, "zero_stage": 0}}
    return extra


def _download_row(stem: str, rows: list[dict]) -> None:
    """JSON and CSV downloads of a table or result."""
    d = st.columns(2)
    d[0].download_button(f"Download {stem} (JSON)", strict_dumps(rows, indent=2), f"{stem}.json", "application/json",
                         key=f"dl-{stem}-json")
    d[1].download_button(f"Download {stem} (CSV)", data.csv_text(data.flat_rows(rows)), f"{stem}.csv", "text/csv",
                         key=f"dl-{stem}-csv")


def kernels() -> None:
    st.title("Kernels")
    profiles = sorted(str(p.relative_to(data.ROOT)) for p in (data.ROOT / "profiles").glob("*.csv"))
    if not profiles:
        st.info("No profile yet: run `planner profile`.")
        return
    path = st.selectbox("Profile", profiles)
    header, rows, err = data.profile_view(path, (data.ROOT / path).stat().st_mtime)
    st.caption(" · ".join(f"{k}: {v}" for k, v in header.items()))
    op = st.selectbox("Operator", sorted({r["op"] for r in rows}))
    st.dataframe([r for r in rows if r["op"] == op], hide_index=True)
    _download_row("profile-points", rows)
    st.subheader("Measured against the fitted roofline")
    st.plotly_chart(figures.plot_measured_vs_model(rows), key="roofline-chart")
    st.subheader("`planner check-timing`: held-out error")
    c = st.columns(2)
    c[0].metric("Measured backend, median", f"{err['measured']['median_abs_pct_error']:.1f}%")
    c[1].metric("Roofline backend, median", f"{err['roofline']['median_abs_pct_error']:.1f}%")
    vs = data.ROOT / "profiles" / "validate-sim-cpu.json"
    if vs.exists():
        st.subheader("`planner validate-sim`: simulator against a real run here")
        r = json.loads(vs.read_text())
        c = st.columns(3)
        c[0].metric("Iteration error, median", f"{r['iteration_median_abs_pct_error']:.1f}%")
        c[1].metric("Iteration error, p90", f"{r['iteration_p90_abs_pct_error']:.1f}%")
        c[2].metric("Throughput error", f"{r['throughput_abs_pct_error']:.1f}%")


def sweeps() -> None:
    st.title("Sweeps")
    files = sorted((data.ROOT / "results").glob("*.jsonl")) if (data.ROOT / "results").exists() else []
    if not files:
        st.info("No sweep results yet: run `planner sweep scenarios/sweeps/deepseek-v2-training.yaml`.")
        return
    path = st.selectbox("Result file", [str(f.relative_to(data.ROOT)) for f in files])
    try:
        header, rows, summary = data.sweep_view(path, (data.ROOT / path).stat().st_mtime)
    except PlannerError as e:
        st.error(plain(str(e)))
        return
    objectives = [(o["metric"], o["goal"]) for o in header.get("objectives", [])]
    st.caption("Objectives: " + ", ".join(f"{goal} {metric}" for metric, goal in objectives) + (
        "; constraints: " + ", ".join(_constraint_text(c) for c in header["constraints"]) if header.get("constraints") else ""))
    numeric = sorted({k for r in rows for k, v in r.get("metrics", {}).items() if isinstance(v, int | float)})
    if len(numeric) < 2:
        st.info("Not enough numeric results to plot.")
        return
    axes = [m for m, _ in objectives if m in numeric] + [m for m in numeric if m not in dict(objectives)]
    c = st.columns(2)
    x = c[0].selectbox("x", axes, index=0)
    y = c[1].selectbox("y", axes, index=1)
    ok = [{**r["metrics"], "label": r["label"]} for r in rows if r["status"] == "ok" and x in r["metrics"] and y in r["metrics"]]
    rejected = [{**r["metrics"], "label": r["label"], "reason": r["reason"]} for r in rows
                if r["status"] != "ok" and x in r["metrics"] and y in r["metrics"]]
    front = sorted((p for p in summary["front"] if x in p and y in p), key=lambda p: p[x])
    st.plotly_chart(figures.plot_pareto(ok, x, y, front, rejected),
                    key="pareto-chart")
    st.markdown(f"**Pareto front** over the sweep's objectives: {len(summary['front'])} of {summary['valid']} "
                f"feasible points ({summary['invalid']} rejected)")
    st.dataframe(summary["front"], hide_index=True)
    _download_row("sweep-front", summary["front"])
    st.markdown("**Rejected points** and why")
    st.dataframe([{"point": r["label"], "status": r["status"], "reason": r["reason"]} for r in rows if r["status"] != "ok"],
                 hide_index=True)
    _download_row("sweep-points", rows)


def _constraint_text(c: dict) -> str:
    bounds = [f">= {c['min']:g}" if c.get("min") is not None else "", f"<= {c['max']:g}" if c.get("max") is not None else ""]
    return f"{c['metric']} " + " and ".join(b for b in bounds if b)


PLAN_TABLE = (("GPU", "gpu", "{}"), ("mode", "mode", "{}"), ("layout", "layout", "{}"), ("GPUs", "gpus", "{:,}"),
              ("nodes", "nodes", "{:,}"), ("$ / hour", "usd_per_hour", "${:,.0f}"),
              ("$ / M input tokens", "usd_per_m_input_tokens", "${:.3f}"),
              ("$ / M output tokens", "usd_per_m_output_tokens", "${:.3f}"),
              ("TTFT p99", "ttft_p99_s", "{:.2f} s"), ("TPOT p50", "tpot_p50_s", "ms"))


def _plan_rows(plans: list[dict]) -> list[dict]:
    def cell(v, fmt: str) -> str:
        return "-" if v is None else f"{1e3 * v:.1f} ms" if fmt == "ms" else fmt.format(v)
    return [{label: cell(p.get(key), fmt) for label, key, fmt in PLAN_TABLE} for p in plans]


def plan() -> None:
    st.title("Plan a deployment")
    st.caption("For this model and this traffic, under these latency targets, what is the cheapest deployment? "
               "(`planner plan`: layouts screened with the simulator's iteration model, the cheapest of each GPU "
               "simulated in full.)")
    files = data.plan_files()
    name = url_select(st, "Plan file", files, 0, "plan")
    with st.expander("Edit the plan"):
        text = st.text_area("plan", (data.PLANS / name).read_text(), height=320, key=f"plan-editor-{name}",
                            label_visibility="collapsed")
    try:
        with st.spinner("screening layouts and simulating the cheapest (about 15 s the first time)…"):
            text = decode_text(text.encode(), f"{name} (edited)")
            result = data.plan(text, name)
    except PlannerError as e:
        edited = text != (data.PLANS / name).read_text()
        st.error(plain(str(e).replace(str(data.PLANS / name), f"{name} (edited)" if edited else name)))
        return
    slo, traffic = result["slo"], result["traffic"]
    st.markdown(f"**{result['plan']}**: {traffic['requests_per_s']:,.1f} requests/s "
                f"({100 * traffic['prefix_cache_hit_rate']:.0f}% prefix-cache hits); targets TTFT p99 ≤ "
                f"{slo['ttft_p99_s']:g} s, TPOT p50 ≤ {1e3 * slo['tpot_p50_s']:.1f} ms; "
                f"{result['layouts_screened']} layouts screened")
    rec = result["recommended"]
    if rec is None:
        st.warning("No plan meets the targets: the rejections below say why.")
    else:
        # two rows of three: six side by side cut the GPU and the hourly cost off at 1,400 px ("16 × h1…")
        metric_row([("Recommended", f"{rec['gpus']:,} × {rec['gpu']}"), ("Cost", f"${rec['usd_per_hour']:,.0f} / hour"),
                    ("TTFT p99 (simulated)", f"{rec['ttft_p99_s']:.2f} s")])
        metric_row([("$ / M input tokens", f"${rec['usd_per_m_input_tokens']:.3f}"),
                    ("$ / M output tokens", f"${rec['usd_per_m_output_tokens']:.3f}"),
                    ("TPOT p50 (simulated)", "n/a" if rec["tpot_p50_s"] is None else f"{1e3 * rec['tpot_p50_s']:.1f} ms")])
        st.caption(f"{rec['mode']}: {plain(rec['layout'])} ({rec['decode_units']} decode"
                   + (f" and {rec['prefill_units']} prefill" if rec["prefill_units"] else "") + " unit(s), "
                   f"{rec['nodes']} nodes); at most {rec['max_running_per_rank']} requests and "
                   f"{rec['budget_tokens_per_rank']:,} tokens per iteration on each attention rank")
    st.subheader("Cheapest verified plan per GPU type")
    st.dataframe(_plan_rows(result["per_gpu_type"]), hide_index=True)
    st.subheader("Cost against TPOT")
    st.plotly_chart(figures.plot_plan(result["front"], result["per_gpu_type"], slo["tpot_p50_s"]), key="plan-chart")
    st.subheader("Rejected plans and why")
    st.dataframe(result["rejected"], hide_index=True)
    _download_row("plan-answer", [result])
    _download_row("plan-per-gpu", result["per_gpu_type"])
    if rec is not None:
        _launch_files(text, name, result["plan"])


def _launch_files(text: str, name: str, plan_name: str) -> None:
    """The recommended deployment's launch files as a zip (`planner plan --emit`), built when asked."""
    st.subheader("Launch files")
    st.caption("The recommended deployment in the engine's own flags, checked against its recorded argument "
               "definitions, with a README of what was planned and what the files cannot express "
               "(`planner plan FILE --emit TARGET --out DIR`).")
    targets = ["sglang", "vllm", "trtllm", "dynamo", "llm-d"]
    target = url_select(st, "Engine or platform", targets, 0, "launch-target")
    st.download_button(f"Download {target} launch files (zip)", lambda: data.launch_zip(text, name, target),
                       f"{plan_name}-{target}.zip", "application/zip", key=f"dl-launch-{target}")


def validation() -> None:
    st.title("Validation")
    st.caption("`planner check-serving`: predicted TTFT and TPOT against measured serving deployments, as the "
               "statistic each point measured (the silicon sample's InferenceX rows: means of InferenceX's client; "
               "a benchmark file: medians); dev split to study, test split to report.")
    files = data.check_files()
    if not files:
        st.info("No check yet: run `planner check-serving aiconfigurator --format json > results/check-serving-dev.json`.")
        return
    path = st.selectbox("Check", files)
    try:
        result = data.check_view(path, (data.ROOT / path).stat().st_mtime)
    except PlannerError as e:
        st.error(plain(str(e)))
        return
    points = _validation_filters(result["points"])
    summary = data.check_summary(points) if points else None
    if summary is None:
        st.info("No point matches these filters.")
        return
    st.markdown(f"**{summary['simulated']} of {summary['points']} points simulated ({summary['coverage']:.0%})**")
    c = st.columns(2)
    for col, metric in zip(c, ("ttft_ms", "tpot_ms"), strict=True):
        col.plotly_chart(figures.plot_validation(points, metric), key=f"validation-{metric}")
    st.dataframe([dict(zip(CHECK_LABELS, row, strict=True)) for row in check_rows(summary)], hide_index=True)
    st.markdown("**Skipped** and why")
    st.dataframe([{"points": n, "reason": r} for r, n in summary["skipped_reasons"].items()], hide_index=True)
    _download_row("check-serving-points", points)


def _validation_filters(points: list[dict]) -> list[dict]:
    """The points of the engines, model families and modes chosen."""
    c = st.columns(3)
    chosen = {}
    for col, key in zip(c, ("engine", "family", "mode"), strict=True):
        options = sorted({p["group"][key] for p in points})
        chosen[key] = col.multiselect(key.capitalize(), options, default=options, key=f"validation-{key}")
    return [p for p in points if all(p["group"][k] in v for k, v in chosen.items())]
