"""The Node.js and Python stub clients, and the in-process embedding example, each a whole conversation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.examples.conftest import (
    BIN,
    EXAMPLES,
    QUESTION,
    assert_readable,
    event_lines,
    first,
    loudest_rms,
    read_wav,
    run,
)

NODE_MODULES = EXAMPLES / "node" / "node_modules"


def check_conversation(stdout: str, out: Path, *, state_kind: str, transcript_kind: str,
                       utterance_kind: str, closed_kind: str) -> None:
    """The caller spoke, was transcribed, got a reply that played, a Say was interrupted, the session closed."""
    lines = event_lines(stdout)
    order = [
        first(lines, state_kind, r"listening -> speaking"),
        first(lines, transcript_kind, r"^final ['\"]\w"),
        first(lines, utterance_kind, r"^\S+ reply speaking "),
        first(lines, utterance_kind, r"^\S+ reply played "),
        first(lines, utterance_kind, r"^\S+ say speaking "),
        first(lines, utterance_kind, r"^\S+ say interrupted "),
        first(lines, closed_kind, r"example done"),
    ]
    assert order == sorted(order), order
    assert order[-1] == len(lines) - 1, "the session-closed event comes last"
    assert "heard 'Let me" in stdout or 'heard "Let me' in stdout  # the part of the story played before the cut

    pcm, rate, channels = read_wav(out)
    assert (rate, channels) == (24000, 1)
    assert len(pcm) > 2 * rate  # the reply and the start of the story
    assert loudest_rms(pcm, rate) > 1000  # audible speech, not silence


def python_client_conversation(address: str, tmp_path: Path) -> None:
    """The Python stub client's whole conversation with the server (or proxy) at `address`."""
    out = tmp_path / "reply.wav"
    done = run([BIN / "python", EXAMPLES / "python" / "client.py", "--wav", QUESTION, "--out", out],
               env={**os.environ, "PARLEY_ADDRESS": address})  # the address as the grpcurl scripts take it
    check_conversation(done.stdout, out, state_kind="user_state_changed", transcript_kind="transcript",
                       utterance_kind="utterance_updated", closed_kind="session_closed")
    assert_readable(event_lines(done.stdout), {"agent_text", "metrics_updated"})


def node_client_conversation(address: str, tmp_path: Path) -> None:
    """The Node.js client's whole conversation with the server (or proxy) at `address`."""
    if not NODE_MODULES.is_dir():
        pytest.fail(f"{NODE_MODULES} is missing: run `make setup` (it runs npm ci there)")
    out = tmp_path / "reply.wav"
    done = run(["node", EXAMPLES / "node" / "client.js", "--wav", QUESTION, "--out", out],
               env={**os.environ, "PARLEY_ADDRESS": address})
    check_conversation(done.stdout, out, state_kind="user_state_changed", transcript_kind="transcript",
                       utterance_kind="utterance_updated", closed_kind="session_closed")


def test_python_stub_client(address: str, tmp_path: Path) -> None:
    python_client_conversation(address, tmp_path)


def test_node_client(address: str, tmp_path: Path) -> None:
    node_client_conversation(address, tmp_path)


def test_embedding_example(tmp_path: Path) -> None:
    """The engine in-process: no server, same conversation."""
    out = tmp_path / "reply.wav"
    done = run([BIN / "python", EXAMPLES / "python" / "embed.py", "--wav", QUESTION, "--out", out])
    check_conversation(done.stdout, out, state_kind="UserStateChanged", transcript_kind="TranscriptEvent",
                       utterance_kind="UtteranceUpdated", closed_kind="SessionClosed")


def test_node_client_help() -> None:
    done = run(["node", EXAMPLES / "node" / "client.js", "--help"])
    assert done.stdout.startswith("usage: node examples/node/client.js --wav FILE")
    assert "PARLEY_ADDRESS" in done.stdout and "PARLEY_TOKEN" in done.stdout

