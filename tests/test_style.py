"""Small functions (DEVELOPERS.md style): none over 60 lines, median at most 12, in the product code."""

import ast
import statistics

from tests.conftest import ROOT

PACKAGES = ("costmodel", "planner", "dashboard")
MAX_LINES = 60
MAX_MEDIAN = 12


def function_lengths() -> dict[str, int]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    out[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = node.end_lineno - node.lineno + 1
    return out


def test_no_function_over_60_lines():
    assert {k: n for k, n in function_lengths().items() if n > MAX_LINES} == {}


def test_median_function_length():
    assert statistics.median(function_lengths().values()) <= MAX_MEDIAN
