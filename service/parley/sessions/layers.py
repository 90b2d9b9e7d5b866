"""Background and thinking audio, with the rules between the two.

- Background with `override_thinking` stops a playing thinking sound and
  resumes it when the background stops.
- Thinking does not start over a playing background unless asked to layer;
  when it is held back by an overriding background it starts when the
  background stops.
- Thinking started automatically (while the model thinks) is stopped
  automatically; thinking started by a call is stopped only by a call.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from parley.audio.layers import (
    BUILTIN_SOUNDS,
    DEFAULT_MAX_BYTES,
    Clip,
    is_builtin_source,
    is_known_builtin,
    load_clip,
)
from parley.audio.mixer import DEFAULT_LAYER_GAIN, LayerName, Mixer
from parley.errors import InvalidArgument
from parley.providers.workers import Workers
from parley.sessions.config import AudioLayerConfig, LayerMode, SessionConfig, check_fade, check_layer
from parley.sessions.sources import resolve_source

BACKGROUND: LayerName = "background"
THINKING: LayerName = "thinking"


@dataclass(frozen=True)
class LayerStatus:
    playing: bool
    source: str = ""
    gain: float = 0.0


class Layers:
    def __init__(self, mixer: Mixer, config: SessionConfig, workers: Workers, *, clip_cache: int = 4,
                 audio_dir: str = "", max_file_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._audio_dir = audio_dir
        self._max_file_bytes = max_file_bytes
        self._mixer = mixer
        self._config = config
        self._workers = workers
        self._clips: OrderedDict[tuple[str, str, bool], Clip] = OrderedDict()
        self._clip_cache = clip_cache
        self._playing: dict[str, AudioLayerConfig] = {}
        self._held_thinking: AudioLayerConfig | None = None
        self._override = False
        self._auto_thinking = False
        mixer.set_ducking(config.background_audio.duck_db)

    async def check_configured(self) -> None:
        """Every layer the config names is allowed, readable and decodes, whether or not it plays at start.

        A file is decoded now (and kept for its first play); an error names the
        config field. Built-in sounds are known good and decode on first play.
        """
        for name, layer in ((BACKGROUND, self._config.background_audio.layer),
                            (THINKING, self._config.thinking_audio.layer)):
            field = _config_field(name)
            if is_builtin_source(layer.source):
                if not is_known_builtin(layer.source):
                    raise InvalidArgument(field, f"unknown built-in sound {layer.source[:80]!r}; known: "
                                                 f"{', '.join('builtin:' + n for n in sorted(BUILTIN_SOUNDS))}")
                continue
            await self._load(name, layer, field)

    # -- background ----------------------------------------------------------------

    async def play_background(self, layer: AudioLayerConfig | None, override_thinking: bool) -> LayerStatus:
        field = "layer.source" if layer else _config_field(BACKGROUND)
        layer = layer or self._config.background_audio.layer
        check_layer(layer, "layer")
        clip = await self._load(BACKGROUND, layer, field)
        self._play(BACKGROUND, layer, clip)
        self._override = override_thinking
        if override_thinking and THINKING in self._playing:
            self._held_thinking = self._playing.pop(THINKING)
            self._mixer.stop_layer(THINKING, self._held_thinking.fade_out_ms)
        return self.background_status()

    def stop_background(self, fade_ms: int = 0) -> LayerStatus:
        check_fade(fade_ms, "fade_ms")
        layer = self._playing.pop(BACKGROUND, None)
        if layer is not None:
            self._mixer.stop_layer(BACKGROUND, fade_ms or layer.fade_out_ms)
        self._override = False
        held, self._held_thinking = self._held_thinking, None
        if held is not None:
            clip = self._cached(THINKING, held)
            if clip is not None:
                self._play(THINKING, held, clip)
        return self.background_status()

    # -- thinking -------------------------------------------------------------------

    async def start_thinking(self, layer: AudioLayerConfig | None, layer_over_background: bool, *,
                             auto: bool = False) -> LayerStatus:
        field = "layer.source" if layer else _config_field(THINKING)
        layer = layer or self._config.thinking_audio.layer
        check_layer(layer, "layer")
        if auto and THINKING in self._playing:
            return self.thinking_status()  # started by a call; not ours to manage
        clip = await self._load(THINKING, layer, field)
        if BACKGROUND in self._playing and (self._override or not layer_over_background):
            if self._override:
                self._held_thinking = layer
            return self.thinking_status()
        self._auto_thinking = auto
        self._play(THINKING, layer, clip)
        return self.thinking_status()

    def stop_thinking(self, fade_ms: int = 0) -> LayerStatus:
        check_fade(fade_ms, "fade_ms")
        self._held_thinking = None
        self._auto_thinking = False
        layer = self._playing.pop(THINKING, None)
        if layer is not None:
            self._mixer.stop_layer(THINKING, fade_ms or layer.fade_out_ms)
        return self.thinking_status()

    def stop_auto_thinking(self) -> None:
        if self._auto_thinking:
            self.stop_thinking()

    # -- status -----------------------------------------------------------------------

    def background_status(self) -> LayerStatus:
        return self._status(BACKGROUND)

    def thinking_status(self) -> LayerStatus:
        return self._status(THINKING)

    def close(self) -> None:
        self._clips.clear()
        self._playing.clear()
        self._held_thinking = None

    # -- internals --------------------------------------------------------------------

    def _status(self, name: LayerName) -> LayerStatus:
        layer = self._playing.get(name)
        if layer is None or not self._mixer.layer_playing(name):
            return LayerStatus(False)
        return LayerStatus(True, layer.source or f"builtin:{'ambience' if name == BACKGROUND else 'thinking'}",
                           _gain(name, layer))

    def _play(self, name: LayerName, layer: AudioLayerConfig, clip: Clip) -> None:
        self._playing[name] = layer
        self._mixer.play_layer(name, clip, gain=_gain(name, layer), looping=layer.looping,
                               mode="playback" if layer.mode is LayerMode.PLAYBACK else "mixing",
                               fade_in_ms=layer.fade_in_ms, fade_out_ms=layer.fade_out_ms)

    def _cached(self, name: str, layer: AudioLayerConfig) -> Clip | None:
        return self._clips.get((name, layer.source, layer.looping))

    async def _load(self, name: str, layer: AudioLayerConfig, field: str) -> Clip:
        """The layer's clip, decoded on a worker the first time; errors name `field`."""
        key = (name, layer.source, layer.looping)
        clip = self._clips.get(key)
        if clip is None:
            path = resolve_source(layer.source, self._audio_dir, field, self._max_file_bytes)
            try:
                clip = await self._workers.run(
                    load_clip, path, self._mixer.sample_rate, 1, layer=name, looping=layer.looping,
                    field=field, max_bytes=self._max_file_bytes,
                )
            except InvalidArgument as exc:  # say it with the client's name for the file, not the server's path
                raise InvalidArgument(exc.field, exc.description.replace(path, layer.source)) from None
            self._clips[key] = clip
            while len(self._clips) > self._clip_cache:
                self._clips.popitem(last=False)
        return clip


def _config_field(name: str) -> str:
    return f"config.{name}_audio.layer.source"


def _gain(name: str, layer: AudioLayerConfig) -> float:
    return layer.gain if layer.gain is not None else DEFAULT_LAYER_GAIN[name]
