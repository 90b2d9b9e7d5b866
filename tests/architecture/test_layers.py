"""The code's layering rules, read from the import statements of every module.

- the engine (sessions) never imports gRPC or the api, telemetry or mcp packages' insides it does not own:
  it depends on nothing above it;
- providers never import sessions;
- the mixer kernel imports nothing of the service;
- api holds no session logic: it reaches the engine only through its front modules;
- no cycles between packages.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "service" / "parley"
GENERATED = PACKAGE / "v1"
ENGINE_FRONT = {  # what api may use of the engine
    "parley.sessions.registry", "parley.sessions.session", "parley.sessions.session_types", "parley.sessions.config",
    "parley.sessions.events", "parley.sessions.stream", "parley.sessions.states", "parley.sessions.utterance",
    "parley.sessions.metrics", "parley.sessions.layers", "parley.sessions.limits", "parley.sessions.defaults",
    "parley.sessions.ratelimit",  # the token bucket, reused for the per-caller limit
    "parley.sessions.recording",
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if GENERATED in path.parents:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, name: str) -> set[str]:
    """Every parley module `path` imports (relative imports resolved; TYPE_CHECKING ones included)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("parley")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("parley"):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}
    return out


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


MODULES = modules()
IMPORTS = {name: {i for i in imports_of(path, name) if i in MODULES or package_of(i) in MODULES}
           for name, path in MODULES.items()}


def importers_of(prefix: str) -> dict[str, set[str]]:
    return {m: {i for i in deps if i.startswith(prefix)} for m, deps in IMPORTS.items()}


@pytest.mark.parametrize("layer, forbidden", [
    ("parley.sessions", ("parley.api", "parley.telemetry", "parley.server", "parley.settings", "parley.web",
                         "parley.v1", "parley.cli")),
    ("parley.providers", ("parley.sessions", "parley.api", "parley.telemetry", "parley.server", "parley.v1")),
    ("parley.audio", ("parley.sessions", "parley.api", "parley.providers", "parley.telemetry", "parley.v1")),
    ("parley.telemetry", ("parley.api", "parley.server", "parley.v1")),
    ("parley.mcp", ("parley.sessions", "parley.api", "parley.telemetry", "parley.v1")),
])
def test_a_layer_imports_nothing_above_it(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = {m: sorted(i for i in deps if i.startswith(forbidden))
             for m, deps in IMPORTS.items() if m.startswith(layer)}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_the_mixer_kernel_imports_nothing_of_the_service() -> None:
    for source in (ROOT / "mixer").glob("*.pyx"):
        assert "parley" not in source.read_text(), source


def test_api_reaches_the_engine_only_through_its_front() -> None:
    wrong = {m: sorted(i for i in deps if i.startswith("parley.sessions.") and i in MODULES and i not in ENGINE_FRONT)
             for m, deps in IMPORTS.items() if m.startswith("parley.api")}
    assert {m: d for m, d in wrong.items() if d} == {}


def test_no_cycles_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, deps in IMPORTS.items():
        for dep in deps:
            a, b = package_of(module), package_of(dep)
            if a != b:
                graph[a].add(b)
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []
