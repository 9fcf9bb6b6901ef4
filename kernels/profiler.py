"""Times the layers of kernels/ over a grid of shapes and appends each point to a CSV as it finishes.

The CSV is the contract with costmodel (which never imports torch): `# key: value` header lines with the
device fingerprint and this machine's measured peaks, then one row per point:
    op, pass, dtype, shape (JSON, sorted keys), median_s, iqr_s, repeats, peak_mem_bytes, status, error
A run that is interrupted resumes where it stopped: finished points (ok or failed) are skipped, a
half-written last line is dropped, and nothing is measured twice.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from kernels.attention import Attention, KVCache
from kernels.config import ModelArgs
from kernels.layers import SwiGLU
from kernels.mla import MLA, MLACache
from kernels.moe import MoE
from kernels.timing import time_fn

COLUMNS = ["op", "pass", "dtype", "shape", "median_s", "iqr_s", "repeats", "peak_mem_bytes", "status", "error"]
FORMAT = "moe-planner profile v1"

Point = tuple[str, str, dict]  # (op, pass, shape)


# ---------------------------------------------------------------------------------------------- grid


def mla_dims(args: ModelArgs) -> dict:
    return {"hidden": args.hidden_size, "heads": args.num_attention_heads, "q_lora": args.q_lora_rank or 0,
            "kv_lora": args.kv_lora_rank, "nope": args.qk_nope_head_dim, "rope": args.qk_rope_head_dim,
            "v": args.v_head_dim}


def default_grid(args: ModelArgs, size: str = "default") -> list[Point]:
    """Shapes per operator for this model's real widths. `tiny` is for tests; `cuda` is larger."""
    scale = {"tiny": 0, "default": 1, "cuda": 2}[size]
    pts: list[Point] = []
    h = args.hidden_size
    if scale == 0:
        decode_b, decode_ctx, prefill, gemm_m = (1, 2), (32, 64), (16, 32), (8, 32)
        tokens_fwd = tokens_bwd = (8, 32)
    elif scale == 1:  # about 140 points, ~9 minutes on 2 CPU cores at V2-Lite widths
        decode_b, decode_ctx = (1, 4, 16), (256, 512, 1024, 2048, 4096)
        prefill = (64, 128, 256, 512, 1024, 2048)
        tokens_fwd = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)  # down to single-token decode steps
        tokens_bwd = (8, 16, 32, 64, 128, 256, 512)
        gemm_m = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
    else:
        decode_b, decode_ctx = (1, 8, 32, 128), (1024, 2048, 4096, 8192, 16384)
        prefill = (256, 512, 1024, 2048, 4096, 8192)
        tokens_fwd = tokens_bwd = (64, 256, 1024, 4096, 8192, 16384)
        gemm_m = (64, 256, 1024, 4096, 16384)
    for m in gemm_m:
        for n, k in ((h, h), (args.moe_intermediate_size, h), (h, args.intermediate_size)):
            pts.append(("gemm", "fwd", {"m": m, "n": n, "k": k}))
    if args.attention == "mla":
        dims = mla_dims(args)
        for mode in ("absorbed", "naive"):
            for b in decode_b:
                for ctx in decode_ctx:
                    pts.append(("mla", "fwd", {**dims, "b": b, "q": 1, "ctx": ctx, "mode": mode}))
        for s in prefill:
            pts.append(("mla", "fwd", {**dims, "b": 1, "q": s, "ctx": s, "mode": "naive"}))
            pts.append(("mla", "fwd_bwd", {**dims, "b": 1, "q": s, "ctx": s, "mode": "naive"}))
    heads = args.num_attention_heads
    for kv_heads in sorted({heads, max(1, heads // 4)}, reverse=True):  # MHA and GQA with 4 groups per KV head
        for b in decode_b:
            for ctx in decode_ctx:
                pts.append(("attn", "fwd", {"hidden": h, "heads": heads, "kv_heads": kv_heads, "head_dim": 128,
                                            "b": b, "q": 1, "ctx": ctx}))
    if args.ffn == "moe":
        moe = {"hidden": h, "experts": args.n_routed_experts, "top_k": args.num_experts_per_tok,
               "inter": args.moe_intermediate_size, "shared_inter": args.shared_width}
        pts += [("moe", "fwd", {**moe, "tokens": t}) for t in tokens_fwd]
        pts += [("moe", "fwd_bwd", {**moe, "tokens": t}) for t in tokens_bwd]
    ffn = {"hidden": h, "inter": args.intermediate_size}
    pts += [("ffn", "fwd", {**ffn, "tokens": t}) for t in tokens_fwd]
    pts += [("ffn", "fwd_bwd", {**ffn, "tokens": t}) for t in tokens_bwd]
    return pts


# ------------------------------------------------------------------------------------------ builders


def _mla_args(s: dict) -> ModelArgs:
    return ModelArgs(hidden_size=s["hidden"], num_attention_heads=s["heads"], q_lora_rank=s["q_lora"] or None,
                     kv_lora_rank=s["kv_lora"], qk_nope_head_dim=s["nope"], qk_rope_head_dim=s["rope"],
                     v_head_dim=s["v"], max_seq_len=s["ctx"] + 1)


def build(op: str, pass_: str, s: dict, dtype: torch.dtype, device: str) -> Callable[[], object]:
    """A closure that runs the point once (forward, or forward + backward)."""
    train = pass_ == "fwd_bwd"
    if op == "gemm":
        a = torch.randn(s["m"], s["k"], dtype=dtype, device=device)
        w = torch.randn(s["n"], s["k"], dtype=dtype, device=device)
        return lambda: a @ w.T
    if op in ("mla", "attn"):
        if op == "mla":
            args = _mla_args(s)
            layer = MLA(args, s["mode"]).to(device, dtype)
            cache = None if train else MLACache.allocate(args, s["b"], s["ctx"], s["mode"], dtype, device)
        else:
            args = ModelArgs(hidden_size=s["hidden"], num_attention_heads=s["heads"], attention="gqa",
                             num_key_value_heads=s["kv_heads"], head_dim=s["head_dim"], max_seq_len=s["ctx"] + 1)
            layer = Attention(args).to(device, dtype)
            cache = None if train else KVCache.allocate(args, s["b"], s["ctx"], dtype, device)
        x = torch.randn(s["b"], s["q"], s["hidden"], dtype=dtype, device=device, requires_grad=train)
        start = s["ctx"] - s["q"]
        return _runner(lambda: layer(x, start, cache), train)
    if op == "moe":
        args = ModelArgs(hidden_size=s["hidden"], n_routed_experts=s["experts"], num_experts_per_tok=s["top_k"],
                         moe_intermediate_size=s["inter"], shared_expert_intermediate_size=s["shared_inter"] or None,
                         n_shared_experts=0 if not s["shared_inter"] else 1)
        layer = MoE(args).to(device, dtype)
    elif op == "ffn":
        layer = SwiGLU(s["hidden"], s["inter"]).to(device, dtype)
    else:
        raise ValueError(f"unknown op {op!r}")
    x = torch.randn(s["tokens"], s["hidden"], dtype=dtype, device=device, requires_grad=train)
    return _runner(lambda: layer(x), train)


def _runner(forward: Callable[[], torch.Tensor], train: bool) -> Callable[[], object]:
    if not train:
        def run():
            with torch.no_grad():
                return forward()
        return run

    def run_bwd():
        forward().float().sum().backward()
    return run_bwd


# ---------------------------------------------------------------------------------------- the store


def point_key(op: str, pass_: str, dtype: str, shape: dict) -> tuple:
    return (op, pass_, dtype, json.dumps(shape, sort_keys=True))


def fingerprint(device: str, dtype: torch.dtype) -> dict:
    """Who measured: device name, torch version, dtype, threads, and the device's own peaks."""
    if device == "cuda":
        name = torch.cuda.get_device_name()
    else:
        name = platform.processor() or platform.machine()
    peaks = measure_peaks(device, dtype)
    return {"format": FORMAT, "device": device, "device_name": name, "torch": torch.__version__,
            "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(), **peaks}


def measure_peaks(device: str, dtype: torch.dtype) -> dict:
    """Achievable copy bandwidth and matmul rate of this device, for the roofline's calibration."""
    n = (256 if device == "cuda" else 64) * 2**20
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    copy_s = time_fn(lambda: dst.copy_(src), device=device)["median_s"]
    size = 8192 if device == "cuda" else 2048
    a = torch.randn(size, size, dtype=dtype, device=device)
    mm_s = time_fn(lambda: a @ a, device=device)["median_s"]
    return {"peak_copy_bytes_per_s": 2 * n / copy_s, "peak_matmul_flops_per_s": 2 * size**3 / mm_s}


def read_done(path: Path) -> tuple[dict, set[tuple]]:
    """Header and finished point keys of an existing profile; drops a half-written last line."""
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        path.write_text(text)
    header, body = {}, []
    for line in text.splitlines(keepends=True):
        if line.startswith("# ") and ": " in line:
            k, v = line[2:].rstrip("\n").split(": ", 1)
            header[k] = v
        elif not line.startswith("#"):
            body.append(line)
    rows = csv.DictReader(io.StringIO("".join(body)))
    return header, {(r["op"], r["pass"], r["dtype"], r["shape"]) for r in rows}


def profile(points: list[Point], out: Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
            resume: bool = False, extra_header: dict | None = None, min_time_s: float = 0.3) -> Iterator[dict]:
    """Measure each point not yet in `out`, append it, flush, and yield the row."""
    out = Path(out)
    dtype_name = str(dtype).replace("torch.", "")
    done: set[tuple] = set()
    if out.exists() and out.stat().st_size and resume:
        header, done = read_done(out)
        if header.get("device") != device or header.get("dtype") != dtype_name:
            raise ValueError(f"{out} was measured on {header.get('device')}/{header.get('dtype')}, "
                             f"not {device}/{dtype_name}; use another --out or drop --resume")
    elif out.exists() and out.stat().st_size and not resume:
        raise FileExistsError(f"{out} exists; pass --resume to continue it or choose another --out")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        head = {**fingerprint(device, dtype), **(extra_header or {})}
        out.write_text("".join(f"# {k}: {v}\n" for k, v in head.items()) + ",".join(COLUMNS) + "\n")
    with out.open("a", newline="") as f:
        writer = csv.writer(f)
        for op, pass_, shape in points:
            key = point_key(op, pass_, dtype_name, shape)
            if key in done:
                continue
            row = measure(op, pass_, shape, dtype, device, min_time_s)
            writer.writerow([row[c] for c in COLUMNS])
            f.flush()
            os.fsync(f.fileno())
            done.add(key)
            yield row


def measure(op: str, pass_: str, shape: dict, dtype: torch.dtype, device: str, min_time_s: float = 0.3) -> dict:
    """One point: warm-up, repeats until the spread is small, median and IQR; failures are recorded."""
    row = {"op": op, "pass": pass_, "dtype": str(dtype).replace("torch.", ""), "shape": json.dumps(shape, sort_keys=True),
           "median_s": "", "iqr_s": "", "repeats": "", "peak_mem_bytes": "", "status": "ok", "error": ""}
    try:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        fn = build(op, pass_, shape, dtype, device)
        t = time_fn(fn, warmup=2, min_repeats=5, max_repeats=40, min_time_s=min_time_s, max_time_s=10 * min_time_s,
                    device=device, target_spread=0.05)
        row.update(median_s=f"{t['median_s']:.6e}", iqr_s=f"{t['iqr_s']:.3e}", repeats=t["repeats"])
        if device == "cuda":
            row["peak_mem_bytes"] = torch.cuda.max_memory_allocated()
    except (RuntimeError, ValueError, MemoryError) as e:  # OOM included: record it and go on
        row.update(status="oom" if "out of memory" in str(e).lower() or isinstance(e, MemoryError) else "failed",
                   error=str(e).splitlines()[0][:200])
        if device == "cuda":
            torch.cuda.empty_cache()
    return row
