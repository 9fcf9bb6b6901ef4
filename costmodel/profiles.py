"""Reads the profile CSVs that `planner profile` writes (kernels/profiler.py defines the format).
No torch here: the file is the contract between the profiler and the cost model."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from costmodel.errors import PlannerError
from costmodel.reading import MAX_DATA_BYTES, read_text

REQUIRED = ("op", "pass", "dtype", "shape", "median_s", "status")


@dataclass(frozen=True)
class ProfilePoint:
    op: str
    pass_: str
    dtype: str
    shape: dict
    median_s: float


@dataclass(frozen=True)
class Profile:
    path: str
    header: dict
    points: list[ProfilePoint]
    failed: int

    @property
    def peak_flops_per_s(self) -> float:
        return float(self.header["peak_matmul_flops_per_s"])

    @property
    def peak_bytes_per_s(self) -> float:
        """Copy bandwidth counted as bytes read + written, i.e. memory traffic per second."""
        return float(self.header["peak_copy_bytes_per_s"])

    @property
    def dtype_bytes(self) -> int:
        return {"float32": 4, "bfloat16": 2, "float16": 2, "float8_e4m3fn": 1}[self.header.get("dtype", "float32")]


def load_profile(path: str | Path) -> Profile:
    path = Path(path)
    if not path.is_file():
        raise PlannerError("cannot read the profile (no such file)", file=str(path),
                           fix="run `planner profile` first, or pass a file under profiles/")
    text = read_text(path, MAX_DATA_BYTES)
    header, body = {}, []
    for line in text.splitlines(keepends=True):
        if line.startswith("# ") and ": " in line:
            k, v = line[2:].rstrip("\n").split(": ", 1)
            header[k] = v
        elif not line.startswith("#"):
            body.append(line)
    reader = csv.DictReader(io.StringIO("".join(body)))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing or "peak_matmul_flops_per_s" not in header:
        raise PlannerError(f"not a moe-planner profile (missing {missing or ['peak_matmul_flops_per_s header']})",
                           file=str(path), line=1, fix="pass a CSV written by `planner profile`")
    points, failed = [], 0
    for row in reader:
        if row["status"] != "ok":
            failed += 1
            continue
        points.append(ProfilePoint(row["op"], row["pass"], row["dtype"], json.loads(row["shape"]), float(row["median_s"])))
    return Profile(str(path), header, points, failed)
