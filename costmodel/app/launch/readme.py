"""The README.md of an emitted folder: what was planned (layout, units, cost, latency, throughput), how
to start it, and every difference between the plan and the files."""

from __future__ import annotations

from costmodel.app.launch.deployment import Deployment
from costmodel.app.launch.settings import Settings

HOW = {
    "sglang": "On each host of each unit run its `<role>/host-<i>.sh` (set MASTER_ADDR to host 0 of that unit "
              "when a unit spans hosts); then `router.sh`, if present, in front of the units.",
    "vllm": "On each host of each unit run its `<role>/host-<i>.sh` (set MASTER_ADDR to host 0 of that unit when "
            "a unit spans hosts).",
    "trtllm": "For each unit run its `<role>/launch.sh` (set HOSTS to the unit's hosts when it spans hosts); then "
              "`router.sh` (the disaggregated server) if present.",
    "dynamo": "Install the Dynamo platform (its operator), then `kubectl apply -f dynamo.yaml`; the Frontend "
              "service is the endpoint.",
    "llm-d": "Install llm-d's prerequisites (LeaderWorkerSet, a Gateway), then `kubectl apply -f llm-d.yaml` and "
             "the inference scheduler's InferencePool chart with `-f inferencepool.values.yaml`.",
}


def fmt(x: float | None, unit: str, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if x is None else f"{x * scale:,.{digits}f} {unit}"


def role_line(name: str, units: int, s: Settings) -> str:
    extra = [f"EP{s.ep}"] if s.ep > 1 else []
    extra += [f"+{s.redundant_experts} redundant experts"] if s.redundant_experts else []
    extra += ["two-batch overlap"] if s.two_batch_overlap else []
    extra += [f"MTP {s.mtp_tokens}"] if s.mtp_tokens and name != "prefill" else []
    return (f"- **{name}**: {units} unit(s) of {s.gpus} GPUs ({s.hosts} host(s) of {s.host_gpus}): attention "
            f"TP{s.tp} x DP{s.dp}, {', '.join(extra) or 'no expert parallelism'}; at most {s.max_running} requests "
            f"and {s.batch_tokens:,} tokens an iteration per attention rank; {s.kv_bits:g}-bit KV cache, "
            f"{s.weight_bits}-bit weights, blocks of {s.block_tokens} tokens")


def readme(dep: Deployment, target: str, figures: dict, diffs: list[str], files: list[str]) -> str:
    p = dep.planned
    gpu = dep.roles[0].spec.cluster.gpu.name
    lines = [f"# {dep.plan}: {p['layout']} on {gpu}, for {target}", "",
             f"Written by `planner plan --emit {target}` for {dep.engine} {dep.version}, model `{dep.model_path}`.", "",
             "## What was planned", "",
             f"- {p['mode']}, {p['gpus']} GPUs ({p['nodes']} nodes), ${p['usd_per_hour']:,.2f} an hour: "
             f"${p['usd_per_m_input_tokens']:.3f} per million input and ${p['usd_per_m_output_tokens']:.3f} per "
             f"million output tokens",
             f"- simulated at the plan's traffic: TTFT p99 {fmt(p['ttft_p99_s'], 's')}, TPOT p50 "
             f"{fmt(p['tpot_p50_s'], 'ms', 1e3, 1)}",
             f"- saturated throughput: {figures['generation_tok_s']:,.0f} output tokens/s and "
             f"{figures['prompt_tok_s']:,.0f} prompt tokens/s over all units "
             f"(`planner import-deployment` on this folder gives them again)"]
    lines += [role_line(r.name, r.units, Settings.of(r.name, r.spec)) for r in dep.roles]
    lines += ["", "## How to start it", "", HOW[target], "", "## Files", ""] + [f"- `{f}`" for f in sorted(files + ["README.md"])]
    lines += ["", "## Differences from the plan", ""] + ([f"- {d}" for d in diffs] or ["- none"])
    return "\n".join(lines) + "\n"
