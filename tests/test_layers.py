"""The package's layers, as the README's Architecture section states them, checked on every import.

A module may import from its own layer's package and from lower layers, never upward. Imports
inside functions count too (a lazy import is still a dependency). Imports under ``if TYPE_CHECKING:`` do
not (a hint adds no runtime dependency), but they count for import cycles: the methods name the graph builder
they are called with by protocols of their own layer (``w2slab.methods.base.StageBuilder``), not by the pipeline's
class, so that no import, hint or lazy, goes round through the config, the methods and the pipeline.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "w2slab"

#: Lowest first. A module's layer is that of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("w2slab.errors", "w2slab.typed", "w2slab.registry", "w2slab.atomic", "w2slab.progress", "w2slab.metrics",
     "w2slab.stats", "w2slab.fingerprint", "w2slab.distributed", "w2slab.example_store", "w2slab.component",
     "w2slab.diagnostics", "w2slab.yamlfile", "w2slab.tracking", "w2slab.lazy"),  # core: no w2slab imports beyond
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


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped |= {id(child) for statement in node.body for child in ast.walk(statement)}
    return skipped


def imported(path: Path, *, hints: bool = False) -> set[str]:
    """The w2slab modules ``path`` imports, anywhere in it (``hints``: under ``if TYPE_CHECKING:`` too)."""
    names = set()
    tree = ast.parse(path.read_text())
    hints_only = set() if hints else _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in hints_only:
            continue
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


#: No import cycle may pass through these packages, counting every import (in functions, under TYPE_CHECKING).
ACYCLIC = ("w2slab.config", "w2slab.methods", "w2slab.pipeline")


def test_no_import_cycle_passes_through_the_config_the_methods_or_the_pipeline():
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges = {module: {target for target in imported(path, hints=True) if target in modules and target != module}
             for module, path in modules.items()}
    cycles = []
    for start in sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in ACYCLIC)):
        paths = {target: [start, target] for target in edges[start]}  # breadth first: a shortest way back
        queue = sorted(paths)
        while queue and start not in paths:
            module = queue.pop(0)
            for target in sorted(edges[module] - paths.keys()):
                paths[target] = [*paths[module], target]
                queue.append(target)
        if start in paths:
            cycles.append(" -> ".join(paths[start]))
    assert not cycles, cycles
