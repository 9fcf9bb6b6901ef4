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


# Layers inside costmodel, lowest first: a module imports only from its own layer or a lower one, and
# the graph has no cycle. A new module must be placed here.
COSTMODEL_LAYERS = {
    "inputs": {"budget", "errors", "reading", "specs", "loader", "hf_import", "sweep_spec", "profiles", "plan_spec"},
    "analytic counts": {"params", "flops", "kvcache", "opcounts", "memory", "placement", "schedules", "comm", "pareto",
                        "feasibility", "report", "routing", "eplb", "deepep"},
    "timing": {"timing", "train_costs", "serve_costs", "calibration", "uncertainty"},
    "simulators": {"train_sim", "serve_sim"},
    "application": {"study", "sweep", "fleet", "plan"},
}
LEVEL = {mod: i for i, mods in enumerate(COSTMODEL_LAYERS.values()) for mod in mods}


def internal_imports(path) -> list[tuple[str, bool]]:
    """(costmodel module imported, at module level?) for every import of a costmodel module in `path`."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "costmodel":
            names = [node.module.split(".")[1]] if "." in node.module else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("costmodel.")]
        out += [(name, id(node) in top) for name in names]
    return out


def costmodel_graph() -> dict[str, set[str]]:
    return {p.stem: {m for m, _ in internal_imports(p)} for p in (ROOT / "costmodel").glob("*.py") if p.stem != "__init__"}


def test_every_costmodel_module_has_a_layer():
    assert set(costmodel_graph()) == set(LEVEL)


def test_costmodel_imports_point_down_the_layers():
    back_edges = [(a, b) for a, deps in costmodel_graph().items() for b in deps if LEVEL[b] > LEVEL[a]]
    assert back_edges == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the import graph as a list of modules, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_costmodel_import_graph_has_no_cycle():
    assert find_cycle(costmodel_graph()) is None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_level_imports_of_project_modules():
    """A function-level import is how a cycle hides; only kernels/torch (and heavy optional packages)
    may be imported lazily, by the commands that need them."""
    lazy = []
    for package in ("costmodel", "planner", "dashboard"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            top = {id(n) for n in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    if module and module.split(".")[0] in ("costmodel", "planner", "dashboard") \
                            or package == "costmodel":
                        lazy.append(f"{path.relative_to(ROOT)}:{node.lineno} {module}")
    assert lazy == []
