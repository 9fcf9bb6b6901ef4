"""Reads the profile CSVs that `planner profile` writes (kernels/profiler.py defines the format).
No torch here: the file is the contract between the profiler and the cost model."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from costmodel.inputs.budget import MAX_PROFILE_ROWS
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.reading import CsvTable, clip, read_csv

REQUIRED = ("op", "pass", "dtype", "shape", "median_s", "status")
# every column, in order, as kernels/profiler.py writes them (`planner import-profile` writes the same)
COLUMNS = ["op", "pass", "dtype", "shape", "median_s", "iqr_s", "repeats", "cv", "peak_mem_bytes", "status", "error"]


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


FIX = "pass a CSV written by `planner profile` (or `planner import-profile`), one measured point a row"
PEAKS = ("peak_matmul_flops_per_s", "peak_copy_bytes_per_s")


def load_profile(path: str | Path) -> Profile:
    """A profile, checked whole before any use (reading.py's CSV path, then each row): the machine's
    peaks in its header; per row an op, a pass, a dtype, a `shape` that is a JSON object of whole
    numbers and names, and, for a point measured ok, a finite positive median time. One PlannerError
    names the file, the line and the column of the first problem."""
    if not Path(path).exists():
        raise PlannerError("cannot read the profile (no such file)", file=str(path),
                           fix="measure one with `planner profile`, import one with `planner import-profile aiconfigurator "
                               "--gpu GPU --engine ENGINE --model MODEL`, or check the path")
    table = read_csv(Path(path), REQUIRED, MAX_PROFILE_ROWS, FIX)
    header = table.header
    for key in PEAKS:
        if not _positive(header.get(key)):
            raise PlannerError(f"the header has no finite positive `# {key}:` line", file=str(path), line=1,
                               fix="pass a profile written by `planner profile`, which measures the machine's peaks")
    points, failed = [], 0
    for i, row in enumerate(table.rows):
        if row["status"] != "ok":
            failed += 1
            continue
        points.append(_point(table, i))
    if not points:
        raise PlannerError("has no point measured ok", file=str(path), fix=FIX)
    return Profile(str(path), header, points, failed)


def _positive(text: str | None) -> bool:
    try:
        return text is not None and math.isfinite(float(text)) and float(text) > 0
    except ValueError:
        return False


def _point(table: CsvTable, i: int) -> ProfilePoint:
    row = table.rows[i]
    for column in ("op", "pass", "dtype"):
        if not row[column].strip():
            raise table.error(i, column, "is empty", FIX)
    try:
        shape = json.loads(row["shape"])
    except (json.JSONDecodeError, RecursionError):
        shape = None
    if not isinstance(shape, dict) or not all(_shape_value(v) for v in shape.values()):
        raise table.error(i, "shape", f"{clip(row['shape'])} is not a JSON object of sizes and names",
                          'write the shape as JSON, e.g. "{""m"": 32, ""n"": 1408, ""k"": 2048}"')
    median_s = table.number(i, "median_s", "give the median time in seconds, above 0 (a failed point has status other than ok)")
    return ProfilePoint(row["op"], row["pass"], row["dtype"], shape, median_s)


def _shape_value(v: object) -> bool:
    return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
