"""Per-process cache of loaded models, with exclusive access per model.

A loaded model is read-only state that every session may share, but most
inference engines keep per-call scratch state (KV cache, decoder state), so
one call runs at a time per model. Waiting for the model happens on the event
loop (an asyncio.Lock), never by parking a pool thread.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

M = TypeVar("M")
P = TypeVar("P")


class PerLoop(Generic[P]):
    """One asyncio primitive (a lock, a semaphore) per event loop: each belongs to the loop it was made on."""

    def __init__(self, make: Callable[[], P]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, P] = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()

    def get(self) -> P:
        """The running loop's."""
        loop = asyncio.get_running_loop()
        with self._guard:
            made = self._made.get(loop)
            if made is None:
                made = self._made[loop] = self._make()
            return made


class SharedModel(Generic[M]):
    """A model loaded once, then used by one caller at a time."""

    def __init__(self, model: M) -> None:
        self.model = model
        self._locks = PerLoop(asyncio.Lock)

    def lock(self) -> asyncio.Lock:
        """The exclusive-use lock for the running loop."""
        return self._locks.get()


class ModelCache:
    """Loads each model key once per process, thread-safely."""

    def __init__(self) -> None:
        self._models: dict[Hashable, SharedModel[Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], M]) -> SharedModel[M]:
        with self._lock:
            shared = self._models.get(key)
            if shared is None:
                shared = self._models[key] = SharedModel(load())
            return cast(SharedModel[M], shared)

    def close(self) -> None:
        """Free the models that hold native memory (llama.cpp), while the interpreter still can."""
        with self._lock:
            models, self._models = list(self._models.values()), {}
        for shared in models:
            close = getattr(shared.model, "close", None)
            if callable(close):
                close()


MODELS = ModelCache()
"""The process's loaded models (read-only weights shared by all sessions)."""
atexit.register(MODELS.close)
