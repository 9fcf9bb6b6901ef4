"""Data flows one way, and the folders say which way.

Packages, lowest first: kernels (torch, on its own) | costmodel → charts → planner → dashboard. Inside
costmodel, a module's layer is the folder it sits in (costmodel.LAYERS orders them); a module imports
only from its own layer or a lower one, the graph has no cycle, and no project import hides in a function.
"""

import ast
import subprocess
import sys
from typing import NamedTuple

import pytest

from costmodel import LAYERS
from tests.conftest import ROOT

PACKAGES = ("kernels", "costmodel", "charts", "planner", "dashboard")
# What each package may import of the project (kernels and costmodel never see each other: the profile
# CSV is the contract across the torch boundary); a package never imports one above it.
ALLOWED = {
    "kernels": set(),
    "costmodel": set(),
    "charts": {"costmodel"},
    "planner": {"costmodel", "charts", "kernels"},
    "dashboard": {"costmodel", "charts", "planner", "kernels"},
}
FOREIGN = {"costmodel": {"torch", "streamlit", "plotly"}, "charts": {"torch", "streamlit"}, "planner": {"streamlit"}}


def imported_modules(tree: ast.AST) -> list[tuple[str, ast.stmt]]:
    """(dotted module, the import statement) for every absolute import in `tree`; `from a import b`
    counts as a.b, since b may be a module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(f"{node.module}.{a.name}", node) for a in node.names]
    return out


def package_imports(package: str) -> set[str]:
    """Top-level names (project packages and third-party ones) that `package` imports."""
    return {name.split(".")[0] for path in (ROOT / package).rglob("*.py")
            for name, _ in imported_modules(ast.parse(path.read_text()))}


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_below_themselves(package):
    project = package_imports(package) & set(PACKAGES) - {package}
    assert project <= ALLOWED[package]
    assert not package_imports(package) & FOREIGN.get(package, set())


def test_the_cli_never_imports_the_dashboard():
    assert "dashboard" not in package_imports("planner")


def test_loading_costmodel_does_not_load_torch():
    code = "import sys, costmodel.counts.report, costmodel.inputs.loader; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------------------------------- layers in costmodel


class Module(NamedTuple):
    """A costmodel module: its layer (the folder it sits in) and its source."""

    layer: str
    source: str


def costmodel_modules() -> dict[str, Module]:
    out = {}
    for path in (ROOT / "costmodel").rglob("*.py"):
        if path.parent != ROOT / "costmodel":
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name] = Module(path.relative_to(ROOT / "costmodel").parts[0], path.read_text())
    return out


def costmodel_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """module -> the costmodel modules it imports (`from costmodel.x import y` is costmodel.x, or
    costmodel.x.y where that is a module)."""
    graph = {}
    for name, module in modules.items():
        deps = {dotted if dotted in modules else dotted.rsplit(".", 1)[0]
                for dotted, _ in imported_modules(ast.parse(module.source)) if dotted.startswith("costmodel.")}
        graph[name] = {d for d in deps if d in modules} - {name}
    return graph


def back_edges(modules: dict[str, Module]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a module imports from a layer above its own."""
    level = {name: LAYERS.index(m.layer) for name, m in modules.items()}
    return [(a, b) for a, deps in sorted(costmodel_graph(modules).items()) for b in sorted(deps) if level[b] > level[a]]


def test_the_layers_are_the_folders():
    folders = {p.name for p in (ROOT / "costmodel").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS)
    assert sorted(p.name for p in (ROOT / "costmodel").glob("*.py")) == ["__init__.py"]  # every module in a layer


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_says_what_it_holds_and_may_import(layer):
    doc = ast.get_docstring(ast.parse((ROOT / "costmodel" / layer / "__init__.py").read_text()))
    below = LAYERS[:LAYERS.index(layer)]
    assert doc and (not below or f"May import: {', '.join(below)}." in doc)


def test_costmodel_imports_point_down_the_layers():
    assert back_edges(costmodel_modules()) == []


def test_a_lower_module_importing_a_higher_one_is_caught():
    """The check itself: a counts module that imports the serving simulator is a back-edge."""
    bad = Module("counts", "from costmodel.sim.serve_sim import simulate_serving\n")
    assert back_edges(costmodel_modules() | {"costmodel.counts.bad": bad}) == [("costmodel.counts.bad", "costmodel.sim.serve_sim")]


def test_simulators_import_neither_the_application_nor_feasibility():
    graph = costmodel_graph(costmodel_modules())
    for sim in ("costmodel.sim.serve_sim", "costmodel.sim.train_sim"):
        assert not {d for d in graph[sim] if d.startswith("costmodel.app.")}


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
    assert find_cycle(costmodel_graph(costmodel_modules())) is None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_level_imports_of_project_modules():
    """A function-level import is how a cycle hides; only kernels/torch (and heavy optional packages)
    may be imported lazily, by the commands that need them."""
    lazy = []
    for package in ("costmodel", "charts", "planner", "dashboard"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            top = {id(n) for n in tree.body}
            for dotted, node in imported_modules(tree):
                hidden = id(node) not in top
                if hidden and (dotted.split(".")[0] in ("costmodel", "charts", "planner", "dashboard")
                               or package == "costmodel"):
                    lazy.append(f"{path.relative_to(ROOT)}:{node.lineno} {dotted}")
    assert lazy == []
