"""llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`), serving the shipped GGUF.

A real OpenAI-compatible endpoint on a loopback port, as an operator would
run one: the `openai` provider is tested against it, not only against the
stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from parley.providers.models import gemma_path
from tests.helpers import free_port

MODEL = "gemma"


class LlamaServer:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        with open(self._log, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_path()), "--model_alias", MODEL,
                 "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "2",
                 "--verbose", "false"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            assert self._process.poll() is None, f"llama_cpp.server exited: {self._log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as answer:
                    if MODEL in [m["id"] for m in json.load(answer)["data"]]:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "llama_cpp.server never answered"
            time.sleep(0.2)

    def kill(self) -> None:
        """Die at once, as a crashed server does."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
