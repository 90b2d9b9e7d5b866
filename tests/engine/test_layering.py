"""The engine and telemetry never load gRPC: they are usable (and testable) without the transport."""

from __future__ import annotations

import subprocess
import sys

ENGINE_PACKAGES = ("parley.sessions", "parley.telemetry", "parley.providers", "parley.audio", "parley.mcp")
OPTIONAL = ("parley.providers.tts.piper",)  # needs the piper extra


def test_importing_the_engine_loads_no_grpc() -> None:
    script = f"""
import importlib, pkgutil, sys
for name in {ENGINE_PACKAGES!r}:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        if module.name not in {OPTIONAL!r}:
            importlib.import_module(module.name)
print(sorted(m for m in sys.modules if m == "grpc" or m.startswith("grpc.")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
