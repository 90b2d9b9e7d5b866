"""A session config with every default filled in: what the session runs with, and what Get shows.

Provider names left empty become the stage's default, their options gain
every default (and what a provider takes from its environment, such as the
OpenAI-compatible endpoint's model), layers name their built-in sound and
gain. Errors name the config field, as validation's do.
"""

from __future__ import annotations

import dataclasses

from parley.audio.layers import LAYER_DEFAULT_SOUND
from parley.audio.mixer import DEFAULT_LAYER_GAIN
from parley.providers import registry as providers
from parley.sessions.config import AudioLayerConfig, ProviderChoice, ProvidersConfig, SessionConfig


def with_defaults(config: SessionConfig) -> SessionConfig:
    chosen = {}
    for stage in providers.STAGES:
        choice: ProviderChoice = getattr(config.providers, stage)
        name, options = providers.resolve(stage, choice.name, choice.options)
        chosen[stage] = ProviderChoice(name, options)
    background, thinking = config.background_audio, config.thinking_audio
    return dataclasses.replace(
        config,
        providers=ProvidersConfig(**chosen),
        background_audio=dataclasses.replace(background, layer=_layer("background", background.layer)),
        thinking_audio=dataclasses.replace(thinking, layer=_layer("thinking", thinking.layer)),
    )


def _layer(name: str, layer: AudioLayerConfig) -> AudioLayerConfig:
    return dataclasses.replace(
        layer,
        source=layer.source or f"builtin:{LAYER_DEFAULT_SOUND[name]}",
        gain=DEFAULT_LAYER_GAIN[name] if layer.gain is None else layer.gain,
    )
