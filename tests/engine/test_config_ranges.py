"""Session config ranges are declared on the fields; validation names the field of any value outside them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import pytest

from parley.errors import InvalidArgument
from parley.sessions.config import OneOf, Range, SessionConfig, validate


def declared(config: Any, path: str = "config") -> Iterator[tuple[str, list[str], Range | OneOf]]:
    """(field path, attribute chain, rule) of every declared field of a (nested) config."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if "allowed" in f.metadata:
            yield f"{path}.{f.name}", [f.name], f.metadata["allowed"]
        if dataclasses.is_dataclass(value):
            for sub_path, chain, rule in declared(value, f"{path}.{f.name}"):
                yield sub_path, [f.name, *chain], rule


def with_value(config: Any, chain: list[str], value: Any) -> Any:
    if len(chain) == 1:
        return dataclasses.replace(config, **{chain[0]: value})
    return dataclasses.replace(config, **{chain[0]: with_value(getattr(config, chain[0]), chain[1:], value)})


def outside(rule: Range | OneOf) -> list[Any]:
    if isinstance(rule, OneOf):
        return [max(rule.choices) + 1, -1]
    return [rule.high * 2 + 1, rule.low - 1, math.nan, math.inf] + ([rule.low] if rule.low_open else [])


CASES = [(path, chain, bad) for path, chain, rule in declared(SessionConfig()) for bad in outside(rule)]


def test_every_range_is_declared_once_on_its_field() -> None:
    paths = [path for path, _, _ in declared(SessionConfig())]
    assert len(paths) == len(set(paths)) and len(paths) >= 15
    validate(SessionConfig())  # the defaults are inside their own ranges


@pytest.mark.parametrize(("path", "chain", "bad"), CASES, ids=[f"{p}={b!r}" for p, _, b in CASES])
def test_a_value_outside_its_range_names_the_field(path: str, chain: list[str], bad: Any) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate(with_value(SessionConfig(), chain, bad))
    assert err.value.field == path
