"""The package's imports read from its source (ast), for the layering and import-circle tests.

Folders map to modules as pyproject.toml says: addon/ -> voxlift, backend/ -> voxlift.backend,
dataset_tools/ -> voxlift.dataset_tools. Every import counts, those inside functions too (they run later,
but a circle through them is still two modules that need each other).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

FOLDERS = {"addon": "voxlift", "backend": "voxlift.backend", "dataset_tools": "voxlift.dataset_tools"}


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: list[tuple[str, int, bool]] = field(default_factory=list)  # (module, line, at top level)


def module_name(root: Path, path: Path) -> tuple[str, bool]:
    rel = path.relative_to(root)
    base = FOLDERS[rel.parts[0]]
    parts = list(rel.parts[1:])
    is_package = parts[-1] == "__init__.py"
    parts = parts[:-1] if is_package else [*parts[:-1], parts[-1][:-3]]
    return ".".join([base, *parts]), is_package


def _resolve(mod: Module, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    # `from . import x` may import the submodule x: name both, the caller keeps what exists
    return [base] + [f"{base}.{a.name}" for a in node.names]


def read_modules(root: Path) -> dict[str, Module]:
    modules = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name, is_package = module_name(root, path)
            mod = Module(name, path, is_package)
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            top = {id(n) for n in tree.body} | {
                id(c) for n in tree.body if isinstance(n, ast.If | ast.Try) for c in ast.walk(n)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mod.imports += [(a.name, node.lineno, id(node) in top) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    mod.imports += [(m, node.lineno, id(node) in top) for m in _resolve(mod, node)]
            modules[name] = mod
    return modules


def internal_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """module -> the package's modules it imports (a package's own __init__ is not an edge to itself)."""
    graph = {}
    for name, mod in modules.items():
        targets = set()
        for imported, _, _ in mod.imports:
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def forbidden_imports(modules: dict[str, Module]) -> list[str]:
    """The layering rules, broken: one line per import that breaks one.

    dataset_tools: numpy only (no torch, no bpy, nothing of backend or the add-on), anywhere in a function or
    not. backend: no bpy, nothing of the add-on. The add-on outside voxlift.blender: no bpy and no torch at
    import (module level); voxlift.blender may import bpy."""
    bad = []
    for name, mod in modules.items():
        for imported, line, top in mod.imports:
            root = imported.split(".")[0]
            where = f"{mod.path.name}:{line} imports {imported}"
            if name.startswith("voxlift.dataset_tools"):
                if root in ("torch", "bpy", "mathutils") or (
                    imported.startswith("voxlift.") and not imported.startswith("voxlift.dataset_tools")
                ):
                    bad.append(f"{name}: {where} (dataset_tools is numpy only)")
            elif name.startswith("voxlift.backend"):
                if root in ("bpy", "mathutils") or (
                    imported.startswith("voxlift.")
                    and not imported.startswith(("voxlift.backend.", "voxlift.dataset_tools"))
                    and imported != "voxlift.backend"
                ):
                    bad.append(f"{name}: {where} (backend never needs Blender)")
            elif not name.startswith("voxlift.blender") and top and root in ("bpy", "mathutils", "torch"):
                bad.append(
                    f"{name}: {where} at import (only voxlift.blender may; torch only inside functions)"
                )
    return bad
