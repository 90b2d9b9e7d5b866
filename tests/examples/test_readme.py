"""The README stays true to what the programs do: the settings table, the sample run, the event names, the
command table, the capacity table's shape."""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path

from bench.capacity_table import ALIGN, HEADER
from parley.cli import build_parser
from parley.settings import LEAVES, Leaf
from parley.v1 import events_pb2
from tests.examples.conftest import BIN, QUESTION, ROOT, run


def readme_row(leaf: Leaf) -> str:
    """How the README documents a setting: flag, variable, default and the same one-line help as --help."""
    default = leaf.default
    shown = "" if default == "" else f"`{str(default).removesuffix('.0')}`"
    return f"| `{leaf.flag}` | `{leaf.env}` | {shown} | {leaf.help} |".replace("|  |", "| |")


def test_every_server_setting_is_documented_as_declared() -> None:
    documented = re.findall(r"^\| `--[a-z-]+` \| `PARLEY_[A-Z_]+` \|.*\|$", readme(), re.MULTILINE)
    expected = [readme_row(leaf) for leaf in LEAVES]
    assert documented == expected, "README.md's server table must read:\n" + "\n".join(expected)


def readme() -> str:
    return (ROOT / "README.md").read_text()


def sample_transcript() -> list[str]:
    """The lines of the README's sample `parley talk` run."""
    block = re.search(r"A run on this\smachine printed:\n\n```\n(.*?)\n```", readme(), re.DOTALL)
    assert block, "README.md: the sample parley talk run is missing"
    return block.group(1).splitlines()


def shape(line: str) -> str:
    """A printed line with what varies run to run (ids, sequences, timings, the recognizer's and the demo model's
    words) blanked. What the recognizer hears in the question is the spoken-turn tests' to check: under load
    Whisper cuts the same audio differently and its words change ("What is the winner today?")."""
    line = re.sub(r"sessions/[0-9a-f]+", "sessions/ID", line)
    line = re.sub(r"^event \d+ ", "event ", line)
    line = re.sub(r"\d+(\.\d+)? (ms|s)\b", r"N \2", line)
    line = re.sub(r"^wrote \S+:", "wrote FILE:", line)
    if re.match(r"event (agent_text|utterance_updated \S+ reply|transcript (interim|final))", line):
        line = re.sub(r"(['\"]).*\1$", "'…'", line)
    return line


async def test_sample_transcript_is_what_a_run_prints(address: str, tmp_path: Path) -> None:
    """Every line of the README's sample is a line `parley talk` prints for the same file, and its milestones
    come in the same order."""
    done = await asyncio.to_thread(run, [BIN / "parley", "talk", "--address", address, "--wav", QUESTION,
                                         "--out", tmp_path / "reply.wav"])
    printed = [shape(line) for line in done.stdout.splitlines()]
    sample = [shape(line) for line in sample_transcript()]
    missing = [line for line in sample if line not in printed and not line.startswith("event transcript interim")]
    assert not missing, f"README lines no run printed: {missing}\nthe run printed:\n{done.stdout}"
    milestones = ["event user_state_changed listening -> speaking", "event transcript final",
                  "event utterance_updated u1 reply queued", "event utterance_updated u1 reply speaking",
                  "event utterance_updated u1 reply played", "event session_closed 'talk done'"]
    for lines in (sample, printed):
        found = [next(i for i, line in enumerate(lines) if line.startswith(m)) for m in milestones]
        assert found == sorted(found), lines


def test_event_names_in_the_readme_are_event_kinds() -> None:
    kinds = {f.name for f in events_pb2.SessionEvent.DESCRIPTOR.oneofs_by_name["event"].fields}
    paragraph = re.search(r"`SessionEvent.event` oneof \((.*?)\)", readme(), re.DOTALL)
    assert paragraph
    named = set(re.findall(r"`(\w+)`", paragraph.group(1)))
    assert named and named <= kinds, named - kinds
    assert {shape(line).split()[1] for line in sample_transcript() if line.startswith("event ")} <= kinds


def test_the_command_table_lists_every_flag() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("talk", "health", "web"):
        row = re.search(rf"^\| `parley {name} ([^`]*)` \|", readme(), re.MULTILINE)
        assert row, f"README.md: no row for parley {name}"
        documented = set(re.findall(r"--[a-z-]+", row.group(1)))
        flags = {f for a in commands.choices[name]._actions for f in a.option_strings if f.startswith("--")}
        assert documented == flags - {"--help"}, name


def test_the_capacity_table_is_the_one_the_benchmark_writes() -> None:
    """`make bench` writes its capacity table (bench/results/capacity.md); the README publishes one run of it, so
    its columns and row shape are the benchmark's."""
    text = readme()
    assert f"{HEADER}\n{ALIGN}\n" in text, "README.md's capacity table must have bench/capacity_table.py's columns"
    table = text[text.index(HEADER):].split("\n\n")[0].splitlines()
    cells = HEADER.count("|")
    assert all(row.count("|") == cells for row in table), "a README capacity row has other cells than the header"
    assert any(row.startswith("| 100 |") for row in table), "the table has no row for 100 callers"
