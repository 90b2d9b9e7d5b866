"""Server settings: every one declared once, read from flags and `PARLEY_*` environment variables.

`ServerSettings` holds the server's own settings and nests the engine's
limits (`parley.sessions.limits`). Each setting, nested or not, has one flat
name: the flag is `--name-with-dashes`, the variable `PARLEY_NAME`, and the
keyword `ServerSettings(name=...)` or `settings.replace(name=...)` sets it
wherever it is nested. A flag wins over the variable, the variable over the
default. A bad value raises `SettingError`, one line naming the flag or the
variable it came from.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from parley.declare import bounds_of, setting, unit_of
from parley.providers.workers import DEFAULT_NICE
from parley.sessions.limits import RegistryLimits
from parley.sessions.names import check_replica_id

ENV_PREFIX = "PARLEY_"


class StartupError(Exception):
    """The server cannot start as configured; the message is one line naming the setting or address."""


class SettingError(StartupError, ValueError):
    """A setting has a value it cannot have."""


class ServerSettings(BaseSettings):
    """Everything the server process is configured with (see the module docstring for names)."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    host: str = setting("127.0.0.1", "address to bind")
    port: int = setting(50051, "port (0 picks a free one; the `serving` log line names it)", ge=0, le=65_535)
    allow_reuse_port: bool = setting(
        False, "let other processes bind the same port and share its calls (SO_REUSEPORT); off, a port in use "
               "is an error")
    max_message_bytes: int = setting(4 * 1024 * 1024, "largest gRPC message, each way", unit="bytes", ge=4096,
                                     le=2**30)
    keepalive_time: float = setting(30.0, "seconds between HTTP/2 keepalive pings", unit="seconds", gt=0,
                                    le=86_400)
    keepalive_timeout: float = setting(10.0, "seconds to wait for a ping's answer", unit="seconds", gt=0, le=3600)
    shutdown_grace: float = setting(5.0, "seconds in-flight calls get once the server stops", unit="seconds",
                                    ge=0, le=3600)
    provider_threads: int = setting(0, "threads for STT/TTS/LLM work (0: twice the cores, 2..8)", ge=0, le=256)
    provider_nice: int = setting(
        DEFAULT_NICE, "how much lower those threads' (and the model processes') scheduling priority is "
                      "than the audio loop's (nice, on Linux; 0: the same); under load the calls' audio stays on "
                      "time and answers come later", ge=0, le=19)
    provider_idle_policy: bool = setting(
        True, "also run those threads and processes under Linux's SCHED_IDLE policy: the audio loop takes a core "
              "from them the moment it wakes (`--provider-idle-policy false`: the nice value alone)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = setting(
        "INFO", "JSON-lines logs on stderr")
    # who may call, and how often
    auth_tokens_file: str = setting(
        "", "file of `token principal` lines or a JSON object; turns bearer auth on")
    auth_tokens: str = setting("", "the same, as text")
    max_caller_requests_per_second: float = setting(
        500.0, "calls per second per caller, every call counted (token bucket; the caller is the principal, or "
               "the peer address without auth; 0: unlimited)", unit="per second", ge=0, le=1_000_000)
    caller_request_burst: int = setting(1000, "burst of that bucket", unit="calls", ge=1, le=1_000_000)
    # transport security
    tls_cert: str = setting("", "server certificate (PEM); with `--tls-key` serves TLS")
    tls_key: str = setting("", "server key (PEM)")
    tls_client_ca: str = setting("", "CA bundle; requires client certificates (mTLS)")
    allow_insecure: bool = setting(False, "allow plaintext on a non-loopback address")
    # telemetry over OTLP; empty: the standard OTEL_* variables decide, and with none set telemetry is off
    otel_endpoint: str = setting(
        "", "OTLP endpoint; empty: the standard `OTEL_EXPORTER_OTLP_*` variables decide (none set: telemetry off)")
    otel_protocol: Literal["", "grpc", "http/protobuf"] = setting("", "`grpc` or `http/protobuf`")
    otel_service_name: str = setting(
        "", "service name on traces and metrics (else `OTEL_SERVICE_NAME`)")
    warm_up: bool = setting(
        True, "load the default models before serving (about 1 s), not on the first call (`--warm-up false` to "
              "skip)")
    # scale-out (README, "Scaling"): worker processes, the replica id in session names, drain
    workers: int = setting(
        0, "run N server processes on ports `--port`+i (and `--start-port`+i), restarting any that crashes",
        ge=0, le=1024)
    replica_id: str = setting(
        "", "this process's id among replicas behind a proxy; its session names become `sessions/{replica}-{hex}` "
            "(workers: `{id or w}-{i}`)")
    start_port: int = setting(
        0, "a second port, where a proxy sends Start; closed while the server drains, and while every stream slot "
        "is taken (`--max-streams`) (0: none)", ge=0, le=65_535)
    drain_timeout: float = setting(
        30.0, "after SIGTERM, seconds live sessions may go on (Start refused, health NOT_SERVING) before they are "
              "closed; SIGINT stops at once", unit="seconds", ge=0, le=86_400)
    registry: RegistryLimits = RegistryLimits()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _FlatEnvironment(settings_cls)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_names(cls, data: Any) -> Any:
        """`max_text_chars=...` lands in `registry.session.max_text_chars` (a flat name wins over a nested one)."""
        return nest(data) if isinstance(data, dict) else data

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("replica_id")
    @classmethod
    def _usable_in_names(cls, value: str) -> str:
        return check_replica_id(value)

    @field_validator("host")
    @classmethod
    def _host_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def replace(self, **changes: Any) -> ServerSettings:
        """A copy with some settings changed, by their flat names; checked like the original."""
        return type(self).model_validate(self.model_dump() | changes)


# -- the leaves: one flat name per setting -------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One setting: where it sits in the model, its declaration, its flag and variable."""

    path: tuple[str, ...]
    info: FieldInfo

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def is_bool(self) -> bool:
        return self.info.annotation is bool

    @property
    def default(self) -> Any:
        return self.info.default

    @property
    def help(self) -> str:
        return self.info.description or ""

    @property
    def metavar(self) -> str:
        unit = unit_of(self.info)
        if self.is_bool:
            return "BOOL"
        if unit and " " not in unit:
            return unit.upper()
        if getattr(self.info.annotation, "__args__", None):  # a Literal: named by what it picks
            return self.name.rsplit("_", 1)[-1].upper()
        annotation = self.info.annotation
        return "N" if annotation is int else "NUMBER" if annotation is float else "TEXT"

    def describe(self) -> str:
        """The --help line: what it does, then its allowed values, unit, default and variable."""
        facts = []
        allowed = getattr(self.info.annotation, "__args__", None)
        if allowed and self.info.annotation is not bool:
            facts.append(" | ".join(repr(a) if a == "" else str(a) for a in allowed))
        bounds = bounds_of(self.info).describe()
        unit = unit_of(self.info)
        if bounds or unit:
            facts.append(" ".join(part for part in (bounds, unit) if part))
        facts.append(f"default {self.default!r}" if self.default == "" else f"default {self.default}")
        facts.append(f"env {self.env}")
        return f"{self.help} [{'; '.join(facts)}]"


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[Leaf]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, (*prefix, name))
        else:
            yield Leaf((*prefix, name), info)


LEAVES: tuple[Leaf, ...] = tuple(_leaves(ServerSettings))
_PATHS = {leaf.name: leaf.path for leaf in LEAVES}
assert len(_PATHS) == len(LEAVES), "every setting needs a name of its own"


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Settings given by flat name (and nested dicts) -> the nested shape of ServerSettings."""
    out: dict[str, Any] = {}
    later: list[tuple[tuple[str, ...], Any]] = []
    for key, value in flat.items():
        path = _PATHS.get(key)
        if path is None or len(path) == 1:
            out[key] = value.model_dump() if isinstance(value, BaseModel) else value
        else:
            later.append((path, value))
    for path, value in later:
        node = out
        for part in path[:-1]:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, Mapping) else {}
            node = child
        node[path[-1]] = value
    return out


class _FlatEnvironment(PydanticBaseSettingsSource):
    """Reads `PARLEY_<NAME>` for every setting, nested ones included."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every leaf at once

    def __call__(self) -> dict[str, Any]:
        return nest({leaf.name: os.environ[leaf.env] for leaf in LEAVES if leaf.env in os.environ})


# -- the command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; a flag not given leaves the setting to its variable or default."""
    for leaf in LEAVES:
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if leaf.is_bool else {}
        parser.add_argument(leaf.flag, dest=leaf.name, default=argparse.SUPPRESS, metavar=leaf.metavar,
                            help=leaf.describe().replace("%", "%%"), **extra)


def from_arguments(args: argparse.Namespace) -> ServerSettings:
    """The settings from parsed flags and the environment; SettingError names the bad flag or variable."""
    given = {leaf.name: getattr(args, leaf.name) for leaf in LEAVES if hasattr(args, leaf.name)}
    try:
        return ServerSettings(**given)
    except ValidationError as exc:
        raise SettingError(_first_error(exc, given, os.environ)) from None


def _first_error(exc: ValidationError, given: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    error = exc.errors()[0]
    name = next((str(part) for part in reversed(error["loc"]) if str(part) in _PATHS), "")
    leaf = next((leaf for leaf in LEAVES if leaf.name == name), None)
    if leaf is None:
        return f"bad settings: {error['msg']}"
    if name in given:
        source, value = leaf.flag, given[name]
    else:
        source, value = leaf.env, environ.get(leaf.env, leaf.default)
    return f"{source}: {_plain(error)}, got {str(value)[:80]!r}"


def _plain(error: Any) -> str:
    """pydantic's message without its own prefixes ("Value error, ...")."""
    return str(error["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
