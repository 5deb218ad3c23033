"""The import graph flows one way: loading → backends → pair/family → analyses → results → viz →
report → CLI, with no cycle, and no private helper imported across subpackages.

Read from the source (every import, module-level or inside a function), not by importing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Source folder → the package it installs as (pyproject.toml's package-dir).
ROOTS = {"postlens": "postlens", "diffs": "postlens.diffs", "probes": "postlens.probes",
         "viz": "postlens.viz"}  # fmt: skip


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in ROOTS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every postlens import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("postlens")]
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("postlens")
        ):
            names = [a.name for a in node.names]
            # `from postlens.x import y` imports module postlens.x.y when y is a module.
            subs = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in MODULES]
            found += [(s, []) for s in subs]
            found.append((node.module, [n for n in names if f"{node.module}.{n}" not in MODULES]))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _sub(module: str) -> str:
    """The subpackage a module belongs to (``postlens.diffs``, ``postlens.cli``, ``postlens``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and ".".join(parts[:2]) in MODULES else "postlens"


def test_the_library_never_imports_the_cli():
    bad = [(m, i) for m, imps in GRAPH.items() for i, _ in imps
           if i.startswith("postlens.cli") and not m.startswith(("postlens.cli", "postlens.__main__"))]  # fmt: skip
    assert bad == []


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("postlens.probes", "postlens.diffs"),  # probes read one model; diffs compare models
        ("postlens.viz", "postlens.diffs"),  # viz renders results; it computes nothing
        ("postlens.viz", "postlens.probes"),
        ("postlens.viz", "postlens.reporting"),
        ("postlens.viz", "postlens.family"),
        ("postlens.diffs", "postlens.reporting"),
        ("postlens.probes", "postlens.reporting"),
        ("postlens.diffs", "postlens.family"),
        ("postlens.probes", "postlens.family"),
    ],
)
def test_layers_flow_one_way(lower, higher):
    bad = [(m, i) for m, imps in GRAPH.items() if m.startswith(lower) for i, _ in imps
           if i == higher or i.startswith(higher + ".")]  # fmt: skip
    assert bad == []


def test_no_private_helper_crosses_a_subpackage():
    # postlens._kernels is the compiled extension (C, no Python helpers) behind weight_stats.
    bad = [(m, i, n) for m, imps in GRAPH.items() for i, names in imps for n in names
           if n.startswith("_") and _sub(i) != _sub(m) and f"{i}.{n}" != "postlens._kernels"]  # fmt: skip
    assert bad == []


def test_no_import_cycle():
    edges = {m: {i for i, _ in imps if i in MODULES and i != m} for m, imps in GRAPH.items()}
    # A package's __init__ importing its own submodules is how a package is built, not a cycle.
    for m in edges:
        edges[m] = {i for i in edges[m] if not m.startswith(i + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []
