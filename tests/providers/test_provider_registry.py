from __future__ import annotations

import pytest

from parley.errors import InvalidArgument
from parley.providers import registry
from parley.providers.base import LLM, STT, TTS, VAD, TurnDetector
from parley.providers.workers import Workers

INTERFACES = {"tts": TTS, "stt": STT, "vad": VAD, "turn_detector": TurnDetector, "llm": LLM}


def test_defaults_are_the_offline_set() -> None:
    assert {stage: registry.default_name(stage) for stage in registry.STAGES} == {
        "stt": "whisper",
        "tts": "espeak",
        "llm": "local",
        "vad": "webrtc",
        "turn_detector": "vad",
    }


@pytest.mark.parametrize("stage", ["tts", "stt", "vad", "turn_detector"])
def test_empty_name_builds_the_default(stage: str, workers: Workers) -> None:
    provider = registry.build(stage, "", {}, workers=workers)
    assert isinstance(provider, INTERFACES[stage])
    assert provider.name == registry.default_name(stage)


def test_unknown_name_names_the_field(workers: Workers) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.build("tts", "nope", {}, workers=workers)
    assert err.value.field == "config.providers.tts.name"
    assert "espeak" in err.value.description


def test_unknown_option_names_the_option(workers: Workers) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.build("llm", "echo", {"template": "hi", "bogus": 1}, workers=workers)
    assert err.value.field == "config.providers.llm.options.bogus"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"rate": "fast"}, "config.providers.tts.options.rate"),
        ({"rate": 160.5}, "config.providers.tts.options.rate"),
        ({"rate": 5000}, "config.providers.tts.options.rate"),
        ({"pitch": True}, "config.providers.tts.options.pitch"),
    ],
)
def test_bad_option_values_name_the_option(options: dict, field: str, workers: Workers) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.build("tts", "espeak", options, workers=workers)
    assert err.value.field == field


def test_struct_numbers_arrive_as_floats_and_are_accepted(workers: Workers) -> None:
    tts = registry.build("tts", "espeak", {"rate": 200.0, "pitch": 40.0}, workers=workers)
    assert (tts.rate, tts.pitch) == (200, 40)


def test_list_option_items_are_checked(workers: Workers) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.build("stt", "scripted", {"transcripts": ["ok", 3]}, workers=workers)
    assert err.value.field == "config.providers.stt.options.transcripts"


def test_unknown_stage() -> None:
    with pytest.raises(InvalidArgument):
        registry.names("speaker")


def test_every_stage_lists_its_default() -> None:
    for stage in registry.STAGES:
        assert registry.default_name(stage) in registry.names(stage)


@pytest.mark.parametrize("stage", ["tts", "stt", "llm"])
async def test_defaults_warm_up_from_installed_packages(stage: str, workers: Workers) -> None:
    provider = registry.build(stage, "", {}, workers=workers)
    await provider.warm_up()
    await provider.warm_up()
