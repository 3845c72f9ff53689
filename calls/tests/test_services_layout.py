"""Guards on the layout of ``calls/services/``: no import cycles, nothing re-exported.

``calls/services.py`` and ``calls/session_link.py`` used to import each other; it worked
only because of the order in which modules happened to be imported. These tests keep
the package a graph that only points one way:
- every module of the ``calls`` app, read with ``ast``: the imports it runs when it
  is loaded (not those inside functions) form no cycle within ``calls``;
- each ``calls.services`` module imports on its own, in a fresh interpreter, with
  none of its siblings loaded before it;
- ``calls/services/__init__.py`` imports nothing, so a name's import path says where
  it lives.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from voiceplatform.testing import subprocess_env

CALLS = Path(__file__).resolve().parents[1]
ROOT = CALLS.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _calls_modules() -> dict[str, Path]:
    return {_module_name(path): path for path in CALLS.rglob("*.py")
            if "tests" not in path.relative_to(CALLS).parts and "migrations" not in path.relative_to(CALLS).parts}


def _load_time_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The ``calls`` modules ``name`` imports while it is being loaded: module level,
    except ``if TYPE_CHECKING:`` blocks (they never run)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes: list[ast.stmt] = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        if isinstance(node, (ast.If, ast.Try)):
            nodes.extend(node.body)
            nodes.extend(getattr(node, "orelse", []))
            nodes.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                nodes.extend(handler.body)
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from calls.services import lifecycle`` imports the submodule.
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(target for target in targets if target in known)
    found.discard(name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_calls_app_has_no_import_cycle() -> None:
    modules = _calls_modules()
    assert "calls.services.lifecycle" in modules and "calls.services.placement" in modules
    graph = {name: _load_time_imports(path, name, set(modules)) for name, path in modules.items()}
    assert _cycle(graph) is None, f"import cycle within calls: {' → '.join(_cycle(graph) or [])}"


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_services_package_reexports_nothing() -> None:
    init = ast.parse((CALLS / "services" / "__init__.py").read_text())
    statements = [node for node in init.body
                  if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    assert statements == [], "calls/services/__init__.py must stay a docstring: import from the module itself"


FRESH_IMPORT = """
import importlib, sys
import django
django.setup()
failures = []
for name in sys.argv[1:]:
    # Drop every calls.services module another app's ready() (batches registers its
    # do-not-call check) or a previous round loaded: each one imports from nothing.
    for loaded in [m for m in sys.modules if m == "calls.services" or m.startswith("calls.services.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:  # reported below, with the module's name
        failures.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def test_each_services_module_imports_on_its_own_in_a_fresh_interpreter() -> None:
    names = sorted(name for name in _calls_modules() if name.startswith("calls.services."))
    assert len(names) >= 8
    run = subprocess.run([sys.executable, "-c", FRESH_IMPORT, *names], cwd=ROOT, env=subprocess_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
