"""A session's configuration as plain data, with defaults and validation.

Field names follow the contract so that a validation error can name the
request field ("config.interruption.min_words") without any mapping table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any

from parley.audio.encodings import Encoding, check_encoding
from parley.chat import TOOL_NAME, ToolSpec
from parley.errors import InvalidArgument

OUTPUT_RATES = (8000, 16000, 24000, 48000)
FRAME_SIZES_MS = (20, 40, 60)
MAX_GAIN = 2.0
MAX_DUCK_DB = 40.0
MAX_FADE_MS = 10_000


# -- what a field allows, declared next to it --------------------------------------------------


@dataclass(frozen=True)
class Range:
    """A number in [low, high] (low excluded when `low_open`); None passes when `optional`."""

    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    optional: bool = False

    def check(self, value: Any, path: str) -> None:
        if value is None and self.optional:
            return
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or value > self.high or value < self.low or (self.low_open and value == self.low):
            raise InvalidArgument(path, f"must be {self.describe()}, got {value!r}")

    def describe(self) -> str:
        low = f"{self.low:g}" if not self.low_open else f"over {self.low:g} and up to "
        return f"{low}{'' if self.low_open else '..'}{self.high:g}{' ' + self.unit if self.unit else ''}"


@dataclass(frozen=True)
class OneOf:
    choices: tuple[Any, ...]

    def check(self, value: Any, path: str) -> None:
        if value not in self.choices:
            raise InvalidArgument(path, f"must be one of {self.choices}, got {value!r}")


def allowed(default: Any, rule: Range | OneOf) -> Any:
    """A config field with its default and what it allows; `validate` checks every such field."""
    return field(default=default, metadata={"allowed": rule})


def seconds(high: float, *, positive: bool = False, optional: bool = False) -> Range:
    return Range(0.0, high, "seconds", low_open=positive, optional=optional)


FADE = Range(0, MAX_FADE_MS, "ms")
GAIN = Range(0.0, MAX_GAIN, "(linear gain)", optional=True)


class InterruptionMode(Enum):
    HYBRID = 1
    VAD_ONLY = 2
    STT_ONLY = 3
    DISABLED = 4


class LayerMode(Enum):
    MIXING = 1
    PLAYBACK = 2


@dataclass(frozen=True)
class ProviderChoice:
    """A provider by name ("" = the stage's default) with its options."""

    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProvidersConfig:
    stt: ProviderChoice = ProviderChoice()
    tts: ProviderChoice = ProviderChoice()
    llm: ProviderChoice = ProviderChoice()
    vad: ProviderChoice = ProviderChoice()
    turn_detector: ProviderChoice = ProviderChoice()


@dataclass(frozen=True)
class InterruptionConfig:
    mode: InterruptionMode = InterruptionMode.HYBRID
    min_duration_seconds: float = allowed(0.5, seconds(10))
    min_words: int = allowed(2, Range(0, 100, "words"))
    false_interruption_pause_seconds: float = allowed(1.0, seconds(30))
    resume_on_false_interruption: bool = True


@dataclass(frozen=True)
class TurnDetectionConfig:
    min_endpointing_delay_seconds: float = allowed(0.5, seconds(30))
    max_endpointing_delay_seconds: float = allowed(3.0, seconds(60))


@dataclass(frozen=True)
class AgentAction:
    """Exactly one of say_text / reply_instructions is set."""

    say_text: str | None = None
    reply_instructions: str | None = None


@dataclass(frozen=True)
class WakeUpConfig:
    after_seconds: float = allowed(0.0, seconds(86_400))
    action: AgentAction | None = None


@dataclass(frozen=True)
class AudioLayerConfig:
    source: str = ""
    gain: float | None = allowed(None, GAIN)  # None: the layer's default
    looping: bool = True
    mode: LayerMode = LayerMode.MIXING
    fade_in_ms: int = allowed(100, FADE)
    fade_out_ms: int = allowed(400, FADE)


@dataclass(frozen=True)
class BackgroundAudioConfig:
    layer: AudioLayerConfig = AudioLayerConfig()
    play_on_start: bool = False
    override_thinking: bool = False
    duck_db: float = allowed(0.0, Range(0.0, MAX_DUCK_DB, "dB"))


@dataclass(frozen=True)
class ThinkingAudioConfig:
    layer: AudioLayerConfig = AudioLayerConfig()
    auto: bool = False
    layer_over_background: bool = False


@dataclass(frozen=True)
class McpStdioCommand:
    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class McpServerConfig:
    name: str
    url: str = ""
    stdio: McpStdioCommand | None = None
    headers: dict[str, str] = field(default_factory=dict)
    optional: bool = False
    call_timeout_seconds: float = allowed(10.0, seconds(600, positive=True))


@dataclass(frozen=True)
class AudioFormat:
    sample_rate_hz: int = field(metadata={"allowed": OneOf(OUTPUT_RATES)})
    channels: int = allowed(1, OneOf((1, 2)))
    frame_ms: int = allowed(20, OneOf(FRAME_SIZES_MS))
    encoding: Encoding = Encoding.LINEAR16


@dataclass(frozen=True)
class RecordingConfig:
    enabled: bool = False


@dataclass(frozen=True)
class SessionConfig:
    instructions: str = ""
    providers: ProvidersConfig = ProvidersConfig()
    voice: str = ""
    interruption: InterruptionConfig = InterruptionConfig()
    turn_detection: TurnDetectionConfig = TurnDetectionConfig()
    wake_up: WakeUpConfig = WakeUpConfig()
    background_audio: BackgroundAudioConfig = BackgroundAudioConfig()
    thinking_audio: ThinkingAudioConfig = ThinkingAudioConfig()
    tools: tuple[ToolSpec, ...] = ()
    tool_timeout_seconds: float = allowed(30.0, seconds(3600, positive=True))
    mcp_servers: tuple[McpServerConfig, ...] = ()
    output_format: AudioFormat = AudioFormat(sample_rate_hz=24000)
    idle_ttl_seconds: float | None = allowed(None, seconds(86_400, positive=True, optional=True))  # None: the server's
    labels: dict[str, str] = field(default_factory=dict)
    greeting: AgentAction | None = None
    reattach_window_seconds: float = allowed(0.0, seconds(3600))
    auto_reply: bool = True
    recording: RecordingConfig = RecordingConfig()


def check(config: Any, path: str) -> None:
    """Check every declared field of a config dataclass, nested ones and lists of them included."""
    for f in fields(config):
        value = getattr(config, f.name)
        rule = f.metadata.get("allowed")
        if rule is not None:
            rule.check(value, f"{path}.{f.name}")
        if is_dataclass(value):
            check(value, f"{path}.{f.name}")
        elif isinstance(value, tuple):
            for n, item in enumerate(value):
                if is_dataclass(item):
                    check(item, f"{path}.{f.name}[{n}]")


def check_seconds(value: float, path: str, *, maximum: float = 86_400.0, allow_zero: bool = True) -> None:
    """A duration of a request (not of the config): no NaN, infinity, negative or absurd value."""
    seconds(maximum, positive=not allow_zero).check(value, path)


def check_fade(value: int, path: str) -> None:
    FADE.check(value, path)


def check_layer(layer: AudioLayerConfig, path: str) -> None:
    check(layer, path)


def check_output_format(fmt: AudioFormat, path: str) -> None:
    check(fmt, path)
    check_encoding(fmt.encoding, fmt.sample_rate_hz, fmt.channels, path)


def check_action(action: AgentAction | None, path: str) -> None:
    if action is None:
        return
    text = action.say_text if action.say_text is not None else action.reply_instructions
    if text is None:
        raise InvalidArgument(path, "set say_text or reply_instructions")
    if action.say_text is not None and not action.say_text.strip():
        raise InvalidArgument(f"{path}.say_text", "must not be empty")


def validate(config: SessionConfig, prefix: str = "config") -> None:
    """Raise InvalidArgument naming the first wrong field of a session config.

    Ranges are declared on the fields (`allowed`); what spans several fields is checked here.
    """
    check(config, prefix)
    fmt = config.output_format
    check_encoding(fmt.encoding, fmt.sample_rate_hz, fmt.channels, f"{prefix}.output_format")
    t = config.turn_detection
    if t.max_endpointing_delay_seconds < t.min_endpointing_delay_seconds:
        raise InvalidArgument(
            f"{prefix}.turn_detection.max_endpointing_delay_seconds",
            "must not be less than min_endpointing_delay_seconds",
        )
    if config.wake_up.after_seconds > 0:
        if config.wake_up.action is None:
            raise InvalidArgument(f"{prefix}.wake_up.action", "is required when after_seconds > 0")
        check_action(config.wake_up.action, f"{prefix}.wake_up.action")
    names: set[str] = set()
    for n, tool in enumerate(config.tools):
        if not TOOL_NAME.match(tool.name):
            raise InvalidArgument(f"{prefix}.tools[{n}].name", "must be 1-64 letters, digits, '_' or '-'")
        if tool.name in names:
            raise InvalidArgument(f"{prefix}.tools[{n}].name", f"duplicate tool name {tool.name!r}")
        names.add(tool.name)
    servers: set[str] = set()
    for n, server in enumerate(config.mcp_servers):
        if not server.name or server.name in servers:
            raise InvalidArgument(f"{prefix}.mcp_servers[{n}].name", "must be non-empty and unique")
        servers.add(server.name)
        if bool(server.url) == (server.stdio is not None):
            raise InvalidArgument(f"{prefix}.mcp_servers[{n}]", "set exactly one of url or stdio")
        if server.url and not server.url.startswith(("http://", "https://")):
            raise InvalidArgument(f"{prefix}.mcp_servers[{n}].url", "must be an http(s) URL")
    check_action(config.greeting, f"{prefix}.greeting")
    for key in config.labels:
        if not key or len(key) > 63:
            raise InvalidArgument(f"{prefix}.labels", f"label keys must be 1-63 characters, got {key!r}")


def check_text(text: str, field: str, *, required: bool, limit: int) -> None:
    """A text a client sends to be spoken or kept (Say, Reply, a tool result): bounded, printable."""
    if required and not text.strip():
        raise InvalidArgument(field, "must not be empty")
    if len(text) > limit:
        raise InvalidArgument(field, f"is {len(text)} characters; the limit (max_text_chars) is {limit}")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise InvalidArgument(field, "contains control characters")
