"""Layering: segkit's packages in a declared order from the ground up; a unit imports only units below it.

A unit is a top-level module (`segkit/plans.py` -> "plans") or package (`segkit/models/` -> "models").
Every import statement counts, function-local and TYPE_CHECKING ones included (parsed with ast,
nothing imported). No exception list.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "segkit"

# From the ground up. A unit may import the units listed before it, never one after it.
LAYERS = (
    "version", "errors", "jsonio", "cachedir", "workdir", "console",
    "logs",                        # log lines: text or JSON for collectors
    "plans",                       # plans.json: format, reader, writer, typed views
    "oom", "io",
    "preprocessing", "verify_case", "verify", "fingerprint",
    "phantom", "phantom_structures", "phantom_cascade", "sparsify",
    "networks",
    "models",                      # a trained model: checkpoint, folder, package, choice, resolver, nnU-Net folders
    "planning",
    "inference",
    "batch",                       # prediction inputs/outputs and the per-case pipeline
    "training",
    "evaluation",
    "export",
    "pacs",                        # the DICOM node (segkit serve): above inference and batch
    "api",
    "interop",                     # the old import path of models.nnunet, kept for users
    "cli",
    "__main__",
)


def unit_of(module: str) -> str | None:
    """'segkit.models.resolve' -> 'models'; None for 'segkit' itself or a module outside segkit."""
    parts = module.split(".")
    return parts[1] if parts[0] == "segkit" and len(parts) > 1 else None


def module_name(path: Path) -> str:
    """segkit/models/resolve.py -> segkit.models.resolve (a package's __init__ -> the package)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in a file, wherever it stands."""
    name, is_package = name or module_name(path), path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                found.append((node.lineno, node.module or ""))
            prefix = found[-1][1]   # `from segkit import models`: the imported name may itself be a unit
            found += [(node.lineno, f"{prefix}.{alias.name}") for alias in node.names]
    return found


def unit_edges() -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) -> 'file:line' of each import statement that makes the edge."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit_of(module_name(path))
        for line, module in imported_modules(path):
            target = unit_of(module)
            if source and target and source != target and (
                    (PACKAGE / target).is_dir() or (PACKAGE / f"{target}.py").is_file()):
                where = f"{path.relative_to(PACKAGE.parent)}:{line}"
                if where not in edges[(source, target)]:
                    edges[(source, target)].append(where)
    return edges


def test_every_unit_has_a_declared_layer() -> None:
    units = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert units - set(LAYERS) == set(), "place each new module or package in LAYERS"
    assert set(LAYERS) - units == set(), "LAYERS names a unit that no longer exists"


def test_no_unit_imports_a_higher_one() -> None:
    rank = {name: index for index, name in enumerate(LAYERS)}
    upward = [f"{a} -> {b} ({', '.join(where)})" for (a, b), where in sorted(unit_edges().items())
              if a in rank and b in rank and rank[b] > rank[a]]
    assert upward == [], "imports from a lower layer into a higher one:\n" + "\n".join(upward)


def test_no_package_level_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in unit_edges():
        graph[a].add(b)
    state: dict[str, int] = {}   # 1: on the current path, 2: done

    def cycle_from(node: str, path: list[str]) -> list[str] | None:
        """A cycle reachable from node, as the list of units along it."""
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := cycle_from(nxt, path + [nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = cycle_from(start, [start])
            assert found is None, f"package-level import cycle: {' -> '.join(found)}"


def test_the_checker_sees_function_local_and_relative_imports(tmp_path: Path) -> None:
    module = tmp_path / "pipeline.py"
    module.write_text("from __future__ import annotations\n\n"
                      "def run():\n    from segkit.inference import model\n    from ..planning import run\n"
                      "    from . import cases\n")
    names = [m for _, m in imported_modules(module, "segkit.batch.pipeline")]
    assert "segkit.inference.model" in names and "segkit.inference" in names
    assert "segkit.planning.run" in names and "segkit.batch.cases" in names
    assert unit_of("segkit") is None and unit_of("segkit.models") == "models"
