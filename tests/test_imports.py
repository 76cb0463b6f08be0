"""The package's modules import each other without circles (every import counts: module level,
inside functions and under TYPE_CHECKING)."""

from __future__ import annotations

import ast
from pathlib import Path

import scadf_lib

PACKAGE = Path(scadf_lib.__file__).parent


def module_names() -> dict[str, Path]:
    """Every module of the package by its dotted name under scadf_lib ('report', 'studies.claims')."""
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")
            if p.stem != "__init__"}


def _imported(node: ast.AST, modules: set[str]) -> set[str]:
    """The scadf_lib modules one import statement names."""
    if isinstance(node, ast.ImportFrom) and node.module and (node.module + ".").startswith("scadf_lib."):
        base = node.module.removeprefix("scadf_lib").removeprefix(".")
        named = {f"{base}.{a.name}".lstrip(".") for a in node.names}
        return (named & modules) | ({base} & modules)
    if isinstance(node, ast.Import):
        return {a.name.removeprefix("scadf_lib.") for a in node.names} & modules
    return set()


def import_graph() -> dict[str, set[str]]:
    """Module name -> the scadf_lib modules it imports anywhere in its source."""
    paths = module_names()
    modules = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            deps |= _imported(node, modules)
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_the_studies_package():
    graph = import_graph()
    assert "studies.claims" in graph["report"] and "studies.common" in graph["studies.claims"]


def test_no_import_circle_between_scadf_lib_modules():
    graph = import_graph()
    assert {"training", "experiments", "report", "degradation"} <= set(graph)
    assert "report" in graph["experiments"] and "training" in graph["experiments"], "the graph sees lazy imports"
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others (any import counts)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for m in graph[todo.pop()] - seen:
            seen.add(m)
            todo.append(m)
    return seen


def test_the_readers_of_runs_do_not_import_the_training_engine():
    """Anchors, diagnostics, the routing inspector, the Localiser and the report read a run's data,
    configuration and checkpoint from their own homes (config, rundata, checkpoints)."""
    graph = import_graph()
    for module in ("anchors", "diagnostics", "widgets", "localise", "report", "studies.table_ii", "config", "rundata"):
        assert "training" not in reachable(graph, module) and "engine" not in reachable(graph, module), module


def test_the_configuration_and_the_report_import_without_torch():
    import subprocess
    import sys
    code = ("import sys; import scadf_lib.config, scadf_lib.report; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('scadf_lib'))")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_model_name_the_configuration_accepts_is_registered():
    from scadf_lib.config import MODEL_NAMES
    from scadf_lib.models import REGISTRY
    assert set(MODEL_NAMES) == set(REGISTRY)


def test_the_localiser_imports_neither_the_report_nor_the_sweep_driver():
    """Localising new measurements needs a checkpoint and a fingerprint file, not the results side."""
    graph = import_graph()
    results_side = {"report", "experiments", "runfolder", "sweep_tables", "rebuild", "planning"}
    reached = reachable(graph, "localise")
    assert not reached & results_side and not any(m.startswith("studies.") for m in reached), sorted(reached)


def test_no_module_over_800_lines_and_no_function_over_80():
    """One idea per module, short functions: a module that outgrows this is two ideas."""
    long_modules, long_functions = [], []
    for name, path in module_names().items():
        src = path.read_text()
        if len(src.splitlines()) > 800:
            long_modules.append(f"{name} ({len(src.splitlines())} lines)")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long_functions.append(f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long_modules and not long_functions, long_modules + long_functions
