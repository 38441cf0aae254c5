"""The import structure, checked: dependencies point inward (domain <- services <- adapters <-
wiring <- app.py), services know the outside world only through chalicelib/ports.py, and the
package has no import cycles. Read from the source (ast), so a lazy import inside a function counts."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "chalicelib"
AWS_LIBRARIES = {"boto3", "botocore", "pynamodb", "chalice", "moto"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            found.add(name)
            for alias in node.names:  # `from . import naming` imports a module
                candidate = f"{name}.{alias.name}"
                if (ROOT / Path(*candidate.split("."))).with_suffix(".py").exists():
                    found.add(candidate)
    return found


MODULES = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def internal(names) -> set[str]:
    return {n for n in names if n.startswith("chalicelib")}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) == "domain"))
def test_domain_is_pure(name):
    bad = {n for n in MODULES[name] if n.split(".")[0] in AWS_LIBRARIES}
    bad |= {n for n in internal(MODULES[name]) if layer(n) not in ("domain", "")}
    assert not bad, f"{name} imports {sorted(bad)}: domain code has no AWS and no outer layer"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) == "services"))
def test_services_know_the_world_only_through_ports(name):
    bad = {n for n in MODULES[name] if n.split(".")[0] in AWS_LIBRARIES}
    bad |= {n for n in internal(MODULES[name]) if layer(n) in ("adapters", "wiring", "resources")}
    assert not bad, f"{name} imports {sorted(bad)}: services depend on chalicelib/ports.py, not adapters"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) == "adapters"))
def test_adapters_do_not_reach_outward(name):
    bad = {n for n in internal(MODULES[name]) if layer(n) in ("services", "wiring")}
    assert not bad, f"{name} imports {sorted(bad)}"


def test_no_import_cycles():
    graph = {name: {n for n in internal(deps) if n in MODULES and n != name} for name, deps in MODULES.items()}
    # a package's __init__ is imported by its modules implicitly; it stays out of the graph
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_check_sees_a_violation():
    """Control: the parser does find imports (a services module that imports an adapter)."""
    assert "chalicelib.ports" in MODULES["chalicelib.services.pipelines"]
    assert any(layer(n) == "adapters" for n in internal(MODULES["chalicelib.wiring"]))
