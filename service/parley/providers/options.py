"""Declared provider options, checked when a session starts.

Options arrive as a plain dict converted from a protobuf Struct, so every
number is a float; an integer option accepts a float with no fraction.
Errors name the field, e.g. "config.providers.tts.options.rate".
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parley.errors import InvalidArgument


@dataclass(frozen=True)
class Opt:
    """One option: its type, default and allowed range or choices."""

    type: builtins.type
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: Sequence[Any] = ()
    items: builtins.type | None = None
    """For a list option, the type every element must have."""
    help: str = ""
    secret: bool = False
    """Never shown back to clients (Get shows "<redacted>")."""


Schema = Mapping[str, Opt]


REDACTED = "<redacted>"


def validate(schema: Schema, options: Mapping[str, Any], field: str) -> dict[str, Any]:
    """Options with defaults filled in; raises InvalidArgument naming `field.key`.

    An option may be left out (it takes its default) but not sent as null.
    """
    for key, value in options.items():
        if key not in schema:
            known = ", ".join(sorted(schema)) or "none"
            raise InvalidArgument(f"{field}.{key}", f"unknown option (known: {known})")
        if value is None:
            raise InvalidArgument(f"{field}.{key}", "must not be null; leave the option out for its default")
    out: dict[str, Any] = {}
    for key, opt in schema.items():
        value = options.get(key, opt.default)
        out[key] = value if value is None else _check(opt, value, f"{field}.{key}")
    return out


def shown(schema: Schema, options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as a client may see them: unset ones left out, secrets redacted."""
    return {key: REDACTED if key in schema and schema[key].secret and value else value
            for key, value in options.items() if value is not None}


def _check(opt: Opt, value: Any, field: str) -> Any:
    if opt.type is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgument(field, "must be an integer")
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise InvalidArgument(field, "must be an integer")
        value = int(value)
    elif opt.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidArgument(field, "must be a number")
        value = float(value)
    elif not isinstance(value, opt.type):
        raise InvalidArgument(field, f"must be a {opt.type.__name__}")
    elif opt.items is not None and isinstance(value, list) and not all(isinstance(i, opt.items) for i in value):
        raise InvalidArgument(field, f"must be a list of {opt.items.__name__}")
    if opt.min is not None and value < opt.min:
        raise InvalidArgument(field, f"must be >= {opt.min:g}")
    if opt.max is not None and value > opt.max:
        raise InvalidArgument(field, f"must be <= {opt.max:g}")
    if opt.choices and value not in opt.choices:
        raise InvalidArgument(field, "must be one of " + ", ".join(map(str, opt.choices)))
    return value
