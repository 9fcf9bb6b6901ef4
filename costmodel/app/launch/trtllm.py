"""TensorRT-LLM launch: `trtllm-serve` with its extra LLM-API options YAML (TRTARGS in docs/sources.md),
one per unit (multi-node units start under MPI: trtllm-llmapi-launch), and the settings read back. With
attention DP, --tp_size is all the unit's GPUs and --max_batch_size / --max_num_tokens are each rank's."""

from __future__ import annotations

from costmodel.app.launch.flags import Command
from costmodel.app.launch.settings import Settings, cache_bits, cache_dtype
from costmodel.counts.memory import SERVING_MEMORY_FRACTION

PORT = 8000
KV_DTYPES = {16: None, 8: "fp8", 4: "nvfp4"}
BLACKWELL = ("b200", "b300", "gb200", "gb300")


def moe_backend(s: Settings, gpu: str) -> str:
    """TensorRT-LLM's MoE backend for the layout (its DeepSeek-R1 guide's support matrix): wide EP
    (its own all-to-all, and the only one with a load balancer) beyond a node or with redundant experts,
    else CUTLASS on Hopper and DeepGEMM (FP8) or TRTLLM (FP4) on Blackwell."""
    if s.redundant_experts or s.ep > s.host_gpus:
        return "WIDEEP"
    if any(gpu.startswith(b) for b in BLACKWELL):
        return "DEEPGEMM" if s.weight_bits >= 8 else "TRTLLM"
    return "CUTLASS"


def options(s: Settings, gpu: str, moe: bool, experts: int, longest_prompt: int) -> dict:
    """The extra LLM-API options YAML of one unit (a P/D unit's KV transfer buffer holds the longest
    prompt, as its disaggregated guide recommends)."""
    out: dict = {"enable_attention_dp": s.dp > 1, "enable_chunked_prefill": s.chunked_prefill,
                 "kv_cache_config": {"free_gpu_memory_fraction": SERVING_MEMORY_FRACTION},
                 "cuda_graph_config": {"enable_padding": True, "max_batch_size": s.max_running}}
    if cache_dtype(s.kv_bits, KV_DTYPES):
        out["kv_cache_config"]["dtype"] = cache_dtype(s.kv_bits, KV_DTYPES)
    if moe and s.ep > 1:
        out["moe_config"] = {"backend": moe_backend(s, gpu)}
        if s.redundant_experts:
            out["moe_config"]["load_balancer"] = {"num_slots": experts + s.redundant_experts, "layer_updates_per_iter": 1}
    if s.mtp_tokens:  # the context servers too: their KV layout must match the generation servers' 
        out["speculative_config"] = {"decoding_type": "MTP", "num_nextn_predict_layers": s.mtp_tokens}
    if s.role != "aggregated":
        out["cache_transceiver_config"] = {"backend": "DEFAULT",
                                           "max_tokens_in_buffer": max(s.batch_tokens, longest_prompt)}
    if s.role == "prefill":
        out["disable_overlap_scheduler"] = True  # not supported on context servers (its disaggregated guide)
    return out


def command(s: Settings, model_path: str, config: str) -> Command:
    args: list[tuple[str, str | None]] = [
        ("--host", "0.0.0.0"), ("--port", str(PORT)), ("--backend", "pytorch"), ("--tp_size", str(s.gpus)),
        ("--ep_size", str(s.ep)), ("--max_batch_size", str(s.max_running)), ("--max_num_tokens", str(s.batch_tokens)),
        ("--trust_remote_code", None), ("--config", config)]
    if s.role != "aggregated":
        args.append(("--server_role", "CONTEXT" if s.role == "prefill" else "GENERATION"))
    return Command(("trtllm-serve", model_path), tuple(args))


def read(c: Command, opts: dict, experts: int, assumed: Settings, hosts: int) -> Settings:
    """The settings a unit's command and options carry; the weights' precision is the checkpoint's (the
    plan's, once quantized as the README says) and the block size TensorRT-LLM's own (not set)."""
    gpus = int(c.value("--tp_size"))
    dp = gpus if opts.get("enable_attention_dp") else 1
    role = {"CONTEXT": "prefill", "GENERATION": "decode"}.get(c.value("--server_role"), "aggregated")
    balancer = opts.get("moe_config", {}).get("load_balancer")
    return Settings(
        role=role, nodes=assumed.nodes, gpus_per_node=assumed.gpus_per_node, tp=gpus // dp, dp=dp, ep=int(c.value("--ep_size")),
        redundant_experts=balancer["num_slots"] - experts if balancer else 0,
        eplb=assumed.eplb, all_to_all=assumed.all_to_all, two_batch_overlap=False,
        mtp_tokens=opts.get("speculative_config", {}).get("num_nextn_predict_layers", 0),
        max_running=int(c.value("--max_batch_size")), batch_tokens=int(c.value("--max_num_tokens")),
        chunked_prefill=bool(opts.get("enable_chunked_prefill")),
        mixed_batches=True if role == "aggregated" else assumed.mixed_batches,  # in-flight batching mixes
        kv_bits=cache_bits(opts.get("kv_cache_config", {}).get("dtype"), KV_DTYPES), weight_bits=assumed.weight_bits, block_tokens=assumed.block_tokens,
        host_gpus=assumed.host_gpus).on_hosts(gpus, hosts)

