"""Times the layers of kernels/ over a grid of shapes and appends each point to a CSV as it finishes.

The CSV is the contract with costmodel (which never imports torch): `# key: value` header lines with the
device fingerprint and this machine's measured peaks, then one row per point:
    op, pass, dtype, shape (JSON, sorted keys), median_s, iqr_s, repeats, cv, peak_mem_bytes, status, error
median_s is the median of a point's interleaved rounds, iqr_s their spread, cv their coefficient of
variation (see measure_batch).
A run that is interrupted resumes where it stopped: finished points (ok or failed) are skipped, a
half-written last line is dropped, and nothing is measured twice.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils import benchmark

from kernels.attention import Attention, KVCache
from kernels.config import ModelArgs
from kernels.fingerprint import fingerprint_id
from kernels.fingerprint import here as machine_here
from kernels.layers import SwiGLU
from kernels.mla import MLA, MLACache
from kernels.moe import MoE

COLUMNS = ["op", "pass", "dtype", "shape", "median_s", "iqr_s", "repeats", "cv", "peak_mem_bytes", "status", "error"]
FORMAT = "moe-planner profile v2"

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


ROPE_TABLE_TOKENS = 32768  # one RoPE table for every context of a grid, so one module serves them all


def _mla_args(s: dict) -> ModelArgs:
    return ModelArgs(hidden_size=s["hidden"], num_attention_heads=s["heads"], q_lora_rank=s["q_lora"] or None,
                     kv_lora_rank=s["kv_lora"], qk_nope_head_dim=s["nope"], qk_rope_head_dim=s["rope"],
                     v_head_dim=s["v"], max_seq_len=max(ROPE_TABLE_TOKENS, s["ctx"] + 1))


def _attn_args(s: dict) -> ModelArgs:
    return ModelArgs(hidden_size=s["hidden"], num_attention_heads=s["heads"], attention="gqa",
                     num_key_value_heads=s["kv_heads"], head_dim=s["head_dim"],
                     max_seq_len=max(ROPE_TABLE_TOKENS, s["ctx"] + 1))


def _module(op: str, s: dict) -> torch.nn.Module:
    """The layer a point runs (weights random, shapes real)."""
    if op == "mla":
        return MLA(_mla_args(s), s["mode"])
    if op == "attn":
        return Attention(_attn_args(s))
    if op == "moe":
        return MoE(ModelArgs(hidden_size=s["hidden"], n_routed_experts=s["experts"], num_experts_per_tok=s["top_k"],
                             moe_intermediate_size=s["inter"], shared_expert_intermediate_size=s["shared_inter"] or None,
                             n_shared_experts=0 if not s["shared_inter"] else 1))
    if op == "ffn":
        return SwiGLU(s["hidden"], s["inter"])
    raise ValueError(f"unknown op {op!r}")


SIZE_KEYS = ("b", "q", "ctx", "tokens", "m")  # what varies along a curve: the layer itself does not


class Modules:
    """Layers built once per structure and reused by every point that differs only in size, so that a
    MoE layer's gigabytes of weights are initialised once, not once per token count."""

    def __init__(self, dtype: torch.dtype, device: str):
        self.dtype, self.device, self.layers = dtype, device, {}

    def get(self, op: str, s: dict) -> torch.nn.Module:
        key = (op, json.dumps({k: v for k, v in s.items() if k not in SIZE_KEYS}, sort_keys=True))
        if key not in self.layers:
            self.layers[key] = _module(op, s).to(self.device, self.dtype)
        return self.layers[key]


def build(op: str, pass_: str, s: dict, dtype: torch.dtype, device: str,
          modules: Modules | None = None) -> Callable[[], object]:
    """A closure that runs the point once (forward, or forward + backward)."""
    train = pass_ == "fwd_bwd"
    if op == "gemm" and dtype == torch.float8_e4m3fn:
        return _fp8_gemm(s, device)
    if op == "gemm":
        a = torch.randn(s["m"], s["k"], dtype=dtype, device=device)
        w = torch.randn(s["n"], s["k"], dtype=dtype, device=device)
        return lambda: a @ w.T
    layer = (modules or Modules(dtype, device)).get(op, s)
    if op in ("mla", "attn"):
        cache = None
        if not train and op == "mla":
            cache = MLACache.allocate(_mla_args(s), s["b"], s["ctx"], s["mode"], dtype, device)
        elif not train:
            cache = KVCache.allocate(_attn_args(s), s["b"], s["ctx"], dtype, device)
        x = torch.randn(s["b"], s["q"], s["hidden"], dtype=dtype, device=device, requires_grad=train)
        start = s["ctx"] - s["q"]
        return _runner(lambda: layer(x, start, cache), train)
    x = torch.randn(s["tokens"], s["hidden"], dtype=dtype, device=device, requires_grad=train)
    return _runner(lambda: layer(x), train)


def _fp8_gemm(s: dict, device: str) -> Callable[[], object]:
    """An FP8 (e4m3) GEMM with per-tensor scales and a BF16 output, as torch._scaled_mm runs it on
    GPUs with FP8 tensor cores (Hopper, Blackwell); elsewhere it fails and the point is recorded failed."""
    a = torch.randn(s["m"], s["k"], device=device).to(torch.float8_e4m3fn)
    w = torch.randn(s["n"], s["k"], device=device).to(torch.float8_e4m3fn)
    one = torch.ones((), device=device)
    return lambda: torch._scaled_mm(a, w.T, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


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
    """Who measured (kernels/fingerprint.py: CPU or GPU model, threads, torch, dtype) and the device's peaks."""
    dtype_name = str(dtype).replace("torch.", "")
    fp = machine_here(device, dtype_name)
    return {"format": FORMAT, **fp, "fingerprint_id": fingerprint_id(fp), "threads": torch.get_num_threads(),
            **measure_peaks(device, dtype)}


def bench(fn: Callable[[], object], min_run_time_s: float) -> tuple[float, int]:
    """(seconds per call, calls) by torch.utils.benchmark, which synchronises CUDA, keeps this process's
    thread count and sizes blocks so that timer overhead does not count. The fastest block is kept: on a
    shared machine interference only ever adds time, so the least block is the steadiest estimate."""
    m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=min_run_time_s)
    return min(m.times), len(m.times) * m.number_per_run


def measure_peaks(device: str, dtype: torch.dtype) -> dict:
    """Achievable copy bandwidth and matmul rate of this device, for the roofline's calibration."""
    n = (256 if device == "cuda" else 64) * 2**20
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    copy_s = min(bench(lambda: dst.copy_(src), 0.2)[0] for _ in range(ROUNDS))
    size = 8192 if device == "cuda" else 2048
    a = torch.randn(size, size, dtype=dtype, device=device)
    mm_s = min(bench(lambda: a @ a, 0.2)[0] for _ in range(ROUNDS))
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


def _open_profile(out: Path, device: str, dtype: torch.dtype, resume: bool, extra_header: dict | None) -> set[tuple]:
    """Start `out` with its header, or (resume) read the points it already holds."""
    dtype_name = str(dtype).replace("torch.", "")
    if out.exists() and out.stat().st_size and resume:
        header, done = read_done(out)
        if header.get("device") != device or header.get("dtype") != dtype_name:
            raise ValueError(f"{out} was measured on {header.get('device')}/{header.get('dtype')}, "
                             f"not {device}/{dtype_name}; use another --out or drop --resume")
        return done
    if out.exists() and out.stat().st_size:
        raise FileExistsError(f"{out} exists; pass --resume to continue it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    head = {**fingerprint(device, dtype), **(extra_header or {})}
    out.write_text("".join(f"# {k}: {v}\n" for k, v in head.items()) + ",".join(COLUMNS) + "\n")
    return set()


def profile(points: list[Point], out: Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
            resume: bool = False, extra_header: dict | None = None, min_time_s: float = 0.3,
            remeasure_budget_s: float = 40.0) -> Iterator[dict]:
    """Measure each point not yet in `out` in interleaved batches (see measure_batch; `remeasure_budget_s`
    in all for re-timing noisy points, shared by the batches), append each batch's rows, flush, and yield
    them. Points are taken in a fixed shuffled order, so a batch holds points of
    many curves and a noisy minute costs each curve a point or two, not a whole curve."""
    out = Path(out)
    dtype_name = str(dtype).replace("torch.", "")
    done = _open_profile(out, device, dtype, resume, extra_header)
    todo = [p for p in points if point_key(p[0], p[1], dtype_name, p[2]) not in done]
    order = random.Random(0).sample(range(len(todo)), len(todo))
    modules = Modules(dtype, device)
    with out.open("a", newline="") as f:
        writer = csv.writer(f)
        for start in range(0, len(order), BATCH_POINTS):
            batch = [todo[i] for i in order[start:start + BATCH_POINTS]]
            share_s = remeasure_budget_s * len(batch) / len(todo)
            for row in measure_batch(batch, dtype, device, min_time_s, modules, share_s):
                writer.writerow([row[c] for c in COLUMNS])
                f.flush()
                os.fsync(f.fileno())
                yield row


ROUNDS = 3  # each point is timed in this many rounds, interleaved with the other points of its batch
EXTRA_ROUNDS = 3  # at most this many more for a point whose rounds still disagree
TARGET_CV = 0.05  # ... by more than this coefficient of variation of its round medians
BATCH_POINTS = 12


@dataclass
class _Timing:
    """One point's rounds so far."""

    op: str
    pass_: str
    shape: dict
    medians: list[float] = field(default_factory=list)
    calls: int = 0
    status: str = "ok"
    error: str = ""
    fn: Callable[[], object] | None = None  # the built point, kept across its rounds
    slow: bool = False  # one call per round

    @property
    def cv(self) -> float:
        return statistics.pstdev(self.medians) / statistics.mean(self.medians) if len(self.medians) > 1 else 0.0

    def row(self, dtype: torch.dtype) -> dict:
        row = {"op": self.op, "pass": self.pass_, "dtype": str(dtype).replace("torch.", ""),
               "shape": json.dumps(self.shape, sort_keys=True), "median_s": "", "iqr_s": "", "repeats": "",
               "cv": "", "peak_mem_bytes": "", "status": self.status, "error": self.error}
        if self.status == "ok":
            q = statistics.quantiles(self.medians, n=4) if len(self.medians) > 1 else [self.medians[0]] * 3
            best = min(self.medians) if self.slow else statistics.median(self.medians)
            row.update(median_s=f"{best:.6e}", iqr_s=f"{q[2] - q[0]:.3e}",
                       repeats=self.calls, cv=f"{self.cv:.4f}")
        return row


def measure_batch(points: list[Point], dtype: torch.dtype, device: str, min_time_s: float,
                  modules: Modules | None = None, extra_budget_s: float = 0.0) -> list[dict]:
    """Time a batch of points in ROUNDS interleaved rounds (a, b, c, a, b, c, ...): a round is one
    torch.utils.benchmark block of min_time_s / ROUNDS (its fastest block kept), or for a point slower
    than that one call, ROUNDS - 1 of them after an untimed cold call. Then, within `extra_budget_s`, re-time
    round-robin the points whose rounds still vary by more than TARGET_CV (at most EXTRA_ROUNDS more).
    A point's time is the median of its rounds, or for a slow point their least (like validate-sim's
    real run, which keeps each iteration's least time); its CV is recorded. Failures (OOM included) are
    recorded, not raised."""
    modules = modules or Modules(dtype, device)
    timings = [_Timing(op, p, s) for op, p, s in points]
    run_time_s = min_time_s / ROUNDS
    for t in timings:
        _cold_call(t, dtype, device, run_time_s, modules)
    for _ in range(ROUNDS - 1):  # a slow point has ROUNDS - 1 timed calls: its cold call warmed it
        for t in (t for t in timings if t.status == "ok" and not (t.slow and len(t.medians) >= ROUNDS - 1)):
            _time_round(t, device, run_time_s)
    deadline = time.perf_counter() + extra_budget_s
    for _ in range(EXTRA_ROUNDS):
        for t in [t for t in timings if t.status == "ok" and t.cv > TARGET_CV]:
            if time.perf_counter() >= deadline:
                break
            _time_round(t, device, run_time_s)
    return [t.row(dtype) for t in timings]


def _cold_call(t: _Timing, dtype: torch.dtype, device: str, run_time_s: float, modules: Modules) -> None:
    """Build the point and call it once, untimed (page faults, allocator growth, kernel selection); a
    point that takes longer than a round is then timed one call a round, a faster one by blocks."""
    t.fn = _guard(t, device, lambda: build(t.op, t.pass_, t.shape, dtype, device, modules))
    if t.fn is None:
        return
    cold_s = _guard(t, device, lambda: _timed_call(t.fn, device))
    if cold_s is None:
        return
    t.slow = cold_s >= run_time_s
    _time_round(t, device, run_time_s)


def _timed_call(fn: Callable[[], object], device: str) -> float:
    """Seconds of one call, the device synchronised on both sides."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _time_round(t: _Timing, device: str, run_time_s: float) -> None:
    """One more round of a built point: one call when it is slow, else a benchmark block."""
    if t.slow:  # one call, timed here: benchmark.Timer.timeit would add two warm-up calls
        result = _guard(t, device, lambda: (_timed_call(t.fn, device), 1))
    else:
        result = _guard(t, device, lambda: bench(t.fn, run_time_s))
    if result is not None:
        t.medians.append(result[0])
        t.calls += result[1]


def _guard(t: _Timing, device: str, step: Callable[[], object]):
    """Run one step of a point's measurement; a failure (OOM included) is recorded on the point."""
    try:
        return step()
    except (RuntimeError, ValueError, MemoryError) as e:
        t.status = "oom" if "out of memory" in str(e).lower() or isinstance(e, MemoryError) else "failed"
        t.error = str(e).splitlines()[0][:200]
        t.fn = None
        if device == "cuda":
            torch.cuda.empty_cache()
        return None

