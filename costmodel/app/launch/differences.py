"""What the launch files cannot say of the plan: each planned setting an engine cannot express, or
expresses only approximately, as one README line (never dropped silently); and the layouts an engine
cannot run at all, as one error naming the setting."""

from __future__ import annotations

from costmodel.app.launch import sglang, trtllm, vllm
from costmodel.app.launch.deployment import Deployment
from costmodel.app.launch.settings import Settings, cache_dtype, is_moe

KV_DTYPES = {"sglang": sglang.KV_DTYPES, "vllm": vllm.KV_DTYPES, "trtllm": trtllm.KV_DTYPES}
NAMES = {"sglang": "SGLang", "vllm": "vLLM", "trtllm": "TensorRT-LLM"}


def refusal(dep: Deployment, target: str) -> tuple[str, str, str] | None:
    """(field, why, fix) when the engine cannot run the deployment's layout at all."""
    for r in dep.roles:
        s = Settings.of(r.name, r.spec)
        if s.gpus % s.host_gpus:
            return ("search.rack_gpus", f"the {r.name} unit's {s.gpus} GPUs are not whole hosts of {s.host_gpus} "
                    f"(the part's gpus_per_host), so no engine can start it", f"plan rack units of whole hosts "
                    f"(multiples of {s.host_gpus})")
        if dep.engine == "vllm" and s.tp > s.host_gpus and s.dp > 1:
            return ("parallelism.tp", f"vLLM keeps each data-parallel rank's TP group on one host, but the "
                    f"{r.name} unit's attention TP{s.tp} spans hosts of {s.host_gpus} GPUs", "emit for sglang, or "
                    "plan attention TP within a host")
        if target == "llm-d" and s.dp == 1 and s.hosts > 1:
            return ("parallelism.tp", f"llm-d's LeaderWorkerSets here run data-parallel ranks, but the {r.name} "
                    f"unit is one TP{s.tp} group over {s.hosts} hosts", "emit for vllm (host scripts) or sglang")
        if dep.engine == "trtllm" and s.dp > 1 and s.tp > 1:
            return ("parallelism.tp", f"TensorRT-LLM's attention DP runs attention on one GPU a rank, but the "
                    f"{r.name} unit has attention TP{s.tp} within DP{s.dp}",
                    "emit for sglang or vllm, or plan with search.tp [1] (or TP across the whole unit)")
        if dep.engine == "trtllm" and s.ep not in (1, s.gpus):
            return ("parallelism.ep", f"the {r.name} unit's EP{s.ep} is not its {s.gpus} GPUs", "use EP over the unit")
    return None


def common(dep: Deployment, s: Settings, role: str) -> list[str]:
    """Differences every engine shares: the cache's bits, MTP's acceptance and the routing, which are the
    plan's assumptions about the model and the traffic, not settings."""
    engine, out = dep.engine, []
    dtype = cache_dtype(s.kv_bits, KV_DTYPES[engine])
    if s.kv_bits not in (16, 8, 4) or (s.kv_bits < 16 and dtype is None):
        out.append(f"{role}: kv_bits {s.kv_bits:g} was planned; {NAMES[engine]} has no such cache, so "
                   f"{dtype or 'the model dtype'} is written, and each GPU holds fewer tokens than planned")
    spec = next(r.spec for r in dep.roles if r.name == role)
    if spec.mtp and role != "prefill":
        out.append(f"{role}: MTP's acceptance ({spec.mtp.acceptance}) is the plan's assumption; the engine "
                   f"measures its own")
    if is_moe(dep.model) and s.ep > 1 and role != "prefill":
        out.append(f"{role}: expert loads follow the plan's `{spec.routing.distribution}` routing assumption; "
                   f"the engine sees your traffic's")
    return out


def sglang_notes(dep: Deployment, s: Settings, role: str) -> list[str]:
    rules = [
        (role == "decode" and s.all_to_all == "normal" and is_moe(dep.model) and s.ep > 1,
         "SGLang runs DeepEP's normal kernels without CUDA graphs, so its decode steps carry a CPU launch cost "
         "the plan does not charge (plan with all_to_all: low_latency to avoid it)"),
        (s.redundant_experts, f"the plan places {s.redundant_experts} redundant experts from its routing model "
                              f"({s.eplb} EPLB); SGLang's EPLB (--enable-eplb) places them from the loads it measures"),
        (s.weight_bits < min(8, dep.model.checkpoint_weight_bits),
         f"{s.weight_bits}-bit weights need an NVFP4 checkpoint at --model-path")]
    return [f"{role}: {text}" for bad, text in rules if bad]


def vllm_notes(dep: Deployment, s: Settings, role: str) -> list[str]:
    rules = [
        (s.redundant_experts, f"vLLM's EPLB places the {s.redundant_experts} redundant experts by its own policy, "
                              f"not the plan's {s.eplb} placement"),
        (role == "aggregated" and not s.mixed_batches,
         "vLLM always mixes prefill chunks into decode iterations (the plan ran them alone)"),
        (role == "aggregated" and s.all_to_all == "low_latency" and is_moe(dep.model) and s.ep > 1,
         "vLLM takes one all-to-all backend for every iteration, so prefill chunks also use deepep_low_latency "
         "(the plan times them with the normal kernels)"),
        (role == "prefill", "vLLM ships no P/D router: put llm-d (--emit llm-d) or Dynamo in front of these units")]
    return [f"{role}: {text}" for bad, text in rules if bad]


def trtllm_notes(dep: Deployment, s: Settings, role: str) -> list[str]:
    backend = trtllm.moe_backend(s, dep.roles[0].spec.cluster.gpu.name)
    kernels = "normal" if role == "prefill" else s.all_to_all
    rules = [
        (is_moe(dep.model) and s.ep > 1,
         f"TensorRT-LLM's MoE all-to-all is its own ({backend} backend), not DeepEP's {kernels} kernels the plan timed"),
        (s.two_batch_overlap, "two-batch overlap was planned; TensorRT-LLM has no such option, so it runs without"),
        (s.weight_bits < dep.model.checkpoint_weight_bits,
         f"TensorRT-LLM reads the weights' precision from the checkpoint: quantize to {s.weight_bits} bits "
         f"(ModelOpt) and point the command at it"),
        (s.block_tokens != 32, f"KV blocks of {s.block_tokens} tokens were planned; TensorRT-LLM's own block size "
                               f"is kept (not set)"),
        (True, "free_gpu_memory_fraction is TensorRT-LLM's share of the memory left after the weights, where the "
               "plan's 0.9 is of the whole GPU")]
    return [f"{role}: {text}" for bad, text in rules if bad]


NOTES = {"sglang": sglang_notes, "vllm": vllm_notes, "trtllm": trtllm_notes}


def differences(dep: Deployment, target: str) -> list[str]:
    """Every difference between the plan and the launch files, role by role."""
    out = []
    for r in dep.roles:
        s = Settings.of(r.name, r.spec)
        out += common(dep, s, r.name) + NOTES[dep.engine](dep, s, r.name)
    if target in ("dynamo", "llm-d") and any(Settings.of(r.name, r.spec).hosts > 1 and r.spec.cluster.gpu.gpus_per_host
                                             for r in dep.roles):
        out.append("a unit over several NVL72 trays needs NVLink between its pods: add the NVIDIA DRA driver's "
                   "ComputeDomain (IMEX channels) and a resourceClaim per your cluster; these manifests have none")
    if dep.timed_with and dep.timed_with != dep.engine:
        out.append(f"the plan was timed with {NAMES[dep.timed_with]}'s measured kernels; these files run "
                   f"{NAMES[dep.engine]}, whose kernels differ")
    if dep.engine == "sglang" and target == "sglang" and (dep.disaggregated or dep.roles[0].units > 1):
        out.append("router.sh runs sglang-router, a separate package whose flags are not in the recorded tables")
    return list(dict.fromkeys(out))
