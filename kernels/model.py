"""A small decoder assembled from a model spec's dims: dense first-k layers, then MoE; RMSNorm; SwiGLU.
Prefill and incremental decode go through per-layer caches. Module names follow HF DeepSeek checkpoints
(model.embed_tokens, model.layers.{i}.self_attn / mlp / input_layernorm / post_attention_layernorm,
model.norm, lm_head)."""

from __future__ import annotations

import torch
from torch import nn

from kernels.attention import Attention, KVCache
from kernels.config import ModelArgs
from kernels.layers import RMSNorm, SwiGLU
from kernels.mla import MLA, MLACache
from kernels.moe import MoE


class Block(nn.Module):
    def __init__(self, args: ModelArgs, layer: int, mla_mode: str):
        super().__init__()
        self.input_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.self_attn = MLA(args, mla_mode) if args.attention == "mla" else Attention(args)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.mlp = MoE(args) if args.is_moe_layer(layer) else SwiGLU(args.hidden_size, args.intermediate_size)

    def forward(self, x: torch.Tensor, start_pos: int, cache) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), start_pos, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, args: ModelArgs, mla_mode: str = "absorbed"):
        super().__init__()
        self.args = args
        self.mla_mode = mla_mode
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = nn.ModuleList(Block(args, i, mla_mode) for i in range(args.num_hidden_layers))
        self.norm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)
        if args.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.caches: list | None = None

    def allocate_caches(self, batch: int, max_len: int, dtype=torch.float32, device=None) -> list:
        """One cache per layer; MLA layers store what `mla_mode` needs."""
        if self.args.attention == "mla":
            self.caches = [MLACache.allocate(self.args, batch, max_len, self.mla_mode, dtype, device)
                           for _ in self.layers]
        else:
            self.caches = [KVCache.allocate(self.args, batch, max_len, dtype, device) for _ in self.layers]
        return self.caches

    def cache_elements_per_token(self) -> int:
        return sum(c.elements_per_token() for c in self.caches)

    def forward(self, tokens: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        """Logits (B, S, vocab) for tokens (B, S) at positions start_pos..start_pos+S-1."""
        x = self.embed_tokens(tokens)
        for i, layer in enumerate(self.layers):
            x = layer(x, start_pos, self.caches[i] if self.caches is not None else None)
        return self.lm_head(self.norm(x))

    @torch.inference_mode()
    def generate(self, prompt: torch.Tensor, steps: int) -> torch.Tensor:
        """Greedy decoding: one prefill, then `steps` single-token steps through the caches."""
        B, S = prompt.shape
        self.allocate_caches(B, S + steps, dtype=self.embed_tokens.weight.dtype, device=prompt.device)
        out = [prompt]
        nxt = self(prompt, 0)[:, -1].argmax(-1, keepdim=True)
        for i in range(steps):
            out.append(nxt)
            if i + 1 < steps:
                nxt = self(nxt, S + i)[:, -1].argmax(-1, keepdim=True)
        return torch.cat(out, dim=1)
