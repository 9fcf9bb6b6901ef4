"""vLLM 0.2x launch commands (`vllm serve`), one per node of a unit, and the settings read back from
them. Flag meanings are vLLM's EngineArgs (VLLMARGS in docs/sources.md): --tensor-parallel-size is
attention TP within each data-parallel rank, --max-num-seqs and --max-num-batched-tokens are each DP
rank's (engine core's), and --enable-expert-parallel spreads the experts over TP x DP."""

from __future__ import annotations

import json

from costmodel.app.launch.flags import Command
from costmodel.app.launch.settings import Settings, cache_bits, cache_dtype, quantization, weight_bits_of
from costmodel.counts.memory import SERVING_MEMORY_FRACTION

PORT = 8000
RPC_PORT = 13345
KV_DTYPES = {16: None, 8: "fp8", 4: "nvfp4"}
ALL2ALL = {"low_latency": "deepep_low_latency", "normal": "deepep_high_throughput"}


def all2all(s: Settings) -> str:
    """vLLM takes one all-to-all backend for every iteration: a prefill unit's high-throughput kernels,
    else the plan's decode-only choice (an aggregated unit's prefill chunks then use it too: a README
    difference)."""
    return ALL2ALL["normal" if s.role == "prefill" else s.all_to_all]


def dp_args(s: Settings, node: int | None) -> list[tuple[str, str | None]]:
    """Data parallelism over the unit's nodes: node 0 serves the API and the others join it headless; or,
    under a LeaderWorkerSet (node None), every pod serves its own ranks (hybrid load balancing, llm-d's
    wide-EP guide) from the group's environment."""
    local = s.host_gpus // s.tp  # DP ranks on one host
    args: list[tuple[str, str | None]] = [("--data-parallel-size", str(s.dp)), ("--data-parallel-size-local", str(local))]
    if node is None and s.hosts > 1:
        return args + [("--data-parallel-hybrid-lb", None), ("--data-parallel-address", "${LWS_LEADER_ADDRESS}"),
                       ("--data-parallel-rpc-port", str(RPC_PORT)), ("--data-parallel-start-rank", "${START_RANK}")]
    if s.hosts > 1:
        args += [("--data-parallel-address", "${MASTER_ADDR}"), ("--data-parallel-rpc-port", str(RPC_PORT))]
        if node > 0:
            args += [("--headless", None), ("--data-parallel-start-rank", str(node * local))]
    return args


def command(s: Settings, model_path: str, checkpoint_bits: int, moe: bool, node: int | None,
            port: int = PORT) -> Command:
    """One node's `vllm serve` (node None: a LeaderWorkerSet pod's, see dp_args)."""
    args: list[tuple[str, str | None]] = [("--trust-remote-code", None), ("--port", str(port)),
                                          ("--tensor-parallel-size", str(s.tp))]
    if s.dp > 1:
        args += dp_args(s, node)
    elif s.hosts > 1:  # one TP group over several hosts: host 0 serves, the others run its workers headless
        args += [("--nnodes", str(s.hosts)), ("--node-rank", str(node)), ("--master-addr", "${MASTER_ADDR}")]
        args += [("--headless", None)] if node else []
    if moe and s.ep > 1:
        args += [("--enable-expert-parallel", None), ("--all2all-backend", all2all(s))]
    if s.redundant_experts:
        args += [("--enable-eplb", None), ("--eplb-config", json.dumps({"num_redundant_experts": s.redundant_experts}))]
    if s.two_batch_overlap:
        args.append(("--enable-dbo", None))
    if s.mtp_tokens:
        args.append(("--speculative-config", json.dumps({"method": "mtp", "num_speculative_tokens": s.mtp_tokens})))
    args += [("--max-num-seqs", str(s.max_running)), ("--max-num-batched-tokens", str(s.batch_tokens)),
             ("--enable-chunked-prefill" if s.chunked_prefill else "--no-enable-chunked-prefill", None),
             ("--block-size", str(s.block_tokens)), ("--gpu-memory-utilization", str(SERVING_MEMORY_FRACTION))]
    if cache_dtype(s.kv_bits, KV_DTYPES):
        args.append(("--kv-cache-dtype", cache_dtype(s.kv_bits, KV_DTYPES)))
    if quantization(s.weight_bits, checkpoint_bits):
        args.append(("--quantization", quantization(s.weight_bits, checkpoint_bits)))
    if s.role != "aggregated":
        args.append(("--kv-transfer-config", json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})))
    return Command(("vllm", "serve", model_path), tuple(args))


def read(c: Command, checkpoint_bits: int, assumed: Settings, hosts: int) -> Settings:
    """The settings node 0's command carries; the role and the node count come from the file layout
    (vLLM's flags do not name them: a P/D unit differs only by its router's use of it)."""
    tp, dp = int(c.value("--tensor-parallel-size")), int(c.value("--data-parallel-size") or 1)
    backend = c.value("--all2all-backend")
    eplb = json.loads(c.value("--eplb-config") or "{}")
    spec = json.loads(c.value("--speculative-config") or "{}")
    mode = {v: k for k, v in ALL2ALL.items()}.get(backend)
    return Settings(
        role=assumed.role, nodes=assumed.nodes, gpus_per_node=assumed.gpus_per_node, tp=tp, dp=dp,
        ep=tp * dp if c.has("--enable-expert-parallel") else 1,
        redundant_experts=int(eplb.get("num_redundant_experts", 0)), eplb=assumed.eplb,
        all_to_all=mode if mode and assumed.role != "prefill" else assumed.all_to_all,
        two_batch_overlap=c.has("--enable-dbo"),
        mtp_tokens=int(spec.get("num_speculative_tokens", 0)),
        max_running=int(c.value("--max-num-seqs")), batch_tokens=int(c.value("--max-num-batched-tokens")),
        chunked_prefill=c.has("--enable-chunked-prefill"),
        mixed_batches=True if assumed.role == "aggregated" else assumed.mixed_batches,  # vLLM always mixes
        kv_bits=cache_bits(c.value("--kv-cache-dtype"), KV_DTYPES),
        weight_bits=weight_bits_of(c.value("--quantization"), checkpoint_bits),
        block_tokens=int(c.value("--block-size")), host_gpus=assumed.host_gpus).on_hosts(tp * dp, hosts)
