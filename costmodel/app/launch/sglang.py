"""SGLang 0.5.x launch commands (`python3 -m sglang.launch_server`), one per node of a unit, and the
settings read back from them. Flag meanings are SGLang's ServerArgs (SGLARGS in docs/sources.md): an
instance's --tp-size is all its GPUs, --dp-size its attention-DP ranks, and --max-running-requests and
--chunked-prefill-size are the instance's, divided among those ranks."""

from __future__ import annotations

from costmodel.app.launch.flags import Command
from costmodel.app.launch.settings import Settings, cache_bits, cache_dtype, quantization, weight_bits_of
from costmodel.counts.memory import SERVING_MEMORY_FRACTION

PROGRAM = ("python3", "-m", "sglang.launch_server")
PORT = 30000
KV_DTYPES = {16: None, 8: "fp8_e4m3", 4: "fp4_e2m1"}  # kv_bits -> --kv-cache-dtype (none: the model's BF16)
EPLB = {"hierarchical": "deepseek_hierarchical", "global": "deepseek"}
DEEPEP_MODE = {("decode", "low_latency"): "low_latency", ("aggregated", "low_latency"): "auto"}  # else normal


def command(s: Settings, model_path: str, checkpoint_bits: int, moe: bool, node: int) -> Command:
    args: list[tuple[str, str | None]] = [("--model-path", model_path), ("--trust-remote-code", None),
                                          ("--host", "0.0.0.0"), ("--port", str(PORT)), ("--tp-size", str(s.gpus))]
    if s.dp > 1:
        args += [("--dp-size", str(s.dp)), ("--enable-dp-attention", None)]
    if moe and s.ep > 1:
        mode = DEEPEP_MODE.get((s.role, s.all_to_all), "normal")
        args += [("--ep-size", str(s.ep)), ("--moe-a2a-backend", "deepep"), ("--deepep-mode", mode)]
    if s.redundant_experts:
        args += [("--ep-num-redundant-experts", str(s.redundant_experts)), ("--enable-eplb", None),
                 ("--eplb-algorithm", EPLB[s.eplb])]
    if s.two_batch_overlap:
        args.append(("--enable-two-batch-overlap", None))
    if s.mtp_tokens:  # a prefill unit drafts too: its KV must hold the draft layer's (P/D with MTP)
        args += [("--speculative-algorithm", "EAGLE"), ("--speculative-num-steps", str(s.mtp_tokens)),
                 ("--speculative-eagle-topk", "1"), ("--speculative-num-draft-tokens", str(s.mtp_tokens + 1))]
    chunk = str(s.batch_tokens * s.dp) if s.chunked_prefill else "-1"
    if s.role != "prefill":  # CUDA graphs up to the planned batch a rank (SGLang's default stops lower)
        args.append(("--cuda-graph-max-bs", str(s.max_running)))
    args += [("--max-running-requests", str(s.max_running * s.dp)), ("--chunked-prefill-size", chunk),
             ("--max-prefill-tokens", str(s.batch_tokens)), ("--page-size", str(s.block_tokens)),
             ("--mem-fraction-static", str(SERVING_MEMORY_FRACTION))]
    if cache_dtype(s.kv_bits, KV_DTYPES):
        args.append(("--kv-cache-dtype", cache_dtype(s.kv_bits, KV_DTYPES)))
    if quantization(s.weight_bits, checkpoint_bits):
        args.append(("--quantization", quantization(s.weight_bits, checkpoint_bits)))
    if s.mixed_batches and s.role == "aggregated":
        args.append(("--enable-mixed-chunk", None))
    if s.role != "aggregated":
        args += [("--disaggregation-mode", s.role), ("--disaggregation-transfer-backend", "mooncake")]
    if s.hosts > 1:
        args += [("--nnodes", str(s.hosts)), ("--node-rank", str(node)), ("--dist-init-addr", "${MASTER_ADDR}:20000")]
    return Command(PROGRAM, tuple(args))


def read(c: Command, checkpoint_bits: int, assumed: Settings, hosts: int | None = None) -> Settings:
    """The settings host 0's command carries (`assumed`: the plan's, for what SGLang leaves implicit;
    `hosts`: the unit's, where the command does not say, as under Dynamo's operator)."""
    gpus, dp = int(c.value("--tp-size")), int(c.value("--dp-size") or 1)
    hosts = hosts or int(c.value("--nnodes") or 1)
    mode = c.value("--deepep-mode")
    algorithm = c.value("--eplb-algorithm")
    chunk = int(c.value("--chunked-prefill-size"))
    role = c.value("--disaggregation-mode") or "aggregated"
    if role == "prefill":  # a prefill unit never decodes: its all-to-all mode stays the plan's
        mode = None
    spec_steps = int(c.value("--speculative-num-steps") or 0)
    return Settings(
        role=role, nodes=assumed.nodes, gpus_per_node=assumed.gpus_per_node,
        tp=gpus // dp, dp=dp, ep=int(c.value("--ep-size") or 1),
        redundant_experts=int(c.value("--ep-num-redundant-experts") or 0),
        eplb={v: k for k, v in EPLB.items()}[algorithm] if algorithm else assumed.eplb,
        all_to_all="low_latency" if mode in ("low_latency", "auto") else ("normal" if mode else assumed.all_to_all),
        two_batch_overlap=c.has("--enable-two-batch-overlap"), mtp_tokens=spec_steps,
        max_running=int(c.value("--max-running-requests")) // dp, batch_tokens=int(c.value("--max-prefill-tokens")),
        chunked_prefill=chunk != -1, mixed_batches=c.has("--enable-mixed-chunk") if not c.has("--disaggregation-mode")
        else assumed.mixed_batches, kv_bits=cache_bits(c.value("--kv-cache-dtype"), KV_DTYPES),
        block_tokens=int(c.value("--page-size")), weight_bits=weight_bits_of(c.value("--quantization"), checkpoint_bits),
        host_gpus=assumed.host_gpus).on_hosts(gpus, hosts)


def router(urls: dict[str, list[str]]) -> Command:
    """SGLang's router in front of the units (sglang-router; its flags are not in the recorded table)."""
    if "decode" in urls:
        args = [("--pd-disaggregation", None)] + [("--prefill", u) for u in urls["prefill"]] + [
            ("--decode", u) for u in urls["decode"]]
    else:
        args = [("--worker-urls", tuple(urls["aggregated"]))]
    return Command(("python3", "-m", "sglang_router.launch_router"), tuple(args + [("--host", "0.0.0.0"),
                                                                                  ("--port", "8000")]))
