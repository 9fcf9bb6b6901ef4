"""Which machine measured a profile, and whether it is this one.

A profile's timings describe one machine: its CPU model (or GPU), how many threads ran, the torch build
and the dtype. Those fields form the fingerprint written into every profile's header; a short id of
them names cached profiles. Importing this module does not import torch, so the CLI can compare a
profile with this machine cheaply; the CUDA fields are read through torch only when asked for.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
from pathlib import Path

IDENTITY_CPU = ("device", "device_name", "logical_cpus", "torch", "dtype")
IDENTITY_CUDA = (*IDENTITY_CPU, "sm_count", "cuda")


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (e.g. 'AMD EPYC 7B13'), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cuda_fields() -> dict:
    """GPU name, SM count, clock and CUDA version of device 0 (needs a CUDA build of torch)."""
    import torch  # third-party, and only for a CUDA fingerprint: a CPU one never loads it

    props = torch.cuda.get_device_properties(0)
    return {"device_name": props.name, "sm_count": props.multi_processor_count,
            "clock_mhz": getattr(props, "clock_rate", 0) // 1000 if getattr(props, "clock_rate", 0) else "unknown",
            "cuda": torch.version.cuda or "unknown", "driver": _nvidia_driver(), "cpu_model": cpu_model()}


def _nvidia_driver() -> str:
    try:
        return Path("/proc/driver/nvidia/version").read_text().split("Kernel Module", 1)[1].split()[0]
    except (OSError, IndexError):
        return "unknown"


def here(device: str, dtype: str) -> dict:
    """This machine's fingerprint for profiles of `device` in `dtype`."""
    fp = {"device": device, "device_name": cpu_model(), "logical_cpus": os.cpu_count() or 0,
          "torch": torch_version(), "dtype": dtype, "platform": platform.platform(terse=True)}
    if device == "cuda":
        fp.update(cuda_fields())
    return fp


def identity(header: dict) -> tuple[str, ...]:
    keys = IDENTITY_CUDA if header.get("device") == "cuda" else IDENTITY_CPU
    return tuple(str(header.get(k, "")) for k in keys)


def fingerprint_id(header: dict) -> str:
    """Ten hex digits naming the machine (the identity fields only)."""
    return hashlib.sha1("|".join(identity(header)).encode()).hexdigest()[:10]


def foreign(header: dict, mine: dict) -> str | None:
    """One line saying how a profile's machine differs from `mine`, or None when it is this machine."""
    keys = IDENTITY_CUDA if header.get("device") == "cuda" else IDENTITY_CPU
    if "logical_cpus" not in header:
        return "the profile has no machine fingerprint (written before fingerprints): its timings may be another machine's"
    diffs = [f"{k} {header.get(k, '?')!s} here {mine.get(k, '?')!s}" for k in keys
             if str(header.get(k, "")) != str(mine.get(k, ""))]
    if not diffs:
        return None
    return "the profile was measured on another machine (" + "; ".join(diffs) + "): its timings do not describe this one"
