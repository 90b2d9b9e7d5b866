"""The examples against a real server: `parley serve` in a subprocess, each example a subprocess too."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent
QUESTION = EXAMPLES / "audio" / "question.wav"
# The server runs with authentication on, so every example shows it sends its token (PARLEY_TOKEN).
TOKEN = "examples-token-0123456789"


@pytest.fixture(scope="package")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `parley serve` process with authentication on, on a free loopback port (port 0; the bound port
    is read from its log)."""
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with open(log_path, "w") as log:
        # --drain-timeout 0: at the end, SIGTERM closes the session a test left open at once
        proc = subprocess.Popen([BIN / "parley", "serve", "--port", "0", "--log-level", "INFO", "--drain-timeout", "0"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PARLEY_AUTH_TOKENS": f"{TOKEN} examples"})
    try:
        found = None
        while found is None:
            assert proc.poll() is None, f"the server exited: {log_path.read_text()}"
            lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
            found = next((line["address"] for line in lines if line["event"] == "serving"), None)
            time.sleep(0.1)
        health = subprocess.run([BIN / "parley", "health", "--address", found], capture_output=True, text=True)
        assert (health.returncode, health.stdout.strip()) == (0, "SERVING")
        yield found
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0, log_path.read_text()  # drained and stopped cleanly


def run(args: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run an example with the server's token in PARLEY_TOKEN; its exit status must be 0."""
    env = {**kwargs.pop("env", os.environ), "PARLEY_TOKEN": TOKEN}
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=ROOT, env=env, **kwargs)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


@dataclass(frozen=True)
class Line:
    sequence: int
    kind: str
    detail: str


def event_lines(stdout: str) -> list[Line]:
    """The `event <sequence> <kind> <details>` lines an example printed."""
    lines = [Line(int(m[1]), m[2], m[3]) for m in re.finditer(r"^event (\d+) (\w+) (.*)$", stdout, re.MULTILINE)]
    assert lines, stdout
    sequences = [line.sequence for line in lines]
    assert sequences == sorted(set(sequences)), "event sequences must increase"
    return lines


def assert_readable(lines: list[Line], kinds: set[str]) -> None:
    """Event details in plain words: no protobuf text format (`field: value`, `name { ... }`); `kinds` were seen."""
    assert kinds <= {line.kind for line in lines}, [line.kind for line in lines]
    protobuf_text = re.compile(r"\b[a-z_]+: [\"\d{]|\w \{ ")
    assert not [line for line in lines if protobuf_text.search(line.detail)], lines


def first(lines: list[Line], kind: str, pattern: str) -> int:
    """Position of the first line of `kind` whose details match `pattern`."""
    for i, line in enumerate(lines):
        if line.kind == kind and re.search(pattern, line.detail):
            return i
    raise AssertionError(f"no {kind} matching {pattern!r} in {[(x.kind, x.detail[:40]) for x in lines]}")


def read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    """Samples, rate and channels of a 16-bit WAV."""
    assert path.exists(), f"{path} was not written"
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate(), w.getnchannels()


def loudest_rms(pcm: np.ndarray, rate: int) -> float:
    """RMS of the loudest 100 ms window: speech is > 1000, silence and hiss are far below."""
    window = rate // 10
    blocks = pcm[: len(pcm) // window * window].astype(np.float64).reshape(-1, window)
    return float(np.sqrt((blocks**2).mean(axis=1)).max()) if len(blocks) else 0.0
