"""Can this variant run at all? The one place that answers it, listing every problem at once.

Each problem names the field inside the variant (`training.parallelism.ep`), what is wrong and the fix.
The simulators assume a feasible input; the application layer (study.py) calls `variant_problems` before
any of them runs, and `planner validate` calls the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

from costmodel.counts.memory import (
    SERVING_MEMORY_FRACTION,
    TRTLLM_FREE_FRACTION,
    kv_budget_bytes,
    serving_memory,
    training_memory,
)
from costmodel.counts.reliability import recovery_load
from costmodel.inputs import kernel_db
from costmodel.inputs.budget import MAX_ITERATIONS, MAX_REQUESTS
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.specs import (
    ClusterSpec,
    InferenceSpec,
    LengthDist,
    ModelSpec,
    Parallelism,
    TrainingSpec,
    Variant,
    WorkloadSpec,
)


@dataclass(frozen=True)
class Problem:
    field: str  # dotted path inside the variant, e.g. "training.parallelism.ep"
    problem: str
    fix: str
    kind: str = "layout"  # or "memory" (weights or KV cache do not fit): how a planner files a rejection


def _within(prefix: str, problems: list[Problem]) -> list[Problem]:
    return [Problem(f"{prefix}.{p.field}", p.problem, p.fix) for p in problems]


def layout_problems(model: ModelSpec, cluster: ClusterSpec, par: Parallelism, *, training: bool) -> list[Problem]:
    """Why a parallel layout cannot run this model on this cluster; fields relative to the part."""
    out: list[Problem] = []
    if par.world_size != cluster.num_gpus:
        out.append(Problem(
            "parallelism.dp",
            f"tp x cp x pp x dp = {par.tp} x {par.cp} x {par.pp} x {par.dp} = {par.world_size} GPUs, but the cluster "
            f"has {cluster.nodes} nodes x {cluster.gpus_per_node} = {cluster.num_gpus}",
            f"make tp x cp x pp x dp equal {cluster.num_gpus} (e.g. dp = "
            f"{max(1, cluster.num_gpus // (par.tp * par.cp * par.pp))}) or change the cluster's nodes"))
    if par.cp > 1 and not training:
        out.append(Problem("parallelism.cp", "context parallelism is modelled in training only", "set cp: 1"))
    needs = [why for why, on in (("cp", par.cp > 1), ("moe_folding", training and par.moe_folding)) if on]
    if needs and not par.dp_just_outside_tp:
        out.append(Problem("parallelism.placement", f"{' and '.join(needs)} lay their groups over tp x cp x dp, so dp "
                           f"must sit just outside tp (Megatron's tp-cp-dp order; got {list(par.placement)})",
                           "use placement: [tp, dp, pp]"))
    if par.pp > model.num_hidden_layers:
        out.append(Problem("parallelism.pp", f"pp {par.pp} exceeds the model's {model.num_hidden_layers} layers",
                           f"use pp <= {model.num_hidden_layers}"))
    if model.num_attention_heads % par.tp:
        out.append(Problem("parallelism.tp", f"tp {par.tp} does not divide {model.num_attention_heads} attention heads",
                           "use a tp that divides num_attention_heads"))
    return out + _expert_layout_problems(model, par, training=training)


def _expert_layout_problems(model: ModelSpec, par: Parallelism, *, training: bool) -> list[Problem]:
    if model.ffn != "moe":
        return [Problem(f"parallelism.{k}", f"{k} {getattr(par, k)} on a dense model (ffn: dense)", f"set {k}: 1")
                for k in ("ep", "etp") if getattr(par, k) > 1]
    if par.etp > 1:
        problem = _expert_tp_problem(model, par, training)
        return [problem] if problem else []
    out = []
    if training and model.n_routed_experts % par.ep:  # serving: experts + redundant ones fill the ranks
        out.append(Problem("parallelism.ep", f"ep {par.ep} does not divide {model.n_routed_experts} routed experts",
                           "use an ep that divides n_routed_experts"))
    folded = training and par.moe_folding
    pool, what = ((par.dp, "dp") if not folded else (par.stage_gpus, "tp x cp x dp")) if training \
        else (par.dp * par.tp, "tp x dp")
    if pool % par.ep:
        ranks = "data-parallel" if training and not folded else "attention"
        out.append(Problem("parallelism.ep", f"ep {par.ep} does not divide {what} = {pool}; expert-parallel ranks "
                           f"are carved out of the {ranks} ranks", f"use an ep that divides {pool}"))
    return out


def _training_expert_tp_problem(model: ModelSpec, par: Parallelism) -> Problem | None:
    """Expert TP in training is Megatron-Core's folded expert grid: etp x ep dividing tp x cp x dp."""
    pool = par.stage_gpus
    if not par.moe_folding:
        return Problem("parallelism.etp", "expert tensor parallelism in training is modelled with the folded expert "
                       "grid only", "set moe_folding: true, or etp: 1")
    if pool % par.expert_group or model.moe_intermediate_size % par.etp or model.n_routed_experts % par.ep:
        return Problem("parallelism.etp", f"ep {par.ep} x etp {par.etp} must divide tp x cp x dp = {pool}, etp the "
                       f"expert width {model.moe_intermediate_size} and ep the {model.n_routed_experts} experts",
                       "choose ep and etp that do")
    return None


def _expert_tp_problem(model: ModelSpec, par: Parallelism, training: bool) -> Problem | None:
    """Expert tensor parallelism is modelled in serving with the expert group inside the attention TP group,
    where it moves no tokens (serve_costs.MoELayer.all_to_all)."""
    if training:
        return _training_expert_tp_problem(model, par)
    if par.tp % par.expert_group:
        return Problem("parallelism.etp", f"ep {par.ep} x etp {par.etp} = {par.expert_group} GPUs does not divide tp "
                       f"{par.tp}: expert TP across attention-DP ranks is not modelled",
                       "use ep x etp dividing tp, or etp: 1 with ep over the attention ranks")
    if model.moe_intermediate_size % par.etp or model.n_routed_experts % par.ep:
        return Problem("parallelism.etp", f"etp {par.etp} does not split the expert width {model.moe_intermediate_size}"
                       f" (or ep {par.ep} the {model.n_routed_experts} experts) evenly",
                       "use an etp dividing moe_intermediate_size and an ep dividing n_routed_experts")
    return None


def training_problems(m: ModelSpec, t: TrainingSpec) -> list[Problem]:
    """Layout, batch split, precision, schedule parity and memory of a training part."""
    par = t.parallelism
    out = layout_problems(m, t.cluster, par, training=True)
    if t.global_batch_seqs % (par.dp * par.micro_batches):
        out.append(Problem(
            "global_batch_seqs",
            f"{t.global_batch_seqs} sequences do not split into dp {par.dp} x micro_batches {par.micro_batches} "
            f"equal micro-batches ({t.global_batch_seqs / par.dp:g} per replica)",
            f"use a multiple of {par.dp * par.micro_batches}, or change micro_batches"))
    if t.precision == "fp8" and t.cluster.gpu.peak_flops_per_s.fp8 is None:
        out.append(Problem("precision", f"GPU {t.cluster.gpu.name} has no FP8 tensor cores in its file",
                           "use precision: bf16 or a GPU with peak_flops_per_s.fp8"))
    ramp = t.batch_ramp
    if ramp is not None and (ramp.start_seqs >= t.global_batch_seqs or ramp.tokens >= t.tokens):
        out.append(Problem("batch_ramp", f"the ramp must start below global_batch_seqs ({t.global_batch_seqs}) "
                           f"and end before the run's {t.tokens:g} tokens", "lower start_seqs or tokens"))
    out += _interleaving_problems(m, par) + _combined_1f1b_problems(m, t)
    if par.cp > 1 and t.seq_len % (2 * par.cp):
        out.append(Problem("parallelism.cp", f"cp {par.cp} splits each sequence into 2 x cp = {2 * par.cp} chunks "
                           f"(the causal load balance, MCCP), which {t.seq_len} tokens do not divide",
                           f"use a cp with 2 x cp dividing seq_len {t.seq_len}"))
    if t.reliability is not None and recovery_load(m, t, t.reliability) >= 1:
        out.append(Problem("reliability.gpu_mtbf_hours", f"{t.cluster.num_gpus:,} GPUs at {t.reliability.gpu_mtbf_hours:g} "
                           "GPU-hours between interruptions lose the job faster than it recovers, so the run never ends",
                           "raise gpu_mtbf_hours, or shorten restart_s or the checkpoint interval"))
    if par.schedule == "dualpipe" and (par.pp % 2 or par.micro_batches % 2):
        out.append(Problem("parallelism.micro_batches", "dualpipe needs an even pp and an even number of "
                           f"micro-batches (half enter from each end; got pp {par.pp}, micro_batches "
                           f"{par.micro_batches})", "use even pp and micro_batches"))
    return out if out else _training_memory_problems(m, t)


def _interleaving_problems(m: ModelSpec, par: Parallelism) -> list[Problem]:
    """Megatron's interleaved 1F1B: on 1F1B only, across more than one stage, with micro-batches in groups
    of pp (MCORE: the micro-batches must divide into groups of the pipeline size) and a layer or more in
    each of the pp x virtual_stages model chunks."""
    v = par.virtual_stages
    if v == 1:
        return _split_problems(m, par)
    if par.schedule != "1f1b" or par.pp == 1:
        return [Problem("parallelism.virtual_stages", f"{v} virtual stages need schedule 1f1b over pp > 1 "
                        f"(got schedule {par.schedule}, pp {par.pp})", "use schedule: 1f1b and pp >= 2, or virtual_stages: 1")]
    out = _split_problems(m, par)
    if par.micro_batches % par.pp:
        out.append(Problem("parallelism.micro_batches", f"interleaved 1F1B runs micro-batches in groups of pp "
                           f"{par.pp}; {par.micro_batches} is not a multiple", f"use a multiple of {par.pp}"))
    if par.pp * v > m.num_hidden_layers and par.layer_split is None:
        out.append(Problem("parallelism.virtual_stages", f"pp {par.pp} x virtual_stages {v} = {par.pp * v} model "
                           f"chunks, more than the model's {m.num_hidden_layers} layers",
                           f"use virtual_stages <= {m.num_hidden_layers // par.pp}"))
    return out


def _split_problems(m: ModelSpec, par: Parallelism) -> list[Problem]:
    """An explicit layer split: one count per virtual stage, adding up to the model's layers."""
    split, stages = par.layer_split, par.pp * par.virtual_stages
    if split is None or (len(split) == stages and sum(split) == m.num_hidden_layers):
        return []
    return [Problem("parallelism.layer_split", f"{len(split)} counts adding up to {sum(split)} layers, but the layout "
                    f"has pp {par.pp} x virtual_stages {par.virtual_stages} = {stages} virtual stages and the model "
                    f"{m.num_hidden_layers} layers", f"give {stages} counts adding up to {m.num_hidden_layers}")]


def _combined_1f1b_problems(m: ModelSpec, t: TrainingSpec) -> list[Problem]:
    """Megatron-Core's rules for combined 1F1B (MCA2A): an MoE model over EP > 1, 1F1B with virtual
    stages when pp > 1, no full recompute, and shared-expert overlap off (the pair hides the all-to-all)."""
    par = t.parallelism
    if not par.overlap_moe_a2a:
        return []
    rules = [(m.ffn != "moe" or par.ep == 1, "parallelism.ep", "it overlaps the EP all-to-all: an MoE model over ep > 1",
              "use ep > 1, or overlap_moe_a2a: false"),
             (par.schedule != "1f1b" or (par.pp > 1 and par.virtual_stages == 1), "parallelism.virtual_stages",
              f"it runs on 1F1B with virtual stages when pp > 1 (got schedule {par.schedule}, pp {par.pp}, "
              f"virtual_stages {par.virtual_stages})", "use schedule: 1f1b and virtual_stages >= 2 (or pp 1)"),
             (par.recompute == "full", "parallelism.recompute", "it does not run with full recompute",
              "use recompute: selective or none"),
             (t.overlap_shared_experts, "overlap_shared_experts", "Megatron-Core turns shared-expert overlap off "
              "under it (the pair hides the dispatch instead)", "set overlap_shared_experts: false")]
    return [Problem(field, f"overlap_moe_a2a (combined 1F1B): {why}", fix) for bad, field, why, fix in rules if bad]


def _training_memory_problems(m: ModelSpec, t: TrainingSpec) -> list[Problem]:
    mem = training_memory(m, t)
    if mem.fits:
        return []
    return [Problem(
        "parallelism",
        f"needs {mem.total_bytes / 1e9:.1f} GB per GPU on pipeline stage {mem.stage} (weights "
        f"{mem.weights_bytes / 1e9:.1f}, grads {mem.grads_bytes / 1e9:.1f}, optimizer {mem.optimizer_bytes / 1e9:.1f}, "
        f"activations {mem.activations_bytes / 1e9:.1f}) but {t.cluster.gpu.name} has {mem.capacity_bytes / 1e9:.0f} GB",
        "raise recompute (selective, full), zero_stage, pp or ep, or use fewer micro-batches in flight")]


def longest_tokens(d: LengthDist, context: int) -> int:
    """The longest length the distribution draws; an untruncated lognormal is cut at the model's context."""
    return {"fixed": d.value, "uniform": d.high}.get(d.dist) or min(d.max or context, context)


def serving_option_problems(m: ModelSpec, inf: InferenceSpec, pool: bool = False) -> list[Problem]:
    """Redundant experts, routing loads, MTP and the all-to-all options against what the model has
    (for a prefill pool, only what the pool sets itself)."""
    out, ep = [], inf.parallelism.ep
    if inf.redundant_experts and (m.ffn != "moe" or ep == 1):
        out.append(Problem("redundant_experts", "redundant experts need a MoE model spread over ep > 1 GPUs",
                           "remove redundant_experts, or raise ep"))
    elif m.ffn == "moe" and (m.n_routed_experts + inf.redundant_experts) % ep:
        out.append(_expert_fill_problem(m, inf))
    if pool:
        return out
    if m.ffn != "moe" and inf.moe_weight_bits is not None:
        out.append(Problem("moe_weight_bits", "a dense model has no routed experts to store at their own precision",
                           "remove moe_weight_bits (weight_bits sets every weight)"))
    if m.ffn != "moe" and (inf.two_batch_overlap or inf.all_to_all != "normal"):
        out.append(Problem("two_batch_overlap", "a dense model has no expert all-to-all to overlap or choose "
                           "kernels for", "remove two_batch_overlap and all_to_all"))
    loads = inf.routing.expert_loads
    if loads is not None and m.ffn == "moe" and len(loads) != m.n_routed_experts:
        out.append(Problem("routing.expert_loads", f"has {len(loads)} loads for {m.n_routed_experts} routed experts",
                           "give one load per routed expert"))
    out += engine_problems(inf)
    if inf.mtp is not None and inf.mtp.tokens > m.num_nextn_predict_layers:
        out.append(Problem("mtp.tokens", f"{inf.mtp.tokens} drafted tokens but the model has "
                           f"{m.num_nextn_predict_layers} MTP module(s) (num_nextn_predict_layers)",
                           f"use mtp.tokens <= {m.num_nextn_predict_layers}, or a model with MTP modules"))
    return out


def engine_problems(inf: InferenceSpec) -> list[Problem]:
    """An engine needs a GPU the kernel database measured, and a version of the engine it holds."""
    if inf.engine is None or inf.profile is not None:
        return []
    gpu = inf.cluster.gpu
    if gpu.kernel_database is None:
        return [Problem("engine", f"GPU {gpu.name} names no kernel-database GPU to time {inf.engine.name}'s kernels",
                        "add `kernel_database: {gpu: ..., source: ...}` to the GPU file, or remove engine "
                        "(the roofline then times every kernel)")]
    try:
        kernel_db.resolve(gpu.kernel_database.gpu, inf.engine.name, inf.engine.version)
    except PlannerError as e:
        field = {"--version": "engine.version", "--engine": "engine.name"}.get(e.field or "", "engine")
        fix = e.fix or ""
        if e.field == "--gpu":  # the database's GPU names are what the GPU file's kernel_database.gpu takes
            fix = (f"in GPU {gpu.name}'s file, set kernel_database.gpu to a database GPU that has it "
                   f"({', '.join(kernel_db.gpus_measuring(inf.engine.name))}), or remove engine")
        return [Problem(field, e.problem, fix)]
    return []


def _expert_fill_problem(m: ModelSpec, inf: InferenceSpec) -> Problem:
    """ep does not split the experts (and redundant ones) evenly: blame ep, naming the eps that work,
    unless redundant experts were set, which are then what to change."""
    par, experts, extra = inf.parallelism, m.n_routed_experts, inf.redundant_experts
    pool = par.tp * par.dp
    if extra:
        return Problem("redundant_experts", f"{experts} experts + {extra} redundant do not fill ep {par.ep} GPUs "
                       "evenly", f"use a number of redundant experts that makes experts + redundant a multiple of {par.ep}")
    eps = [d for d in range(1, pool + 1) if pool % d == 0 and experts % d == 0]
    return Problem("parallelism.ep", f"ep {par.ep} does not divide the {experts} routed experts",
                   f"use an ep that divides both {experts} and tp x dp = {pool}: {', '.join(map(str, eps))} "
                   f"(or add redundant_experts to make experts + redundant a multiple of {par.ep})")


def instance_problems(m: ModelSpec, inf: InferenceSpec, where: str = "parallelism", pool: bool = False) -> list[Problem]:
    """Layout, options and weights of one serving instance (the variant's, or its prefill pool)."""
    out = layout_problems(m, inf.cluster, inf.parallelism, training=False) + serving_option_problems(m, inf, pool)
    if out:
        return out
    mem = serving_memory(m, inf)
    if not mem.fits:
        room = kv_budget_bytes(mem.capacity_bytes, mem.weights_bytes, inf) + mem.weights_bytes
        out.append(Problem(where, f"the weights need {mem.weights_bytes / 1e9:.1f} GB per GPU, more than the "
                           f"{room / 1e9:.1f} GB of its {mem.capacity_bytes / 1e9:.0f} GB {memory_rule(inf)}",
                           "spread the model over more GPUs (tp, ep) or lower weight_bits", "memory"))
    return out


def memory_rule(inf: InferenceSpec) -> str:
    """How the instance's engine splits HBM, in words."""
    engine = inf.engine.name if inf.engine else None
    fraction = f"that a {SERVING_MEMORY_FRACTION} memory fraction allows"
    return {"trtllm": f"that TensorRT-LLM leaves for weights (the KV cache then takes {TRTLLM_FREE_FRACTION} of the rest)",
            "sglang": "that SGLang's static pool holds (all HBM less the reserve it computes)",
            "vllm": f"{fraction} (vLLM's default gpu_memory_utilization)"}.get(
        engine, f"{fraction} (the rule without an engine: vLLM's default gpu_memory_utilization)")


def longest_request(prompt: LengthDist, output: LengthDist, context: int) -> int:
    """The longest prompt plus the longest output the length distributions draw."""
    return longest_tokens(prompt, context) + longest_tokens(output, context)


def context_problems(m: ModelSpec, longest_request_tokens: int, field: str = "workload") -> list[Problem]:
    """A request of `longest_request_tokens` (prompt + output) must fit the model's context."""
    if longest_request_tokens <= m.max_position_embeddings:
        return []
    return [Problem(field, f"a request of {longest_request_tokens} tokens exceeds the model's context "
                    f"of {m.max_position_embeddings} (max_position_embeddings)",
                    "cap the prompt and output lengths (max:) so they sum to at most the context")]


def request_problems(m: ModelSpec, inf: InferenceSpec, longest_request_tokens: int) -> list[Problem]:
    """A request of `longest_request_tokens` (prompt + output) must fit the context and one rank's KV cache."""
    out = context_problems(m, longest_request_tokens)
    rank_tokens = int(serving_memory(m, inf).kv_capacity_tokens) // inf.block_tokens * inf.block_tokens
    if longest_request_tokens > rank_tokens:
        out.append(Problem("workload", f"a request of {longest_request_tokens} tokens needs more KV cache than one "
                           f"attention rank holds ({rank_tokens} tokens)",
                           "cap the prompt/output lengths (max:) or free memory (lower kv_bits, more GPUs)", "memory"))
    return out


def inference_problems(m: ModelSpec, inf: InferenceSpec, longest_request_tokens: int | None = None) -> list[Problem]:
    """Layout and weights of the instance and of its prefill pool, and the longest request's fit."""
    out = instance_problems(m, inf)
    if inf.prefill_pool is not None:
        out += _within("prefill_pool", instance_problems(m, inf.prefill_instance(), pool=True))
    if out:
        return out
    if longest_request_tokens is None and inf.workload is not None and inf.workload.arrival != "trace":
        w = inf.workload
        longest_request_tokens = longest_request(w.prompt_tokens, w.output_tokens, m.max_position_embeddings)
    out = request_problems(m, inf, longest_request_tokens) if longest_request_tokens else []
    return out or work_problems(m, inf)


SATURATION_MAX_REQUESTS = MAX_REQUESTS  # bounds the work of the two saturated runs


def saturating_requests(m: ModelSpec, inf: InferenceSpec, w: WorkloadSpec) -> int:
    """Requests queued at once that fill the KV cache three times over, so that the instance runs full
    between filling up and draining (at most SATURATION_MAX_REQUESTS)."""
    capacity = serving_memory(m, inf).kv_capacity_tokens * inf.parallelism.dp
    mean_tokens = w.prompt_tokens.mean + w.output_tokens.mean / 2
    return int(min(SATURATION_MAX_REQUESTS, max(1.0, 3 * capacity / mean_tokens)))


def saturation_requests(m: ModelSpec, inf: InferenceSpec, w: WorkloadSpec) -> int:
    """The maximum-throughput runs' request count: the workload's `saturation_requests` when it states
    one (simulate serve --requests sets it), else the saturating count, at least the workload's own."""
    if w.saturation_requests is not None:
        return w.saturation_requests
    return min(SATURATION_MAX_REQUESTS, max(w.requests, saturating_requests(m, inf, w)))


def saturation_note(m: ModelSpec, inf: InferenceSpec, w: WorkloadSpec) -> str | None:
    """None when the maximum-throughput runs saturate the instance, else why their figures are low."""
    n, need = saturation_requests(m, inf, w), saturating_requests(m, inf, w)
    if w.arrival == "trace" or n >= need:
        return None
    return (f"the maximum throughputs come from {n:,} requests queued at once; the instance saturates at about "
            f"{need:,} (its KV cache filled three times), so they are a lower bound: raise --requests (or "
            f"the workload's saturation_requests) to {need:,}")


def work_problems(m: ModelSpec, inf: InferenceSpec) -> list[Problem]:
    """A serving run whose iterations (requests x output tokens over the requests one iteration carries)
    would exceed MAX_ITERATIONS, with the inputs that set it."""
    w = inf.workload
    if w is None or w.arrival == "trace":
        return []
    requests = max(w.requests, saturation_requests(m, inf, w))
    mean_ctx = w.prompt_tokens.mean + w.output_tokens.mean / 2
    per_rank = min(inf.max_running, max(1.0, serving_memory(m, inf).kv_capacity_tokens / mean_ctx))
    iterations = requests * w.output_tokens.mean / (per_rank * inf.parallelism.dp)
    if iterations <= MAX_ITERATIONS:
        return []
    return [Problem("max_running", f"the serving runs would simulate about {iterations:,.0f} iterations (over "
                    f"{MAX_ITERATIONS:,}): {per_rank:,.0f} requests in flight per rank, {requests:,} requests",
                    "raise max_running (or the KV cache: kv_bits, GPUs), or lower the workload's requests")]


def variant_problems(v: Variant, parts: tuple[str, ...] = ("training", "inference"),
                     longest_request_tokens: int | None = None) -> list[Problem]:
    """Every problem of the variant's training and inference parts (those named in `parts`)."""
    out: list[Problem] = []
    if "training" in parts and v.training is not None:
        out += _within("training", training_problems(v.model, v.training))
    if "inference" in parts and v.inference is not None:
        out += _within("inference", inference_problems(v.model, v.inference, longest_request_tokens))
    return out
