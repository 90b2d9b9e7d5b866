"""`setting()`: one server setting declared in one place, with its range, unit and one-line help.

Every server setting, engine limits included, is a field of a pydantic model
declared with `setting()`. The flag (`--field-name`), the environment variable
(`PARLEY_FIELD_NAME`), the `--help` line and the README row all derive from
that one declaration (see `parley.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import annotated_types
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo


class Limits(BaseModel):
    """A group of settings: immutable, unknown names refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def setting(default: Any, help: str, *, unit: str = "", ge: float | None = None, gt: float | None = None,
            le: float | None = None) -> Any:
    """A field of a settings model: its default, its one-line help, its unit and bounds."""
    return Field(default, description=help, ge=ge, gt=gt, le=le, json_schema_extra={"unit": unit} if unit else None)


@dataclass(frozen=True)
class Bounds:
    """What a field's declaration allows, for help texts."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def describe(self) -> str:
        if self.ge is not None and self.le is not None:
            return f"{_number(self.ge)}..{_number(self.le)}"
        parts = [f"{op} {_number(v)}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le)) if v is not None]
        return ", ".join(parts)


def bounds_of(info: FieldInfo) -> Bounds:
    found: dict[str, float] = {}
    for item in info.metadata:
        for name in ("ge", "gt", "le"):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                found[name] = getattr(item, name)
    return Bounds(**found)


def unit_of(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    return str(extra.get("unit", "")) if isinstance(extra, dict) else ""


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
