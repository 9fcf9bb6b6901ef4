"""What the engines' flags carry of a unit's inference part, in the planner's own terms, both ways: the
settings an emitter writes (`Settings.of`) and the spec an importer rebuilds from what it read
(`Settings.onto`). Everything else of the spec (routing, MTP acceptance, the timing source, the traffic)
is an assumption of the plan, not an engine setting, and travels in planner.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from costmodel.inputs.specs import InferenceSpec, ModelSpec


@dataclass(frozen=True)
class Settings:
    role: str  # aggregated | prefill | decode
    nodes: int
    gpus_per_node: int
    tp: int  # attention TP
    dp: int  # attention DP
    ep: int
    redundant_experts: int
    eplb: str
    all_to_all: str
    two_batch_overlap: bool
    mtp_tokens: int  # 0: no speculative decoding
    max_running: int  # per attention rank
    batch_tokens: int  # per attention rank and iteration
    chunked_prefill: bool
    mixed_batches: bool
    kv_bits: float
    weight_bits: int
    block_tokens: int
    host_gpus: int  # GPUs of one host the engine starts a process group on (a node, or an NVL72 tray)

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def hosts(self) -> int:
        """The hosts a unit's launch spans (the planner's nodes are NVLink domains)."""
        return self.gpus // self.host_gpus

    def on_hosts(self, gpus: int, hosts: int) -> Settings:
        """These settings for a unit read back as `gpus` GPUs over `hosts` hosts: the planner's nodes are
        the hardware's NVLink domains (this unit's planned node size)."""
        return replace(self, nodes=gpus // self.gpus_per_node, host_gpus=gpus // hosts)

    @classmethod
    def of(cls, role: str, inf: InferenceSpec) -> Settings:
        par, cluster = inf.parallelism, inf.cluster
        host = min(cluster.gpus_per_node, cluster.gpu.gpus_per_host or cluster.gpus_per_node)
        return cls(role, cluster.nodes, cluster.gpus_per_node, par.tp, par.dp, par.ep, inf.redundant_experts,
                   inf.eplb, inf.all_to_all, inf.two_batch_overlap, inf.mtp.tokens if inf.mtp else 0, inf.max_running,
                   inf.batch_tokens, inf.chunked_prefill, inf.mixes_batches, inf.kv_bits, inf.weight_bits,
                   inf.block_tokens, host)

    def onto(self, assumed: InferenceSpec) -> InferenceSpec:
        """`assumed` (the plan's spec less what the engine expresses) with these settings; a prefill unit's
        decode-only settings (all-to-all mode, MTP) stay as assumed, since a prefill unit never decodes."""
        par = assumed.parallelism.model_copy(update={"tp": self.tp, "dp": self.dp, "ep": self.ep})
        cluster = assumed.cluster.model_copy(update={"nodes": self.nodes, "gpus_per_node": self.gpus_per_node})
        update = {"cluster": cluster, "parallelism": par, "redundant_experts": self.redundant_experts,
                  "eplb": self.eplb, "two_batch_overlap": self.two_batch_overlap, "max_running": self.max_running,
                  "max_batch_tokens": self.batch_tokens, "chunked_prefill": self.chunked_prefill,
                  "mixed_batches": self.mixed_batches, "kv_bits": self.kv_bits, "weight_bits": self.weight_bits,
                  "block_tokens": self.block_tokens}
        if self.role != "prefill":
            mtp = assumed.mtp.model_copy(update={"tokens": self.mtp_tokens}) if assumed.mtp and self.mtp_tokens else None
            update |= {"all_to_all": self.all_to_all, "mtp": mtp}
        return assumed.model_copy(update=update)

    def as_dict(self) -> dict:
        return asdict(self)


def is_moe(m: ModelSpec) -> bool:
    return m.ffn == "moe"


def cache_dtype(bits: float, dtypes: dict[int, str | None]) -> str | None:
    """The smallest of an engine's KV-cache dtypes ({bits: flag value}, None: the model's BF16) that holds
    `bits` (a 6-bit plan gets FP8: a README difference)."""
    fits = [b for b in dtypes if b >= bits]
    return dtypes[min(fits)] if fits else None


def cache_bits(dtype: str | None, dtypes: dict[int, str | None]) -> int:
    """The bits of an engine's KV-cache dtype, read back from its flag or option."""
    return {v: k for k, v in dtypes.items()}[dtype]


def quantization(weight_bits: int, checkpoint_bits: int) -> str | None:
    """SGLang's and vLLM's --quantization for weights below the checkpoint's bits: FP8 online, or an NVFP4
    (ModelOpt) checkpoint."""
    if weight_bits >= checkpoint_bits:
        return None
    return "fp8" if weight_bits == 8 else "modelopt_fp4"


def weight_bits_of(quant: str | None, checkpoint_bits: int) -> int:
    """The weights' bits a --quantization value (or none: the checkpoint's) gives."""
    return {None: checkpoint_bits, "fp8": 8, "modelopt_fp4": 4}[quant]
