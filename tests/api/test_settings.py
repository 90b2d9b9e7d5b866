"""Server settings: declared once, read from flags and PARLEY_* variables, a bad one stops `parley serve` in one line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from parley.server import ParleyServer
from parley.settings import LEAVES, ServerSettings, SettingError, StartupError, add_arguments, from_arguments
from tests.helpers import free_port


def serve(*flags: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`parley serve` with these flags, expected to stop by itself."""
    return subprocess.run([sys.executable, "-m", "parley.cli", "serve", "--warm-up", "false", *flags],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("flags", "env", "names"), [
    ((), {"PARLEY_PORT": "abc"}, "PARLEY_PORT"),
    (("--port", "99999"), {}, "--port"),
    (("--log-level", "verbose"), {}, "--log-level"),
    (("--auth-tokens", "short alice"), {}, "--auth-tokens"),
    ((), {"PARLEY_AUTH_TOKENS": "short alice"}, "PARLEY_AUTH_TOKENS"),
    (("--otel-protocol", "bogus"), {}, "--otel-protocol"),
    (("--max-sessions", "0"), {}, "--max-sessions"),
    (("--reap-interval", "nan"), {}, "--reap-interval"),
    ((), {"PARLEY_ALLOW_INSECURE": "perhaps"}, "PARLEY_ALLOW_INSECURE"),
], ids=["env port not a number", "port out of range", "unknown log level", "short token flag",
        "short token variable", "unknown otel protocol", "zero sessions", "NaN interval", "bool variable"])
def test_a_bad_setting_stops_serve_with_one_line_naming_it(flags: tuple[str, ...], env: dict[str, str],
                                                           names: str) -> None:
    done = serve(*flags, env=env)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_help_describes_every_setting_with_its_variable_and_default() -> None:
    done = subprocess.run([sys.executable, "-m", "parley.cli", "serve", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    entries = [" ".join(entry.split()) for entry in done.stdout.split("\n  --")]
    for leaf in LEAVES:
        entry = next((e for e in entries if e.startswith(leaf.flag[2:] + " ")), "")
        assert leaf.help and leaf.help in entry and leaf.env in entry and "default" in entry, (leaf.flag, entry)
    assert "0..65535" in done.stdout  # the port's range


def test_a_flag_beats_its_variable_and_nested_settings_take_flat_names(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    monkeypatch.setenv("PARLEY_MAX_TEXT_CHARS", "123")
    monkeypatch.setenv("PARLEY_PORT", "6000")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = from_arguments(parser.parse_args(["--port", "7000", "--allow-stand-in-providers"]))
    assert settings.port == 7000  # the flag wins
    assert settings.registry.session.max_text_chars == 123  # the variable, nested where the engine reads it
    assert settings.registry.allow_stand_in_providers is True
    changed = settings.replace(max_text_chars=5, max_sessions=3)
    assert (changed.registry.session.max_text_chars, changed.registry.max_sessions, changed.port) == (5, 3, 7000)
    with pytest.raises(SettingError, match="--max-text-chars"):
        from_arguments(parser.parse_args(["--max-text-chars", "-1"]))


async def test_a_port_in_use_is_an_error_naming_the_address() -> None:
    first = ParleyServer(ServerSettings(port=0))
    port = await first.start()
    try:
        with pytest.raises(StartupError, match=f"127.0.0.1:{port}"):
            await ParleyServer(ServerSettings(port=port)).start()
        done = await asyncio.to_thread(serve, "--port", str(port))
        assert done.returncode == 2 and done.stderr.strip() == \
            f"parley serve: cannot listen on 127.0.0.1:{port}: the address is in use", done.stderr
    finally:
        await first.stop()


async def test_sharing_a_port_is_the_operators_choice() -> None:
    port = free_port()
    first = ParleyServer(ServerSettings(port=port, allow_reuse_port=True))
    await first.start()
    second = ParleyServer(ServerSettings(port=port, allow_reuse_port=True))
    try:
        assert await second.start() == port
    finally:
        await second.stop()
        await first.stop()
