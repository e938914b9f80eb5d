"""The package's layers: each module imports only modules below it (or beside it, without a cycle),
counting every import of the package's own modules: at module level, inside functions and under
TYPE_CHECKING. Imports inside functions are only for heavy third-party libraries, never for the
package's own modules, so the import graph read here is the whole truth."""

import ast
from pathlib import Path

import glue_runner

PACKAGE = Path(glue_runner.__file__).parent

# Bottom first. A module may import any module of its own layer or a lower one, never a higher one.
LAYERS = {
    "settings": ["errors", "files", "config", "metrics", "glue_metric"],
    "core": ["tasks", "readers", "data", "fingerprints", "results", "model", "train", "defaults", "display", "scoring", "run"],
    "extras": ["layers", "probe", "fewshot", "adapt", "trackers", "model_card", "tables", "stats", "leaderboard", "compare",
               "submission", "sweeps", "predict"],
    "top": ["session", "cli"],
}
LAYER_OF = {module: i for i, modules in enumerate(LAYERS.values()) for module in modules}


def own_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module imported, line, inside a function) for every import of the package's own modules."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level and child.module:  # from .data import x
                    found.append((child.module.split(".")[0], child.lineno, inside))
                elif child.level:  # from . import data, results
                    found.extend((alias.name, child.lineno, inside) for alias in child.names)
                elif child.module and child.module.startswith("glue_runner."):  # glue_metric.py's absolute one
                    found.append((child.module.split(".")[1], child.lineno, inside))
            elif isinstance(child, ast.Import):
                found.extend((alias.name.split(".")[1], child.lineno, inside) for alias in child.names
                             if alias.name.startswith("glue_runner."))
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return [(module, line, inside) for module, line, inside in found if module != "__version__"]


def graph() -> dict[str, set[str]]:
    return {path.stem: {module for module, _, _ in own_imports(path)}
            for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def test_every_module_has_a_layer():
    assert set(graph()) == set(LAYER_OF), "add the new module to LAYERS (or remove a name that is gone)"


def test_no_module_imports_a_higher_layer():
    upward = [f"{module} ({list(LAYERS)[LAYER_OF[module]]}) imports {target} ({list(LAYERS)[LAYER_OF[target]]})"
              for module, targets in graph().items() for target in targets
              if LAYER_OF.get(target, -1) > LAYER_OF.get(module, -1)]
    assert upward == []


def test_there_is_no_import_cycle():
    edges = graph()

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            module, path = stack.pop()
            for target in edges.get(module, ()):
                if target == start:
                    return path + [start]
                if target not in path:
                    stack.append((target, path + [target]))
        return None

    cycles = [" -> ".join(c) for c in map(cycle_from, edges) if c]
    assert cycles == []


def test_the_package_imports_itself_only_at_module_level():
    inside = [f"{path.name}:{line} imports {module} inside a function"
              for path in PACKAGE.glob("*.py") for module, line, in_function in own_imports(path) if in_function]
    assert inside == []


def test_the_checker_sees_every_kind_of_import(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("from typing import TYPE_CHECKING\nfrom . import data, results\nfrom .train import x\n"
                      "if TYPE_CHECKING:\n    from .cli import RunConfig\n"
                      "def f():\n    from .session import run_all\n"
                      "from glue_runner.metrics import METRICS\nimport glue_runner.tasks\n")
    assert own_imports(source) == [("data", 2, False), ("results", 2, False), ("train", 3, False), ("cli", 5, False),
                                   ("session", 7, True), ("metrics", 8, False), ("tasks", 9, False)]
