"""MLA decode (naive vs absorbed) and MoE dispatch (vectorised vs per-expert loop) on this machine, as
fractions of this machine's own peaks measured in the same run (a large copy and a large matmul).

Shapes are DeepSeek-V2-Lite's real per-layer widths (HFLITE in docs/sources.md): 16 heads, d_c 512, d_h^R 64,
hidden 2048; 64 routed experts of width 1408, top-6, 2 shared. Prints a table, writes JSON.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernels.config import ModelArgs  # noqa: E402
from kernels.mla import MLA, MLACache  # noqa: E402
from kernels.moe import MoE, dispatch_combine, dispatch_combine_loop  # noqa: E402
from kernels.timing import time_fn, time_interleaved  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "kernels-cpu.json"
CONTEXTS = (1024, 4096, 16384)
BATCH = 4


def machine_peaks() -> dict:
    src = torch.empty(64 * 2**20 // 4 * 4)  # 256 MB of fp32
    dst = torch.empty_like(src)
    copy = time_fn(lambda: dst.copy_(src))["median_s"]
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    mm = time_fn(lambda: a @ b)["median_s"]
    return {"copy_gb_s": 2 * src.numel() * 4 / copy / 1e9, "matmul_gflop_s": 2 * 2048**3 / mm / 1e9}


def mla_decode(args: ModelArgs, peaks: dict) -> list[dict]:
    naive = MLA(args, "naive").eval()
    absorbed = MLA(args, "absorbed").eval()
    absorbed.load_state_dict(naive.state_dict())
    h, dqk, dv, dc, dr = (args.num_attention_heads, args.qk_nope_head_dim + args.qk_rope_head_dim,
                          args.v_head_dim, args.kv_lora_rank, args.qk_rope_head_dim)
    rows = []
    x = torch.randn(BATCH, 1, args.hidden_size)
    for ctx in CONTEXTS:
        row = {"context": ctx, "batch": BATCH}
        caches = {mode: MLACache.allocate(args, BATCH, ctx + 1, mode) for mode in ("naive", "absorbed")}
        for cache in caches.values():
            for t in (cache.k, cache.v, cache.kv, cache.pe):
                if t is not None:
                    t.normal_()
        with torch.inference_mode():
            medians = time_interleaved({"naive": lambda c=ctx, k=caches["naive"]: naive(x, c, k),
                                        "absorbed": lambda c=ctx, k=caches["absorbed"]: absorbed(x, c, k)})
        for mode in ("naive", "absorbed"):
            s, cache = medians[mode], caches[mode]
            per_token = cache.elements_per_token()
            read_bytes = BATCH * (ctx + 1) * per_token * 4
            # attention-core FLOPs per query token: naive 2h(d_qk+d_v)t, absorbed 2h((d_c+d_r)+d_c)t
            core = 2 * h * ((dqk + dv) if mode == "naive" else (dc + dr + dc)) * (ctx + 1) * BATCH
            row[mode] = {"step_s": s, "tokens_per_s": BATCH / s, "cache_bytes_read": read_bytes,
                         "gb_s": read_bytes / s / 1e9, "frac_copy_peak": read_bytes / s / 1e9 / peaks["copy_gb_s"],
                         "gflop_s": core / s / 1e9, "frac_matmul_peak": core / s / 1e9 / peaks["matmul_gflop_s"]}
        row["speedup_absorbed_over_naive"] = row["naive"]["step_s"] / row["absorbed"]["step_s"]
        rows.append(row)
    return rows


def moe_dispatch(args: ModelArgs, peaks: dict, tokens: int) -> dict:
    layer = MoE(args).eval()
    x = torch.randn(tokens, args.hidden_size)
    with torch.inference_mode():
        route = layer.gate(x)
        medians = time_interleaved({
            "grouped": lambda: dispatch_combine(x, route.weights, route.indices, layer.experts),
            "loop": lambda: dispatch_combine_loop(x, route.weights, route.indices, layer.experts)}, repeats=9)
    vec, loop = medians["grouped"], medians["loop"]
    flops = 2 * 3 * args.hidden_size * args.moe_intermediate_size * tokens * args.num_experts_per_tok
    return {"tokens": tokens, "experts": args.n_routed_experts, "top_k": args.num_experts_per_tok,
            "vectorised_s": vec, "loop_s": loop, "speedup_vectorised_over_loop": loop / vec,
            "vectorised_frac_matmul_peak": flops / vec / 1e9 / peaks["matmul_gflop_s"],
            "loop_frac_matmul_peak": flops / loop / 1e9 / peaks["matmul_gflop_s"]}


def main() -> None:
    torch.manual_seed(0)
    cfg = yaml.safe_load((ROOT / "scenarios" / "models" / "deepseek-v2-lite.yaml").read_text())
    args = ModelArgs.from_hf(cfg, max_seq_len=max(CONTEXTS) + 8)
    peaks = machine_peaks()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"copy {peaks['copy_gb_s']:.1f} GB/s, fp32 matmul {peaks['matmul_gflop_s']:.1f} GFLOP/s")
    mla = mla_decode(args, peaks)
    print(f"\nMLA decode, one V2-Lite layer, batch {BATCH}, fp32")
    print(f"{'context':>8} {'naive tok/s':>12} {'absorbed tok/s':>15} {'naive MB read':>14} {'absorbed MB read':>17}"
          f" {'naive %BW':>10} {'absorbed %BW':>13} {'speedup':>8}")
    for r in mla:
        n, a = r["naive"], r["absorbed"]
        print(f"{r['context']:>8} {n['tokens_per_s']:>12.1f} {a['tokens_per_s']:>15.1f} {n['cache_bytes_read'] / 1e6:>14.1f}"
              f" {a['cache_bytes_read'] / 1e6:>17.1f} {100 * n['frac_copy_peak']:>9.0f}% {100 * a['frac_copy_peak']:>12.0f}%"
              f" {r['speedup_absorbed_over_naive']:>7.2f}x")
    moe = [moe_dispatch(args, peaks, tokens) for tokens in (16, 128, 512)]
    print(f"\nMoE dispatch, V2-Lite layer, {args.n_routed_experts} experts, top-{args.num_experts_per_tok}, fp32")
    print(f"{'tokens':>7} {'grouped ms':>11} {'%peak':>6} {'loop ms':>8} {'%peak':>6} {'grouped speedup':>16}")
    for r in moe:
        print(f"{r['tokens']:>7} {r['vectorised_s'] * 1e3:>11.2f} {100 * r['vectorised_frac_matmul_peak']:>5.0f}%"
              f" {r['loop_s'] * 1e3:>8.2f} {100 * r['loop_frac_matmul_peak']:>5.0f}% {r['speedup_vectorised_over_loop']:>15.2f}x")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"peaks": peaks, "threads": torch.get_num_threads(), "torch": torch.__version__,
                               "mla_decode": mla, "moe_dispatch": moe}, indent=2))
    print(f"\nwrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
