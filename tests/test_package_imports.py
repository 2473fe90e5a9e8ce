"""segkit's import graph (read with ast, nothing imported) has no cycle.

The rule tested:
- Module-level imports (those that run when a module is imported: the module body, including
  `if`/`try`/class bodies, but not `if TYPE_CHECKING:` blocks) form an acyclic graph over the
  modules of segkit/. A cycle there makes the result depend on which module is imported first.
- The same holds with the imports inside functions added (the deferred imports of the CLI's
  `run()` functions and the like): a deferred import may postpone a cost, never hide a cycle.
- An edge goes to the module an import statement names: `from a.b import c` points at a.b.c
  when that is a module, else at a.b (its __init__). The implicit import of parent packages
  is not an edge, so a package's __init__ may re-export its own submodules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "segkit"


def module_name(path: Path) -> str:
    """Dotted module name of a file under segkit/ (a package's __init__.py is the package)."""
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    """Every module of segkit/ by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST, include_functions: bool) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported (and, if asked, those inside functions)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if include_functions:
                    visit(child)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                continue
            else:
                visit(child)

    visit(tree)
    return found


def imported_modules(name: str, path: Path, modules: dict[str, Path], include_functions: bool) -> set[str]:
    """The segkit modules one module imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path)), include_functions):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                          for alias in node.names]
        targets |= {c for c in candidates if c in modules and c != name}
    return targets


def import_graph(include_functions: bool) -> dict[str, set[str]]:
    """module -> the segkit modules it imports."""
    modules = all_modules()
    return {name: imported_modules(name, path, modules, include_functions) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


@pytest.mark.parametrize("include_functions", [False, True], ids=["module-level", "with-function-level"])
def test_no_import_cycle_in_segkit(include_functions: bool) -> None:
    """No chain of imports inside segkit/ leads back to where it started."""
    graph = import_graph(include_functions)
    assert len(graph) > 50 and graph["segkit.planning.memory_search"] >= {"segkit.planning.memory"}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_cycle_finder_and_edges_see_what_they_must(tmp_path: Path) -> None:
    """The checker finds a planted cycle, resolves relative/submodule imports and skips TYPE_CHECKING."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    modules = {"segkit.x": tmp_path / "x.py", "segkit.pkg": tmp_path / "pkg" / "__init__.py",
               "segkit.pkg.sub": tmp_path / "pkg" / "sub.py", "segkit.y": tmp_path / "y.py"}
    source = ("from typing import TYPE_CHECKING\nfrom segkit.pkg import sub\nfrom . import y\n"
              "if TYPE_CHECKING:\n    import segkit.x\n"
              "def later():\n    from segkit.pkg import thing\n")
    (tmp_path / "x.py").write_text(source)
    assert imported_modules("segkit.x", tmp_path / "x.py", modules, False) == {"segkit.pkg.sub", "segkit.y"}
    with_functions = imported_modules("segkit.x", tmp_path / "x.py", modules, True)
    assert with_functions == {"segkit.pkg.sub", "segkit.y", "segkit.pkg"}
