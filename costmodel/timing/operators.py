"""Operator timing model: one interface, `Timer.time(op, shape, pass_)`, with two backends.

measured — the device's own profile, interpolated along each operator curve in the order of a roofline
           fitted to that curve, monotone in work (see MeasuredBackend).
roofline — max(FLOPs / (peak·e_c), bytes / (bw·e_m)) + latency, with e_c, e_m and latency per operator
           fitted to a profile when there is one, else the sourced Hopper defaults below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from costmodel.counts.opcounts import BETWEEN_KEYS, SIZE_KEYS, op_counts, structure_key
from costmodel.inputs.profiles import Profile
from costmodel.inputs.specs import NVFP4_BITS_PER_WEIGHT


@dataclass(frozen=True)
class Device:
    name: str
    peak_flops_per_s: float
    peak_bytes_per_s: float
    dtype_bytes: float  # bytes a weight or activation element moves at this precision

    @classmethod
    def from_profile(cls, p: Profile) -> Device:
        return cls(p.header.get("device_name", "profiled"), p.peak_flops_per_s, p.peak_bytes_per_s, p.dtype_bytes)

    @classmethod
    def from_gpu(cls, gpu, precision: str = "bf16", stack_efficiency: float = 1.0,
                 element_bytes: float | None = None) -> Device:
        """A GPU file's peaks at `precision` (bf16 | fp8 | fp4; 1 B per element under fp8, NVFP4's 4.5 bits
        under fp4), scaled by the measured fraction of kernel speed a software stack reaches end to end (1 =
        kernel benchmarks). `element_bytes`: what an element moves when it is stored narrower than the math
        runs (NVFP4 weights dequantised to FP8 math on a GPU without FP4 tensor cores)."""
        precision = gpu.compute_precision(precision)
        nbytes = element_bytes or {"fp8": 1, "fp4": NVFP4_BITS_PER_WEIGHT / 8}.get(precision, 2)
        return cls(gpu.name, gpu.peak_flops(precision) * stack_efficiency,
                   gpu.hbm_bw_bytes_per_s.value * stack_efficiency, nbytes)


@dataclass(frozen=True)
class Efficiency:
    compute: float  # fraction of peak FLOP/s reached
    memory: float  # fraction of peak bandwidth reached
    latency_s: float = 0.0
    source: str = ""


# Sourced defaults for GPUs without a profile (FMLA, DGEMM and DEP in docs/sources.md, all measured on H800 SXM5):
_GEMM = Efficiency(1358 / 1978.9, 2.7 / 3.35, 0.0,
                   "DGEMM README: 1358 of 1979 FP8 TFLOPS dense (M=4096); up to 2.7 TB/s of 3.35 at M=64")
_MLA = Efficiency(660 / 989.4, 3000 / 3350, 0.0,
                  "FMLA README: 660 of 989 BF16 TFLOPS compute-bound, 3000 of 3350 GB/s memory-bound")
DEFAULT_EFFICIENCY: dict[str, Efficiency] = {
    "gemm": _GEMM,
    "ffn": _GEMM,
    "moe": Efficiency(1093 / 1978.9, 2.7 / 3.35, 0.0,
                      "DGEMM README, grouped contiguous: 1093-1297 of 1979 FP8 TFLOPS, low end"),
    "mla": _MLA,
    "attn": _MLA,
}
# The kernel operators (counts/kernels.py) take their layer operator's defaults.
_KERNEL_KIN = {"elementwise": "gemm", "moe_experts": "moe", "mla_context": "mla", "mla_generation": "mla", "mla_bmm": "gemm",
               "all_reduce": "gemm", "deepep_ll": "gemm", "deepep_normal": "gemm"}


def default_efficiency(op: str) -> Efficiency:
    return DEFAULT_EFFICIENCY.get(op) or DEFAULT_EFFICIENCY[_KERNEL_KIN[op]]


# Latency is 0 by default: serving runs under CUDA graphs (SGLang/vLLM practice) and training kernels are
# large; a profile's fit supplies a measured one.


def fit_efficiency(counts: np.ndarray, times: np.ndarray, device: Device, source: str,
                   grid_e: np.ndarray | None = None, grid_l: np.ndarray | None = None) -> Efficiency:
    """The (e_c, e_m, latency) of max(F/(P·e_c), B/(BW·e_m)) + latency that best fits measured times
    (least squares in log time, on a log grid)."""
    ge, gl = _GRID_E if grid_e is None else grid_e, _GRID_L if grid_l is None else grid_l
    tc = counts[:, 0] / device.peak_flops_per_s
    tm = counts[:, 1] / device.peak_bytes_per_s
    pred = np.maximum(tc / ge[:, None, None, None], tm / ge[None, :, None, None]) + gl[None, None, :, None]
    err = np.mean(np.log(pred / times) ** 2, axis=-1)
    i, j, k = np.unravel_index(np.argmin(err), err.shape)
    return Efficiency(float(ge[i]), float(ge[j]), float(gl[k]), source)


_GRID_E = np.geomspace(0.003, 2.0, 56)  # above 1: the measured "peak" is one matmul, bigger ones beat it
_GRID_L = np.concatenate([[0.0], np.geomspace(1e-6, 3e-2, 24)])
# A curve kept point for point (kernel measurements) only spaces its points by work: a grid of a quarter
# the steps each way fits its hundreds of curves 8 times faster (5 s to well under 1 s for DeepSeek-V3's).
_COARSE_E, _COARSE_L = _GRID_E[::3], _GRID_L[::2]


def roofline_time(flops: float, nbytes: float, device: Device, e: Efficiency) -> float:
    return max(flops / (device.peak_flops_per_s * e.compute), nbytes / (device.peak_bytes_per_s * e.memory)) + e.latency_s


class MeasuredBackend:
    """One device's measurements, interpolated per operator curve.

    A curve holds the points of one operator that differ only in one size (opcounts.SIZE_KEYS: m,
    tokens, or context). Each curve gets its own roofline fit, whose predicted time T orders the points
    by work; measured times are made non-decreasing in T (pool-adjacent-violators) and interpolated
    linearly in log T - log t, so the answer is exact at measured points, monotone in work, and
    proportional to T beyond the measured range. A shape whose curve was not measured, but whose width
    (opcounts.BETWEEN_KEYS: a GEMM's n and k, a batch) lies between two measured curves', is interpolated
    log-log between them; a width outside the measured ones is not covered."""

    def __init__(self, profile: Profile, points=None):
        self.device = Device.from_profile(profile)
        # A profile of repeatable kernel measurements (the kernel database's: tile and wave edges, m = 1280
        # against 1281, are real) keeps every point; one of noisy timings (this machine's) pools them.
        self.pooled = profile.header.get("interpolation") != "between adjacent points"
        curves: dict[tuple, list] = {}
        for p in points if points is not None else profile.points:
            curves.setdefault(self._curve(p.op, p.pass_, p.shape), []).append(p)
        self.curves = {}
        self.fastest_s = min((p.median_s for p in (points if points is not None else profile.points)), default=0.0)
        self._widths: dict[tuple, set] = {}  # (op, pass, axis, shape without the op's widths) -> widths measured
        for key, pts in curves.items():
            if len(pts) < 2:
                continue
            for axis in BETWEEN_KEYS.get(key[0], ()):
                self._widths.setdefault(self._family(key[0], key[1], axis, pts[0].shape), set()).add(pts[0].shape[axis])
            counts = np.array([op_counts(p.op, p.shape, p.pass_, self.device.dtype_bytes) for p in pts])
            times = np.array([p.median_s for p in pts])
            fit = _fit_sample(len(pts))
            eff = fit_efficiency(counts[fit], times[fit], self.device, f"curve fit to {profile.path}",
                                 *((_GRID_E, _GRID_L) if self.pooled else (_COARSE_E, _COARSE_L)))
            work = np.array([roofline_time(f, b, self.device, eff) for f, b in counts])
            order = np.argsort(work)
            x, y = np.log(work[order]), np.log(times[order])
            self.curves[key] = (eff, *(_monotone(x, y) if self.pooled else _distinct(x, y)))

    @staticmethod
    def _curve(op: str, pass_: str, shape: dict) -> tuple:
        return (op, pass_, structure_key(op, shape))

    @staticmethod
    def _family(op: str, pass_: str, axis: str, shape: dict) -> tuple:
        """The curves that differ from `shape`'s only in their widths (BETWEEN_KEYS), keyed for `axis`."""
        return (op, pass_, axis, structure_key(op, {**shape, **{a: 0 for a in BETWEEN_KEYS[op]}}))

    def covers(self, op: str, shape: dict, pass_: str = "fwd") -> bool:
        return self.lookup(op, shape, pass_) is not None

    def _neighbours(self, op: str, shape: dict, pass_: str, axis: str) -> tuple[int, int] | None:
        """The measured widths just below and above `shape`'s on `axis`."""
        measured = sorted(self._widths.get(self._family(op, pass_, axis, shape), ()))
        below = [w for w in measured if w < shape[axis]]
        above = [w for w in measured if w > shape[axis]]
        return (below[-1], above[0]) if below and above else None

    def time(self, op: str, shape: dict, pass_: str = "fwd") -> float:
        t = self.lookup(op, shape, pass_)
        if t is None:
            raise KeyError(f"{op} {shape} is not covered by the profile")
        return t

    def lookup(self, op: str, shape: dict, pass_: str = "fwd") -> float | None:
        """The interpolated time, or None where the profile does not cover the shape."""
        key = self._curve(op, pass_, shape)
        if key in self.curves:
            return self._on_curve(key, op, shape, pass_)
        for axis in BETWEEN_KEYS.get(op, ()):
            if shape[axis] in self._widths.get(self._family(op, pass_, axis, shape), ()):
                continue  # measured at this width: interpolate along the next axis
            pair = self._neighbours(op, shape, pass_, axis)
            if pair is None:
                return None
            lo, hi = pair
            t_lo, t_hi = self.lookup(op, {**shape, axis: lo}, pass_), self.lookup(op, {**shape, axis: hi}, pass_)
            if t_lo is None or t_hi is None:
                return None
            x = (math.log(shape[axis]) - math.log(lo)) / (math.log(hi) - math.log(lo))
            return math.exp(math.log(t_lo) + x * (math.log(t_hi) - math.log(t_lo)))
        return None

    def _on_curve(self, key: tuple, op: str, shape: dict, pass_: str) -> float:
        eff, log_w, log_t = self.curves[key]
        x = math.log(roofline_time(*op_counts(op, shape, pass_, self.device.dtype_bytes), self.device, eff))
        if x <= log_w[0]:
            return math.exp(log_t[0] + x - log_w[0])
        if x >= log_w[-1]:
            return math.exp(log_t[-1] + x - log_w[-1])
        return math.exp(float(np.interp(x, log_w, log_t)))


def _fit_sample(n: int, most: int = 12) -> np.ndarray:
    """Indices of at most `most` of a curve's n points, evenly spread, for its roofline fit: the fit orders
    and spaces the points by work, which a dozen of them pin down (a grid fit on every point of the
    database's 75-point curves took a second each)."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int))


def _distinct(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points as they are, ties in work merged (their mean), for interpolation between neighbours."""
    keep_x, keep_y = [xs[0]], [[ys[0]]]
    for x, y in zip(xs[1:], ys[1:], strict=True):
        if x - keep_x[-1] < 1e-12:
            keep_y[-1].append(y)
        else:
            keep_x.append(x)
            keep_y.append([y])
    out_x, out_y = np.array(keep_x), np.array([np.mean(v) for v in keep_y])
    if len(out_x) == 1:
        out_x, out_y = np.array([out_x[0], out_x[0] + 1e-9]), np.array([out_y[0], out_y[0]])
    return out_x, out_y


def _monotone(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic (non-decreasing) fit of ys over sorted xs; ties in xs merged."""
    blocks: list[list[float]] = []  # [sum_y, count, x_first, x_last]
    for x, y in zip(xs, ys, strict=True):
        blocks.append([y, 1, x, x])
        while len(blocks) > 1 and (blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]
                                   or blocks[-1][2] - blocks[-2][3] < 1e-12):
            y2, n2, _, x2 = blocks.pop()
            blocks[-1][0] += y2
            blocks[-1][1] += n2
            blocks[-1][3] = x2
    out_x = np.array([(b[2] + b[3]) / 2 for b in blocks])
    out_y = np.array([b[0] / b[1] for b in blocks])
    if len(out_x) == 1:
        out_x, out_y = np.array([out_x[0], out_x[0] + 1e-9]), np.array([out_y[0], out_y[0]])
    return out_x, out_y


class RooflineBackend:
    def __init__(self, device: Device, efficiency: dict[str, Efficiency] | None = None):
        self.device = device
        self.efficiency = efficiency or DEFAULT_EFFICIENCY

    def time(self, op: str, shape: dict, pass_: str = "fwd") -> float:
        flops, nbytes = op_counts(op, shape, pass_, self.device.dtype_bytes)
        return roofline_time(flops, nbytes, self.device, self.efficiency.get(op) or default_efficiency(op))

    @classmethod
    def fit(cls, profile: Profile, points=None) -> RooflineBackend:
        """Per operator, one (e_c, e_m, latency) for all its shapes, fitted to the profile."""
        device = Device.from_profile(profile)
        points = profile.points if points is None else points
        eff = dict(DEFAULT_EFFICIENCY)
        for op in sorted({p.op for p in points}):
            pts = [p for p in points if p.op == op]
            pts = [pts[i] for i in _fit_sample(len(pts), 256)]  # the database's 11K GEMM rows took 40 s
            counts = np.array([op_counts(p.op, p.shape, p.pass_, device.dtype_bytes) for p in pts])
            eff[op] = fit_efficiency(counts, np.array([p.median_s for p in pts]), device, f"fitted to {profile.path}")
        return cls(device, eff)


class Timer:
    """time(op, shape, pass_) for one device: its measurements where the profile covers the shape,
    else the roofline (fitted to the profile when there is one, else sourced defaults)."""

    def __init__(self, device: Device, profile: Profile | None = None, scale: dict[str, float] | None = None):
        self.device = device
        self.measured = MeasuredBackend(profile) if profile else None
        self.roofline = RooflineBackend.fit(profile) if profile else RooflineBackend(device)
        self.scale = scale or {}  # per operator: a drawn error (uncertainty.py), 1 when absent
        self._memo: dict[tuple, float] = {}

    def time(self, op: str, shape: dict, pass_: str = "fwd") -> float:
        key = (op, pass_, tuple(sorted(shape.items())))
        t = self._memo.get(key)
        if t is None:
            t = self.measured.lookup(op, shape, pass_) if self.measured is not None else None
            if t is None:
                t = self.roofline.time(op, shape, pass_)
            t *= self.scale.get(op, 1.0)
            self._memo[key] = t
        return t

    def collective(self, op: str, shape: dict, fallback_s: float, measurable: bool = True) -> float:
        """A collective's time: the link model's `fallback_s` (a kernel profile's timer measures some)."""
        return fallback_s


def _split(profile: Profile, fraction: float, seed: int) -> tuple[list, list]:
    """(fitting points, held-out points): a seeded `fraction` of the profile held out."""
    rng = np.random.default_rng(seed)
    pts = profile.points
    test_mask = np.zeros(len(pts), dtype=bool)
    test_mask[rng.choice(len(pts), size=max(1, round(fraction * len(pts))), replace=False)] = True
    return ([p for p, m in zip(pts, test_mask, strict=True) if not m],
            [p for p, m in zip(pts, test_mask, strict=True) if m])


def _size_ranges(points) -> dict[tuple, tuple[int, int]]:
    """Per curve, the least and greatest size measured (opcounts.SIZE_KEYS: m, tokens or context)."""
    out: dict[tuple, tuple[int, int]] = {}
    for p in points:
        size = p.shape[SIZE_KEYS[p.op][-1]]
        key = MeasuredBackend._curve(p.op, p.pass_, p.shape)
        lo, hi = out.get(key, (size, size))
        out[key] = (min(lo, size), max(hi, size))
    return out


def _held_out_predictions(profile: Profile, fraction: float, seed: int) -> tuple[dict[str, list], int, int]:
    """Per backend, (op, pass, predicted s, measured s, inside) of each held-out point it covers; inside:
    the point's size lies within its curve's fitted sizes (interpolation, not extrapolation)."""
    train, test = _split(profile, fraction, seed)
    measured = MeasuredBackend(profile, train)
    roofline = RooflineBackend.fit(profile, train)
    ranges = _size_ranges(train)
    out: dict[str, list] = {"measured": [], "roofline": []}
    for p in test:
        lo, hi = ranges.get(MeasuredBackend._curve(p.op, p.pass_, p.shape), (math.inf, -math.inf))
        inside = lo <= p.shape[SIZE_KEYS[p.op][-1]] <= hi
        if measured.covers(p.op, p.shape, p.pass_):
            out["measured"].append((p.op, p.pass_, measured.time(p.op, p.shape, p.pass_), p.median_s, inside))
        out["roofline"].append((p.op, p.pass_, roofline.time(p.op, p.shape, p.pass_), p.median_s, inside))
    return out, len(train), len(test)


def held_out_ratios(profile: Profile, fraction: float = 0.2, seed: int = 0) -> dict[str, list[float]]:
    """Per operator, measured / predicted time of the held-out points, as the Timer predicts them (its
    measured curves where they cover the point, else the fitted roofline): of the points inside their
    curve's measured sizes when the operator has any (a profile is used within its grid), else of all."""
    preds, _, _ = _held_out_predictions(profile, fraction, seed)
    covered = {(op, ps, m) for op, ps, _, m, _ in preds["measured"]}
    rows = preds["measured"] + [r for r in preds["roofline"] if (r[0], r[1], r[3]) not in covered]
    inside: dict[str, list[float]] = {}
    every: dict[str, list[float]] = {}
    for op, _pass, pred, actual, within in rows:
        every.setdefault(op, []).append(actual / pred)
        if within:
            inside.setdefault(op, []).append(actual / pred)
    return {op: inside.get(op) or ratios for op, ratios in every.items()}


def _error_summary(errors: list[float]) -> dict:
    return {"median_abs_pct_error": float(np.median(errors)) if errors else None,
            "p90_abs_pct_error": float(np.percentile(errors, 90)) if errors else None, "points": len(errors)}


def held_out_errors(profile: Profile, fraction: float = 0.2, seed: int = 0) -> dict:
    """Fit both backends on (1 - fraction) of the points; absolute % errors on the rest, in all and split
    into points inside their curve's fitted sizes (interpolation) and beyond them (extrapolation)."""
    preds, n_train, n_test = _held_out_predictions(profile, fraction, seed)
    result = {}
    for name, rows in preds.items():
        per_op: dict[str, list[float]] = {}
        for op, ps, pred, actual, _inside in rows:
            per_op.setdefault(f"{op}/{ps}", []).append(abs(pred / actual - 1) * 100)
        result[name] = {
            **_error_summary([e for errs in per_op.values() for e in errs]),
            "inside_range": _error_summary([abs(r[2] / r[3] - 1) * 100 for r in rows if r[4]]),
            "beyond_range": _error_summary([abs(r[2] / r[3] - 1) * 100 for r in rows if not r[4]]),
            "per_op": {op: _error_summary(e) for op, e in sorted(per_op.items())},
        }
    result["held_out_points"] = n_test
    result["train_points"] = n_train
    return result
