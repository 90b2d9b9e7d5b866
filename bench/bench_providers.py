"""Provider benchmark: latency, real-time factor and accuracy of the built-in providers.

TTS: time to first audio and real-time factor (synthesis time / audio length).
STT: time from finish() to the final transcript, real-time factor, and word
error rate on sentences spoken by the TTS voices. VAD: cost per 20 ms chunk
and edge error. LLM: time to first token and tokens per second of the local
model. Models are loaded and warmed before timing; load times are reported
on their own. Writes bench/results/providers.json and prints a table.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from parley.chat import ChatMessage, Role
from parley.providers import registry
from parley.providers.base import TTS, TextDelta, Usage, VADEventType
from parley.providers.workers import Workers

SENTENCES = [
    "what is the weather today",
    "please send the report to my manager",
    "can you turn off the lights in the kitchen",
    "i would like to book a table for dinner tonight",
    "remind me to call my mother tomorrow morning",
    "how long does it take to drive to the airport",
    "play some quiet music while i work",
    "the meeting has been moved to next friday",
]
LONG_TEXT = (
    "Thanks for calling. I found three flights that leave tomorrow morning, the earliest at half past six, "
    "and all of them still have seats by the window. Would you like me to hold one while you decide?"
)
QUESTIONS = ["What is the capital of France?", "Can you suggest something to cook tonight?", "Tell me a fun fact."]
OUT = Path(__file__).parent / "results" / "providers.json"


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words (substitutions, insertions, deletions)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return row[-1]


async def synth(tts: TTS, text: str) -> tuple[np.ndarray, float, float]:
    """Audio, seconds to first chunk, seconds to the whole text."""
    start = time.perf_counter()
    chunks: list[np.ndarray] = []
    first = 0.0
    async for chunk in tts.synthesize(text):
        if not chunks:
            first = time.perf_counter() - start
        chunks.append(chunk)
    return np.concatenate(chunks), first, time.perf_counter() - start


def to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    lead, tail = np.zeros(4000, np.int16), np.zeros(12000, np.int16)  # 250 ms, 750 ms
    return np.concatenate([lead, soxr.resample(audio, rate, 16000), tail]).astype(np.int16)


async def bench_tts(name: str, workers: Workers) -> dict[str, Any]:
    tts = registry.build("tts", name, {}, workers=workers)
    start = time.perf_counter()
    await synth(tts, "warm up")
    load = time.perf_counter() - start
    firsts, rtfs = [], []
    for text in SENTENCES + [LONG_TEXT]:
        audio, first, total = await synth(tts, text)
        firsts.append(first)
        rtfs.append(total / (len(audio) / tts.sample_rate))
    _, long_first, long_total = await synth(tts, LONG_TEXT)
    return {
        "provider": name,
        "load_s": load,
        "first_audio_ms_median": 1000 * statistics.median(firsts),
        "long_text_first_audio_ms": 1000 * long_first,
        "long_text_total_ms": 1000 * long_total,
        "rtf_median": statistics.median(rtfs),
    }


async def bench_stt(name: str, voices: dict[str, list[np.ndarray]], workers: Workers) -> dict[str, Any]:
    stt = registry.build("stt", name, {}, workers=workers)
    stream = stt.stream()
    start = time.perf_counter()
    await stream.push(next(iter(voices.values()))[0])
    await stream.finish()
    load = time.perf_counter() - start
    result: dict[str, Any] = {"provider": name, "load_s": load}
    for voice, clips in voices.items():
        errors = total_words = 0
        finals, rtfs = [], []
        for text, pcm in zip(SENTENCES, clips, strict=True):
            for i in range(0, len(pcm), 320):  # 20 ms chunks, as a caller sends them
                await stream.push(pcm[i : i + 320])
            start = time.perf_counter()
            transcript = await stream.finish()
            elapsed = time.perf_counter() - start
            finals.append(elapsed)
            rtfs.append(elapsed / (len(pcm) / 16000))
            errors += word_errors(words(text), words(transcript.text))
            total_words += len(words(text))
        result[f"{voice}_final_ms_median"] = 1000 * statistics.median(finals)
        result[f"{voice}_rtf_median"] = statistics.median(rtfs)
        result[f"{voice}_wer"] = errors / total_words
    await stream.aclose()
    return result


def bench_vad(name: str, clips: list[np.ndarray], workers: Workers) -> dict[str, Any]:
    vad = registry.build("vad", name, {}, workers=workers)
    cost, start_err, end_err = [], [], []
    for pcm in clips:
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 100)
        stream = vad.stream()
        events = []
        for i in range(0, len(pcm), 320):
            t = time.perf_counter()
            events += stream.process(pcm[i : i + 320])
            cost.append(time.perf_counter() - t)
        starts = [e.time_ms for e in events if e.type is VADEventType.SPEECH_START]
        ends = [e.time_ms for e in events if e.type is VADEventType.SPEECH_END]
        if starts and ends:
            start_err.append(abs(starts[0] - loud[0] / 16))
            end_err.append(abs(ends[-1] - loud[-1] / 16))
    return {
        "provider": name,
        "us_per_20ms_chunk": 1e6 * statistics.mean(cost),
        "start_error_ms_mean": statistics.mean(start_err),
        "end_error_ms_mean": statistics.mean(end_err),
        "clips_detected": f"{len(start_err)}/{len(clips)}",
    }


async def bench_llm(name: str, workers: Workers) -> dict[str, Any]:
    llm = registry.build("llm", name, {"max_tokens": 48, "seed": 1}, workers=workers)
    system = ChatMessage(Role.SYSTEM, "A conversation with a helpful voice assistant.")
    start = time.perf_counter()
    [c async for c in llm.chat([system, ChatMessage(Role.USER, "Hi")], [])]
    load = time.perf_counter() - start
    ttfts, rates, answers = [], [], []
    for question in QUESTIONS:
        start = time.perf_counter()
        first = 0.0
        text, tokens = "", 0
        async for chunk in llm.chat([system, ChatMessage(Role.USER, question)], []):
            if isinstance(chunk, TextDelta):
                if not text:
                    first = time.perf_counter() - start
                text += chunk.text
            elif isinstance(chunk, Usage):
                tokens = chunk.output_tokens
        elapsed = time.perf_counter() - start
        ttfts.append(first)
        rates.append(tokens / elapsed if elapsed else 0.0)
        answers.append({"question": question, "answer": text})
    return {
        "provider": name,
        "model": llm.model,
        "load_s": load,
        "first_token_ms_median": 1000 * statistics.median(ttfts),
        "tokens_per_s_median": statistics.median(rates),
        "answers": answers,
    }


async def main() -> dict[str, Any]:
    workers = Workers(threads=2)
    tts_names = ["espeak"] + (["piper"] if importlib.util.find_spec("piper") else [])
    results: dict[str, Any] = {"tts": [], "stt": [], "vad": [], "llm": []}
    voices: dict[str, list[np.ndarray]] = {}
    for name in tts_names:
        results["tts"].append(await bench_tts(name, workers))
        tts = registry.build("tts", name, {}, workers=workers)
        voices[name] = [to_16k((await synth(tts, text))[0], tts.sample_rate) for text in SENTENCES]
    for name in ["whisper", "pocketsphinx"]:
        results["stt"].append(await bench_stt(name, voices, workers))
    for name in ["webrtc", "silero"]:
        results["vad"].append(bench_vad(name, voices["espeak"], workers))
    results["llm"].append(await bench_llm("local", workers))
    workers.close()
    return results


def table(results: dict[str, Any]) -> str:
    lines = ["TTS            first audio   long text: first / total   RTF      load"]
    for r in results["tts"]:
        lines.append(
            f"  {r['provider']:<12} {r['first_audio_ms_median']:8.1f} ms   {r['long_text_first_audio_ms']:8.1f} /"
            f" {r['long_text_total_ms']:7.1f} ms      {r['rtf_median']:.4f}   {r['load_s']:.2f} s"
        )
    voices = [r["provider"] for r in results["tts"]]
    lines.append("STT            " + "".join(f"{v}: final / RTF / WER            " for v in voices) + "load")
    for r in results["stt"]:
        cells = "".join(
            f"{r[f'{v}_final_ms_median']:7.0f} ms / {r[f'{v}_rtf_median']:.3f} / {100 * r[f'{v}_wer']:5.1f} %     "
            for v in voices
        )
        lines.append(f"  {r['provider']:<12} {cells}{r['load_s']:.2f} s")
    lines.append("VAD            cost per 20 ms chunk   start error   end error   detected")
    for r in results["vad"]:
        lines.append(
            f"  {r['provider']:<12} {r['us_per_20ms_chunk']:10.1f} us   {r['start_error_ms_mean']:8.1f} ms"
            f"   {r['end_error_ms_mean']:7.1f} ms   {r['clips_detected']}"
        )
    lines.append("LLM            first token   tokens/s   load")
    for r in results["llm"]:
        lines.append(
            f"  {r['provider']:<12} {r['first_token_ms_median']:8.1f} ms   {r['tokens_per_s_median']:7.1f}"
            f"   {r['load_s']:.2f} s   ({r['model']})"
        )
        for a in r["answers"]:
            lines.append(f"      Q: {a['question']}  A: {a['answer']}")
    return "\n".join(lines)


if __name__ == "__main__":
    results = asyncio.run(main())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"written to {OUT}", file=sys.stderr)
