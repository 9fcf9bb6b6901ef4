"""A layer's time as the sum of the kernels an engine runs for it (counts/kernels.py), each measured where
a kernel profile covers its shape (the kernel database's, imported by `planner import-profile`, or a
profile from a real GPU) and the roofline at the GPU file's peaks where none does.

The timer also answers which share of a time came from measurements: with `only` set to a kernel
operator, it returns only that operator's measured seconds; with `only = "roofline"`, only the seconds of
kernels no measurement covered (collectives included, whose fallback is the analytic link model). An
iteration model built on such a timer therefore gives, family by family, the measured part of an
iteration (serve_costs.timing_coverage).
"""

from __future__ import annotations

from costmodel.counts.kernels import FALLBACK_DTYPE, FALLBACK_KERNEL, KernelPlan
from costmodel.timing.operators import Device, MeasuredBackend, RooflineBackend, Timer

ROOFLINE = "roofline"  # the family of every second no measurement covered
COVERAGE_FAMILIES = ("gemm", "moe_experts", "mla_context", "mla_generation", "mla_bmm", "all_reduce", "deepep_ll",
                     "deepep_normal", ROOFLINE)
ROOFLINE_PRECISION = {"fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp4"}  # database dtype -> the roofline's (else bf16)


class KernelTimer(Timer):
    """Timer.time(op, shape, pass_) for layer-level operators, summed over their kernels."""

    def __init__(self, devices: dict[str, Device], measured: MeasuredBackend, plan: KernelPlan,
                 scale: dict[str, float] | None = None, only: str | None = None, measured_slowdown: float = 1.0):
        self.device = devices["bf16"]
        self.devices = devices  # bf16 | fp8 | fp4: the GPU file's peaks for the roofline of unmeasured kernels
        self.measured = measured
        self.rooflines = {k: RooflineBackend(d) for k, d in devices.items()}
        self.roofline = self.rooflines["bf16"]  # Timer's: its efficiencies (e.g. the memory one) as a plain timer's
        self.plan = plan
        self.floor_s = measured.fastest_s
        self.scale = scale or {}
        self.only = only
        # training: the stack reaches 1/slowdown of its kernels' benchmarked speed (calibration.py)
        self.measured_slowdown = measured_slowdown
        self._memo: dict[tuple, float] = {}

    def time(self, op: str, shape: dict, pass_: str = "fwd") -> float:
        key = (op, pass_, tuple(sorted(shape.items())))
        t = self._memo.get(key)
        if t is None:
            t = sum(s for fam, s in self.parts(op, shape, pass_) if self.only in (None, fam))
            self._memo[key] = t * self.scale.get(op, 1.0)
        return self._memo[key]

    def parts(self, op: str, shape: dict, pass_: str = "fwd") -> list[tuple[str, float]]:
        """(family, seconds) of each kernel of one call: its operator when measured, else ROOFLINE."""
        out = []
        for kop, kshape, kpass in self.plan.passes(op, shape, pass_):
            t = self._lookup(kop, kshape, kpass)
            if t is None and kshape.get("dtype") in FALLBACK_DTYPE:
                t = self._lookup(kop, {**kshape, "dtype": FALLBACK_DTYPE[kshape["dtype"]]}, kpass)
            if t is None:
                precision = ROOFLINE_PRECISION.get(kshape.get("dtype"), "bf16")
                # no kernel of the profile ran faster than its fastest: a launch floor under unmeasured ones
                out.append((ROOFLINE, max(self.rooflines[precision].time(kop, kshape, kpass), self.floor_s)))
            else:
                out.append((kop, t * self.measured_slowdown))
        return out

    def _lookup(self, kop: str, kshape: dict, kpass: str) -> float | None:
        """The measured time of a kernel, or of the kernel it falls back to (FALLBACK_KERNEL), or None."""
        t = self.measured.lookup(kop, kshape, kpass)
        while t is None and kshape.get("kernel") in FALLBACK_KERNEL:
            kshape = {**kshape, "kernel": FALLBACK_KERNEL[kshape["kernel"]]}
            t = self.measured.lookup(kop, kshape, kpass)
        return t

    def collective(self, op: str, shape: dict, fallback_s: float, measurable: bool = True) -> float:
        """A collective's measured time where the profile has it (and `measurable`: its measurements
        describe this group), else `fallback_s` (the link model)."""
        t = self.measured.lookup(op, shape) if measurable else None
        fam = ROOFLINE if t is None else op
        return (fallback_s if t is None else t) if self.only in (None, fam) else 0.0
