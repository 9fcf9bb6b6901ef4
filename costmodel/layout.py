"""Checks that need two specs at once: a parallel layout against its model and cluster."""

from __future__ import annotations

from pathlib import Path

import yaml

from costmodel.errors import PlannerError
from costmodel.specs import ClusterSpec, ModelSpec, Parallelism, Scenario, TrainingSpec

Problem = tuple[tuple, str, str]  # (location inside the variant, problem, fix)


def layout_problems(model: ModelSpec, cluster: ClusterSpec, par: Parallelism, *, training: bool) -> list[Problem]:
    """Why a layout cannot run this model on this cluster; empty when it can."""
    out: list[Problem] = []
    if par.world_size != cluster.num_gpus:
        out.append((
            ("parallelism", "dp"),
            f"tp*pp*dp = {par.tp}*{par.pp}*{par.dp} = {par.world_size} GPUs, but the cluster has "
            f"{cluster.nodes} nodes x {cluster.gpus_per_node} = {cluster.num_gpus}",
            f"make tp*pp*dp equal {cluster.num_gpus} (e.g. dp = {max(1, cluster.num_gpus // (par.tp * par.pp))}) "
            "or change the cluster's nodes",
        ))
    if par.pp > model.num_hidden_layers:
        out.append((("parallelism", "pp"), f"pp {par.pp} exceeds the model's {model.num_hidden_layers} layers",
                    f"use pp <= {model.num_hidden_layers}"))
    if model.num_attention_heads % par.tp:
        out.append((("parallelism", "tp"), f"tp {par.tp} does not divide {model.num_attention_heads} attention heads",
                    "use a tp that divides num_attention_heads"))
    if model.ffn == "moe":
        if model.n_routed_experts % par.ep:
            out.append((("parallelism", "ep"), f"ep {par.ep} does not divide {model.n_routed_experts} routed experts",
                        "use an ep that divides n_routed_experts"))
        ep_pool = par.dp if training else par.dp * par.tp
        if ep_pool % par.ep:
            what = "dp" if training else "tp*dp"
            out.append((("parallelism", "ep"), f"ep {par.ep} does not divide {what} = {ep_pool}; expert-parallel "
                        f"ranks are carved out of the {'data-parallel' if training else 'attention'} ranks",
                        f"use an ep that divides {ep_pool}"))
    elif par.ep != 1:
        out.append((("parallelism", "ep"), f"ep {par.ep} on a dense model (ffn: dense)", "set ep: 1"))
    return out


def training_problems(model: ModelSpec, t: TrainingSpec) -> list[Problem]:
    out = [(("training",) + loc, p, f) for loc, p, f in layout_problems(model, t.cluster, t.parallelism, training=True)]
    par = t.parallelism
    per_replica = t.global_batch_seqs / par.dp
    if t.global_batch_seqs % (par.dp * par.micro_batches):
        out.append((
            ("training", "global_batch_seqs"),
            f"{t.global_batch_seqs} sequences do not split into dp {par.dp} x micro_batches {par.micro_batches} "
            f"equal micro-batches ({per_replica:g} per replica)",
            f"use a multiple of {par.dp * par.micro_batches}, or change micro_batches",
        ))
    if t.precision == "fp8" and t.cluster.gpu.peak_flops_per_s.fp8 is None:
        out.append((("training", "precision"), f"GPU {t.cluster.gpu.name} has no FP8 tensor cores in its file",
                    "use precision: bf16 or a GPU with peak_flops_per_s.fp8"))
    return out


def check_scenario(scenario: Scenario, path: Path, node: yaml.Node | None) -> None:
    """Raise a PlannerError for the first impossible layout in the scenario."""
    from costmodel.loader import line_of

    for i, v in enumerate(scenario.variants):
        problems: list[Problem] = []
        if v.training is not None:
            problems += training_problems(v.model, v.training)
        if v.inference is not None:
            inf = v.inference
            problems += [(("inference",) + loc, p, f)
                         for loc, p, f in layout_problems(v.model, inf.cluster, inf.parallelism, training=False)]
            if inf.prefill_pool is not None:
                pool = inf.prefill_pool
                cluster = inf.cluster.model_copy(update={"gpus_per_node": pool.gpus_per_node, "nodes": pool.nodes})
                problems += [(("inference", "prefill_pool") + loc, p, f)
                             for loc, p, f in layout_problems(v.model, cluster, pool.parallelism, training=False)]
        if problems:
            loc, problem, fix = problems[0]
            full = ("variants", i) + loc
            raise PlannerError(
                f"variant {v.name!r}: {problem}",
                file=str(path),
                line=line_of(node, full),
                field=".".join(map(str, full)),
                fix=fix,
            )
