"""The package's layers, as the README's Architecture section states them, and no import cycles, checked on every
import.

A module may import from its own layer's package and from lower layers, never upward. Every import counts: inside
functions (a lazy import is still a dependency) and under ``if TYPE_CHECKING:`` (a hint naming a higher layer's type
ties what a module says to that layer; a method names the pipeline's graph builder by a protocol of its own layer,
:class:`~w2slab.methods.base.StageBuilder`, instead).

No module may reach itself again through the modules it imports, inside a package or across packages. Here every
import counts, inside functions and under ``if TYPE_CHECKING:`` too: a cycle of lazy imports still means that no
module of it can be read, tested or moved without the others (and moving one import to the top turns it into an
import error), and a hint-only import still ties what a module says to a module that depends on it.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "w2slab"

#: Lowest first. A module's layer is that of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("w2slab.errors", "w2slab.typed", "w2slab.registry", "w2slab.atomic", "w2slab.progress", "w2slab.metrics",
     "w2slab.stats", "w2slab.fingerprint", "w2slab.distributed", "w2slab.example_store", "w2slab.component",
     "w2slab.diagnostics", "w2slab.configfile", "w2slab.tracking", "w2slab.lazy",
     "w2slab.formatting"),  # core: no w2slab imports beyond
    ("w2slab.losses", "w2slab.data", "w2slab.models", "w2slab.methods"),  # components, each registered by name
    ("w2slab.config",),  # typed ExperimentConfig / TrainConfig / RuntimeConfig
    ("w2slab.train", "w2slab.results"),  # the trainer; the result schema
    ("w2slab.pipeline",),  # stages, store, executors, sweeps
    ("w2slab.report", "w2slab.analysis"),  # tables and plots of results; results as a DataFrame
    ("w2slab.api",),  # w2slab.run / w2slab.sweep
    ("w2slab.bench",),  # w2s bench: the suite of tasks and model pairs, its tables and claims
    ("w2slab.cli",),  # the w2s command
]


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and to the README"
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The w2slab modules ``path`` imports, anywhere in it (inside functions and under ``if TYPE_CHECKING:`` too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "w2slab":  # from w2slab import atomic
            names |= {f"w2slab.{alias.name}" for alias in node.names if alias.name != "__version__"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("w2slab"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("w2slab")}
    return names


def test_no_module_imports_from_a_higher_layer():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if module == "w2slab":
            continue  # the package's lazy re-exports (w2slab.run, ...) are the public face, not a dependency
        for target in imported(path):
            if target != "w2slab" and layer_of(target) > layer_of(module):
                violations.append(f"{module} -> {target}")
    assert not violations, violations


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _module_of(name: str, known: dict[str, Path]) -> str | None:
    """The package's module that ``name`` is or lies in (``w2slab.models.loading.ResolvedModel`` -> its module)."""
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in known else None


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, from every ``import`` and ``from ... import``
    anywhere in its file (top level, inside functions, under ``if TYPE_CHECKING:``).

    ``from w2slab.models import loading`` names the module ``w2slab.models.loading``; ``from w2slab.models.loading
    import pool`` the module ``w2slab.models.loading``. The package ``__init__`` files Python runs on the way to a
    submodule are not counted: a package that re-exports its submodules (``w2slab.data``) would otherwise close a
    loop with each of them, while importing them in that order is sound.
    """
    known = modules()
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {_module_of(alias.name, known) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, one level up per extra dot
                    anchor = package.rsplit(".", node.level - 1)[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets |= {_module_of(f"{base}.{alias.name}", known) for alias in node.names}
        graph[module] = {target for target in targets if target is not None and target != module}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The components of two or more modules that all reach each other (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest loop through the component's first module, as the modules it passes: ``[a, b, a]``."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node] & members):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if target not in previous:
                previous[target] = node
                queue.append(target)
    raise AssertionError(f"{component} is not strongly connected")


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    """One line naming a loop of the component, and every module caught in it when there are more."""
    loop = " -> ".join(shortest_cycle(graph, component))
    return loop if len(component) == 2 else f"{loop}  (all of: {', '.join(component)})"


def package_of(module: str) -> str:
    """``w2slab.models`` for ``w2slab.models.sources``; a top-level module is its own package (``w2slab.config``)."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_inside_a_package():
    """Within each package, counting only the imports between its own modules: a loop usually hides in an import
    inside a function (a loader asking the sources, a source calling back into the loader)."""
    graph = import_graph()
    inside = {module: {target for target in targets if package_of(target) == package_of(module)}
              for module, targets in graph.items()}
    cycles = [describe(inside, component) for component in strongly_connected(inside)]
    assert not cycles, "import cycles inside a package:\n" + "\n".join(cycles)


def test_no_import_cycle_across_packages():
    """Over the whole package: a loop that leaves a package and comes back (config -> methods -> pipeline.graph ->
    config) is refused as well."""
    graph = import_graph()
    cycles = [describe(graph, component) for component in strongly_connected(graph)
              if len({package_of(module) for module in component}) > 1]
    assert not cycles, "import cycles across packages:\n" + "\n".join(cycles)


def test_the_cycle_finder_sees_lazy_and_hint_only_imports(tmp_path, monkeypatch):
    """A loop closed only by an import inside a function and one under ``if TYPE_CHECKING:`` is still found, and a
    package re-exporting its submodules is not a loop."""
    package = tmp_path / "w2slab"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from w2slab.sub.a import f\n")
    (package / "sub" / "a.py").write_text("def f():\n    from w2slab.sub import b\n")
    (package / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                          "    from .c import C\n")
    (package / "sub" / "c.py").write_text("import w2slab.sub.a\n")
    monkeypatch.setitem(globals(), "PACKAGE", package)
    graph = import_graph()
    assert graph["w2slab.sub"] == {"w2slab.sub.a"} and graph["w2slab.sub.b"] == {"w2slab.sub.c"}
    assert [describe(graph, component) for component in strongly_connected(graph)] == [
        "w2slab.sub.a -> w2slab.sub.b -> w2slab.sub.c -> w2slab.sub.a  (all of: w2slab.sub.a, w2slab.sub.b, "
        "w2slab.sub.c)"]


def test_the_layer_check_sees_lazy_and_hint_only_imports(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from w2slab.pipeline.graph import Stage\n"
                    "def f():\n    import w2slab.cli\n")
    assert imported(path) == {"w2slab.pipeline.graph", "w2slab.cli"}
