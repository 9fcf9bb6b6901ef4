"""Data flows one way: costmodel never imports torch (or kernels); kernels never import costmodel."""

import ast
import subprocess
import sys

from tests.conftest import ROOT


def imports_of(package: str) -> set[str]:
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_costmodel_imports_neither_torch_nor_higher_layers():
    assert not imports_of("costmodel") & {"torch", "kernels", "planner", "dashboard", "streamlit", "plotly"}


def test_kernels_do_not_import_costmodel():
    assert not imports_of("kernels") & {"costmodel", "planner", "dashboard"}


def test_loading_costmodel_does_not_load_torch():
    code = "import sys, costmodel.report, costmodel.loader; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
