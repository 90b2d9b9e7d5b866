"""Faults on demand for the stand-in providers: how tests make a provider crash or hang."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


class StandInFault(RuntimeError):
    """The crash a stand-in provider was told to have (deliberately not a ProviderError)."""


@dataclass(frozen=True)
class Fault:
    word: str  # "" = never
    kind: str  # "raise" | "hang"

    async def check(self, text: str) -> None:
        """Crash or hang if `text` holds the fault word; else return at once."""
        if not self.word or self.word not in text.split():
            return
        if self.kind == "hang":
            await asyncio.Event().wait()  # until cancelled
        raise StandInFault(f"stand-in fault on {self.word!r}")
