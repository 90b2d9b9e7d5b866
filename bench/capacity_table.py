"""The capacity benchmark's results as the README's table (Markdown).

bench/bench_capacity.py writes it beside its JSON (bench/results/capacity.md)
at the end of a run; this prints it again from a JSON file of an earlier run:

    python bench/capacity_table.py [bench/results/capacity.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "capacity.json"

COLUMNS = (  # (title, Markdown alignment)
    ("N", "---:"), ("echo p99 / CPU (loop)", "---"), ("clocked echo p99 / CPU (loop)", "---"),
    ("Parley p50 / p99 / max", "---"), ("p99 of the rounds", "---"), ("Parley CPU (loop)", "---:"),
    ("CPU per session vs echo", "---:"), ("vs clocked echo", "---:"), ("dropped", "---:"),
    ("RSS Parley / echo", "---:"), ("events per session and second", "---:"),
    ("Say → first frame p50 / p99", "---"), ("N Says at once → first frame p50 / last", "---"),
    ("of which: the last Say reaching its session + the longest first frame after a Say", "---"),
    ("final transcript after the caller's speech p50 / p99 (stretches transcribed)", "---"),
)
HEADER = "| " + " | ".join(title for title, _ in COLUMNS) + " |"
ALIGN = "|" + "|".join(align for _, align in COLUMNS) + "|"


def markdown(result: dict) -> str:
    """The table, a row per N (stand-ins, then default providers), then the overload and idle-memory lines."""
    rows = [HEADER, ALIGN, _section("stand-in providers")]
    rows += [_row(row, per_session=True) for row in result["stand_in"]]
    rows += [_section("default providers")]
    rows += [_row(row, per_session=False) for row in result["default"]]
    lines = ["\n".join(rows)]
    overload = result.get("overload")
    if overload:
        p, e = overload["parley"], overload["echo"]
        lines.append(
            f"Past capacity: {overload['offered']} stand-in callers offered to `--max-streams "
            f"{overload['max_streams']}`: {p['streams_refused']} refused at once; the admitted calls at p50 / p99 "
            f"/ max {p['p50_ms']:.1f} / {p['p99_ms']:.1f} / {p['max_ms']:.1f} ms (rounds "
            + ", ".join(f"{x:.1f}" for x in overload["rounds_p99_ms"])
            + f" ms), {p['frames_dropped']} dropped, {_pct(p['server_cpu'])} of a core (the echo at "
            f"{overload['max_streams']}: {e['p99_ms']:.1f} ms, {_pct(e['server_cpu'])}).")
    memory = result.get("idle_memory")
    if memory:
        lines.append(f"An idle session ({memory['sessions']} open, no stream): "
                     f"{memory['kib_per_idle_session']:.0f} KiB, on a process of {memory['rss_before_mib']:.0f} MiB "
                     "before them.")
    return "\n\n".join(lines) + "\n"


def _section(title: str) -> str:
    return f"| {title} |" + " |" * (len(COLUMNS) - 1)


def _row(row: dict, per_session: bool) -> str:
    """`per_session`: whether CPU per session compares with the echo's (not with the models' processes counted)."""
    e, p, n = row["echo"], row["parley"], row["sessions"]
    clocked = row.get("clocked_echo")
    cells = [
        f"{n}",
        _server(e),
        _server(clocked) if clocked else "",
        f"{p['p50_ms']:.1f} / {p['p99_ms']:.1f} / {p['max_ms']:.1f} ms",
        ", ".join(f"{x:.1f}" for x in row["rounds_p99_ms"]),
        f"{_pct(p['server_cpu'])} ({_pct(p['loop_cpu'])})",
        f"{row['cpu_per_session_vs_echo']:.2f}×" if per_session else "",
        f"{row['cpu_per_session_vs_clocked_echo']:.2f}×" if clocked else "",
        f"{p['frames_dropped']:,}",
        f"{p['server_rss_mib']:.0f} / {e['server_rss_mib']:.0f} MiB",
        f"{sum(p['events_per_session_second'].values()):.1f}",
        _pair(p["say_to_first_frame_ms_p50"], p["say_to_first_frame_ms_p99"], " ms"),
        _pair(p["burst_say_to_first_frame_ms_p50"], p["burst_say_to_first_frame_ms_max"], " ms"),
        _pair(p["burst_say_received_ms_max"], p["burst_received_to_first_frame_ms_max"], " ms", " + "),
        _transcripts(p),
    ]
    return "| " + " | ".join(cells) + " |"


def _server(run: dict) -> str:
    return f"{run['p99_ms']:.1f} ms / {_pct(run['server_cpu'])} ({_pct(run['loop_cpu'])})"


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %"


def _pair(first: float | None, second: float | None, unit: str, between: str = " / ") -> str:
    if first is None or second is None:
        return "–"
    return f"{first:.0f}{between}{second:.0f}{unit}"


def _transcripts(p: dict) -> str:
    if p.get("final_transcript_ms_p50") is None:
        return ""
    return (f"{p['final_transcript_ms_p50'] / 1000:.1f} / {p['final_transcript_ms_p99'] / 1000:.1f} s "
            f"({p['transcribed_share'] * 100:.0f} %)")


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    print(markdown(json.loads(path.read_text())), end="")
