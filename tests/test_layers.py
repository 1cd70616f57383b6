"""Imports run one way: config > the faces (api, dashboard) > logstreams, webhooks > jobs >
audit > services.

``config`` wires the apps and is imported by none; a face may import the feature apps, jobs and
services but not the other face; each app below imports only the apps under it. The project's
modules must also import each other in no cycle. Every import counts, at module level or inside
a function: an import deferred into a function to get round a cycle still ties the two modules
together. Only an import under ``if TYPE_CHECKING:`` (read by the type checker, never run) may
close a cycle; it still counts for the layers. Both checks read the source with ``ast``.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "api", "dashboard", "logstreams", "webhooks", "jobs", "audit", "services")
# What each package must not import.
FORBIDDEN = {
    "config": set(),
    "api": {"config", "dashboard"},
    "dashboard": {"config", "api"},
    "logstreams": {"config", "api", "dashboard", "webhooks"},
    "webhooks": {"config", "api", "dashboard", "logstreams"},
    "jobs": {"config", "api", "dashboard", "logstreams", "webhooks"},
    "audit": {"config", "api", "dashboard", "logstreams", "webhooks", "jobs"},
    "services": {"config", "api", "dashboard", "logstreams", "webhooks", "jobs", "audit"},
}


def project_sources() -> dict[str, str]:
    """Every module of the project's packages (migrations included): dotted name -> source."""
    sources = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            sources[".".join(parts)] = path.read_text()
    return sources


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _nodes(tree: ast.AST, runtime_only: bool):
    """Every node of ``tree``; with ``runtime_only``, not those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        children = list(ast.iter_child_nodes(node))
        if runtime_only and _type_checking(node):
            children = [*node.orelse]  # type: ignore[attr-defined]
        stack.extend(children)


def imports(module: str, source: str, known: set[str], *, runtime_only: bool = False) -> set[str]:
    """The modules ``module`` imports, anywhere in its source (with ``runtime_only``, not the
    imports only a type checker reads).

    ``from package import name`` imports the submodule ``package.name`` when ``known`` has it,
    else the package itself."""
    is_package = any(other.startswith(module + ".") for other in known)
    found = set()
    for node in _nodes(ast.parse(source, module), runtime_only):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package holding the module (or the package)
                parent = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return found


def layer_violations(sources: dict[str, str]) -> set[tuple[str, str]]:
    """(module, imported module) for every import against the direction."""
    found = set()
    for module, source in sources.items():
        forbidden = FORBIDDEN[module.split(".")[0]]
        for imported in imports(module, source, set(sources)):
            if imported.split(".")[0] in forbidden:
                found.add((module, imported))
    return found


def import_cycles(sources: dict[str, str]) -> set[tuple[str, ...]]:
    """Each cycle of imports between project modules found by a depth-first walk, as its
    modules in import order starting from the smallest name."""
    graph = {
        module: sorted(
            imports(module, source, set(sources), runtime_only=True) & set(sources) - {module}
        )
        for module, source in sources.items()
    }
    cycles, done = set(), set()

    def visit(module: str, path: list[str]):
        if module in path:
            cycle = path[path.index(module) :]
            first = cycle.index(min(cycle))
            cycles.add(tuple(cycle[first:] + cycle[:first]))
            return
        if module in done:
            return
        for imported in graph[module]:
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return cycles


def test_imports_run_one_way():
    found = layer_violations(project_sources())
    assert not found, "\n".join(f"{module} imports {name}" for module, name in sorted(found))


def test_imports_form_no_cycle():
    found = import_cycles(project_sources())
    assert not found, "\n".join(" -> ".join([*cycle, cycle[0]]) for cycle in sorted(found))


def test_the_checks_see_a_violation():
    sources = {
        "services": "",
        "services.models": "import json\nfrom . import ids\n",
        "services.ids": "def later():\n    from jobs.models import Job\n",
        "jobs": "",
        "jobs.models": "from services.models import Service\n",
        "api": "",
        "api.a": "from api import b\n",
        "api.b": "from .c import x\n",
        "api.c": "def later():\n    import api.a\n\n\nfrom dashboard.views import jobs\n",
        "jobs.runner": "from jobs import typed\n",
        "jobs.typed": "if TYPE_CHECKING:\n    from jobs import runner\n    from api import a\n",
    }
    assert layer_violations(sources) == {
        ("services.ids", "jobs.models"),
        ("api.c", "dashboard.views"),
        ("jobs.typed", "api.a"),
    }
    assert import_cycles(sources) == {
        ("api.a", "api.b", "api.c"),
        ("jobs.models", "services.models", "services.ids"),  # closed by a function's import
    }
