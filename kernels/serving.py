"""A real continuous-batching loop over the kernels/ decoder, for validating the serving simulator.

Each iteration runs one fused forward: a decode token for every running request (cache rows 0..B-1,
each at its own position) plus whole-prompt prefills of newly admitted requests (written into the next
free rows); attention runs per segment, the FFN/MoE over all tokens at once, as serving engines do.
Finished requests leave by moving the last row into their place, so the running rows stay contiguous.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from kernels.mla import MLA
from kernels.model import Decoder


@dataclass
class IterationRecord:
    prefill_tokens: list[int]  # prompt length of each request prefilled in this iteration
    decode_batch: int
    decode_ctx_sum: int  # tokens cached by the decoding requests before the step
    time_s: float
    finished: int = 0


@dataclass
class ServingRun:
    iterations: list[IterationRecord] = field(default_factory=list)
    total_s: float = 0.0
    generated_tokens: int = 0
    prompt_tokens: int = 0


class ContinuousBatcher:
    def __init__(self, model: Decoder, max_rows: int, max_len: int):
        assert model.args.attention == "mla" and model.mla_mode == "absorbed", "serving uses the absorbed MLA cache"
        self.model = model.eval()
        self.max_rows = max_rows
        self.caches = model.allocate_caches(max_rows, max_len)
        self.positions = torch.zeros(max_rows, dtype=torch.long)  # cached tokens per row
        self.last = torch.zeros(max_rows, dtype=torch.long)  # last generated token per row
        self.rows: list[int] = []  # request id in each row

    @torch.inference_mode()
    def step(self, prefills: list[tuple[int, torch.Tensor]]) -> dict[int, int]:
        """One iteration; returns the token each request produced."""
        m, B = self.model, len(self.rows)
        pos = self.positions[:B].clone()
        x_dec = m.embed_tokens(self.last[:B].view(B, 1)) if B else None
        x_pre = [m.embed_tokens(p.view(1, -1)) for _, p in prefills]
        for layer, cache in zip(m.layers, self.caches, strict=True):
            attn: MLA = layer.self_attn
            if B:
                x_dec = x_dec + attn.decode_rows(layer.input_layernorm(x_dec), pos, cache)
            x_pre = [xp + attn.prefill_slot(layer.input_layernorm(xp), B + j, cache) for j, xp in enumerate(x_pre)]
            parts = ([x_dec.reshape(-1, x_dec.shape[-1])] if B else []) + [xp[0] for xp in x_pre]
            flat = torch.cat(parts)
            flat = flat + layer.mlp(layer.post_attention_layernorm(flat))
            sizes = ([B] if B else []) + [xp.shape[1] for xp in x_pre]
            chunks = list(flat.split(sizes))
            if B:
                x_dec = chunks.pop(0).view(B, 1, -1)
            x_pre = [c[None] for c in chunks]
        lasts = ([x_dec[:, 0]] if B else []) + [xp[:, -1] for xp in x_pre]
        tokens = m.lm_head(m.norm(torch.cat(lasts))).argmax(-1)
        out = {}
        for r in range(B):
            out[self.rows[r]] = int(tokens[r])
            self.last[r] = tokens[r]
            self.positions[r] += 1
        for j, (rid, prompt) in enumerate(prefills):
            row = B + j
            self.rows.append(rid)
            self.positions[row] = prompt.numel()
            self.last[row] = tokens[B + j]
            out[rid] = int(tokens[B + j])
        return out

    def remove(self, rid: int) -> None:
        """Drop a finished request; the last row moves into its place."""
        r, last = self.rows.index(rid), len(self.rows) - 1
        if r != last:
            for c in self.caches:
                c.kv[r], c.pe[r] = c.kv[last], c.pe[last]
            self.positions[r], self.last[r] = self.positions[last], self.last[last]
            self.rows[r] = self.rows[last]
        self.rows.pop()


def serve(model: Decoder, prompts: list[torch.Tensor], outputs: list[int], *, max_rows: int, max_batch_tokens: int,
          max_len: int) -> ServingRun:
    """All requests queued at t = 0; admission as the simulator does without chunking: FIFO, whole
    prompts while the iteration's token budget (after one token per decode) and the rows allow."""
    batcher = ContinuousBatcher(model, max_rows, max_len)
    waiting = list(range(len(prompts)))
    generated = [0] * len(prompts)
    run = ServingRun()
    start = time.perf_counter()
    while waiting or batcher.rows:
        budget = max_batch_tokens - len(batcher.rows)
        admit: list[tuple[int, torch.Tensor]] = []
        while waiting and len(batcher.rows) + len(admit) < max_rows and prompts[waiting[0]].numel() <= budget:
            rid = waiting.pop(0)
            admit.append((rid, prompts[rid]))
            budget -= prompts[rid].numel()
        B = len(batcher.rows)
        ctx_sum = int(batcher.positions[:B].sum())
        t0 = time.perf_counter()
        produced = batcher.step(admit)
        dt = time.perf_counter() - t0
        done = 0
        for rid in produced:
            generated[rid] += 1
            if generated[rid] >= outputs[rid]:
                batcher.remove(rid)
                done += 1
        run.iterations.append(IterationRecord([p.numel() for _, p in admit], B, ctx_sum, dt, done))
        run.generated_tokens += len(produced)
        run.prompt_tokens += sum(p.numel() for _, p in admit)
    run.total_s = time.perf_counter() - start
    return run
