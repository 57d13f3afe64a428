"""The package's import graph: acyclic, one-way between layers, and every module importable alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mtlheads

SRC = Path(mtlheads.__file__).resolve().parent
# Imports run one way, from a higher rank to a lower one (the design's "modes -> fit/checkpoint ->
# model/build -> heads/encoder/tasks/training -> data"); modules of one package may import each other.
RANK = {
    "errors": -2,  # what a user error is: raised from every layer
    "utils": -1, "data": 0, "conf": 0,  # utils: atomic writes and file loading, for every layer
    "tasks": 1, "encoder": 1, "launch": 1, "validate": 1,
    "heads": 2, "training": 2,
    "model": 3, "build": 4, "checkpoint": 5, "fit": 6, "score": 6, "predict": 6, "report": 6,
    "modes": 7,
    "cli": 8,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """mtlheads module -> the mtlheads modules it imports (anywhere in the file, functions included)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mtlheads"):
                for alias in node.names:  # `from mtlheads.x import y` may import the module x.y
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("mtlheads")}
        graph[name] = {t for t in targets if t in modules and t != name and t != "mtlheads"}
    return graph


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "mtlheads"


def test_no_import_cycles():
    graph, state, cycles = import_graph(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_imports_run_one_way_between_layers_and_modes_do_not_import_each_other():
    wrong = []
    for module, targets in import_graph().items():
        for target in targets:
            a, b = _top(module), _top(target)
            if a == b:
                if a == "modes":
                    wrong.append(
                        f"{module} -> {target}: a mode is a recipe over fit/checkpoint, not over a mode"
                    )
                continue
            if a not in RANK or b not in RANK:
                wrong.append(f"{module} -> {target}: package without a rank in RANK")
            elif RANK[a] <= RANK[b]:
                wrong.append(f"{module} (rank {RANK[a]}) -> {target} (rank {RANK[b]})")
    assert not wrong, "\n".join(wrong)


def test_every_module_imports_alone():
    """Each module first in a fresh set of mtlheads modules: an import-order cycle would fail here."""
    names = sorted(import_graph())
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {names!r}:\n"
        "    for m in [m for m in sys.modules if m == 'mtlheads' or m.startswith('mtlheads.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        failed.append(f'{name}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
