"""Providers by stage and name, built from a session's config.

Each entry names the class as "module:Class"; the module also holds OPTIONS,
the provider's option schema. Modules import on first use, so an optional
provider whose extra is not installed costs nothing until it is asked for.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from parley.errors import InvalidArgument
from parley.providers.options import shown, validate
from parley.providers.workers import Workers

log = logging.getLogger("parley.providers")

STAGES = ("stt", "tts", "llm", "vad", "turn_detector")


@dataclass(frozen=True)
class Entry:
    target: str
    """"module:Class" of the provider, relative to parley.providers."""
    extra: str = ""
    """The pip extra that installs it, when it is not in the default set."""
    stand_in: bool = False
    """A cheap deterministic fake for tests and benchmarks, not a real engine."""


REGISTRY: dict[str, dict[str, Entry]] = {
    "tts": {
        "espeak": Entry("tts.espeak:EspeakTTS"),
        "piper": Entry("tts.piper:PiperTTS", extra="piper"),
        "tone": Entry("tts.tone:ToneTTS", stand_in=True),
    },
    "stt": {
        "whisper": Entry("stt.whisper:WhisperSTT"),
        "pocketsphinx": Entry("stt.pocketsphinx:PocketSphinxSTT"),
        "scripted": Entry("stt.scripted:ScriptedSTT", stand_in=True),
    },
    "vad": {
        "webrtc": Entry("vad.webrtc:WebRTCVAD"),
        "silero": Entry("vad.silero:SileroVAD"),
        "energy": Entry("vad.energy:EnergyVAD", stand_in=True),
    },
    "turn_detector": {
        "vad": Entry("turn:VADTurnDetector"),
    },
    "llm": {
        "local": Entry("llm.local:LocalLLM"),
        "openai": Entry("llm.openai:OpenAILLM"),
        "echo": Entry("llm.echo:EchoLLM", stand_in=True),
    },
}

DEFAULTS = {"tts": "espeak", "stt": "whisper", "vad": "webrtc", "turn_detector": "vad", "llm": "local"}


def names(stage: str) -> list[str]:
    return sorted(_stage(stage))


def default_name(stage: str) -> str:
    _stage(stage)
    return DEFAULTS[stage]


def stand_ins(stage: str) -> list[str]:
    """The stage's stand-in providers (fakes for tests and benchmarks, with fault injection)."""
    return sorted(name for name, entry in _stage(stage).items() if entry.stand_in)


def resolve(stage: str, name: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The provider name in use ("" picks the stage's default) and its options, every default filled in.

    Options without a default (None) stay out; the provider sees them as None.

    InvalidArgument names the bad field of config.providers.
    """
    field = f"config.providers.{stage}"
    name = name or default_name(stage)
    module = _module(stage, name)
    checked = validate(module.OPTIONS, options, f"{field}.options")
    effective = getattr(module, "effective_options", None)  # defaults a provider takes from its environment
    if effective is not None:
        checked = effective(checked)
    return name, {key: value for key, value in checked.items() if value is not None}  # None: left unset


def build(stage: str, name: str, options: dict[str, Any], *, voice: str = "", workers: Workers) -> Any:
    """A provider for `stage`; InvalidArgument names the bad field of config.providers."""
    name, resolved = resolve(stage, name, options)
    module = _module(stage, name)
    class_name = _stage(stage)[name].target.split(":")[1]
    return getattr(module, class_name)(validate(module.OPTIONS, resolved, ""), voice=voice, workers=workers)


def shown_options(stage: str, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """A provider's options as Get shows them (secrets redacted, unset ones left out)."""
    try:
        schema = _module(stage, name or default_name(stage)).OPTIONS
    except InvalidArgument:
        schema = {}
    return shown(schema, options)


def _module(stage: str, name: str) -> Any:
    field = f"config.providers.{stage}"
    entries = _stage(stage)
    entry = entries.get(name)
    if entry is None:
        raise InvalidArgument(
            f"{field}.name", f"unknown {stage} provider {name!r} (known: {', '.join(sorted(entries))})"
        )
    module_name = entry.target.split(":")[0]
    try:
        return importlib.import_module(f"parley.providers.{module_name}")
    except ImportError as exc:
        hint = f"; install it with: pip install 'parley[{entry.extra}]'" if entry.extra else ""
        raise InvalidArgument(
            f"{field}.name", f"{stage} provider {name!r} is not installed ({exc.name}){hint}"
        ) from exc


async def warm_up_defaults(workers: Workers) -> None:
    """Load the default providers' models now, so the first caller does not wait for them.

    A model that fails to load is logged; sessions then fail on it the usual way.
    """
    for stage in ("tts", "stt", "llm"):  # the stages with models to load
        started = time.monotonic()
        try:
            await build(stage, "", {}, workers=workers).warm_up()
        except Exception:  # noqa: BLE001 - warming is best effort
            log.exception("warm-up failed", extra={"stage": stage})
            continue
        log.info("warmed up", extra={"stage": stage, "provider": DEFAULTS[stage],
                                     "seconds": round(time.monotonic() - started, 2)})


def _stage(stage: str) -> dict[str, Entry]:
    try:
        return REGISTRY[stage]
    except KeyError:
        raise InvalidArgument("config.providers", f"unknown stage {stage!r} (known: {', '.join(STAGES)})") from None
