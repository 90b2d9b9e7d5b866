"""A session's providers, built by name from its config, and what an observer is told of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley.providers import registry
from parley.providers.base import LLM, STT, TTS, VAD, TurnDetector
from parley.providers.workers import Workers
from parley.sessions.config import SessionConfig
from parley.sessions.observer import SessionDescription
from parley.sessions.stall import guard_llm, guard_tts


@dataclass(frozen=True)
class SessionProviders:
    tts: TTS
    llm: LLM
    stt: STT
    vad: VAD
    turn_detector: TurnDetector

    @classmethod
    def build(cls, config: SessionConfig, workers: Workers, *, stall_seconds: float) -> SessionProviders:
        """Every stage by name; streaming TTS and LLM watched for stalls (`stall_seconds` 0: never)."""
        def build(stage: str) -> Any:
            choice = getattr(config.providers, stage)
            return registry.build(stage, choice.name, choice.options, voice=config.voice, workers=workers)

        return cls(tts=guard_tts(build("tts"), stall_seconds), llm=guard_llm(build("llm"), stall_seconds),
                   stt=build("stt"), vad=build("vad"), turn_detector=build("turn_detector"))

    def describe(self, name: str, config: SessionConfig) -> SessionDescription:
        return SessionDescription(
            name=name, stt=self.stt.name, tts=self.tts.name, voice=config.voice, vad=self.vad.name,
            turn_detector=self.turn_detector.name, llm=self.llm.name, llm_model=self.llm.model,
            stt_model=getattr(self.stt, "model", ""), tts_model=getattr(self.tts, "model", ""),
            labels=dict(config.labels))
