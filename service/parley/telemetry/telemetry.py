"""The telemetry of one server (or one embedding process): its tracer, meter and exporters.

Built from the OTLP settings (`Telemetry.from_settings`) or handed the
embedder's own providers (`Telemetry(tracer_provider=..., meter_provider=...)`).
Nothing here touches OpenTelemetry's global providers: every session's spans
go through the tracer of the Telemetry its registry was given.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace

from parley.sessions.observer import NO_OBSERVER, SessionDescription, SessionObserver
from parley.telemetry.instruments import Instruments
from parley.telemetry.session import TracedSession

log = logging.getLogger("parley.telemetry")
SCOPE_NAME = "parley"


class Telemetry:
    """A tracer and a meter; `enabled` is False when neither provider is given (then sessions trace nothing)."""

    def __init__(
        self, tracer_provider: trace.TracerProvider | None = None, meter_provider: metrics.MeterProvider | None = None,
        *, owned: bool = False, shutdown_timeout: float = 5.0, exporters: tuple[Any, ...] = (),
    ) -> None:
        self.enabled = tracer_provider is not None or meter_provider is not None
        self.tracer_provider = tracer_provider or trace.NoOpTracerProvider()
        self.meter_provider = meter_provider or metrics.NoOpMeterProvider()
        self.tracer = self.tracer_provider.get_tracer(SCOPE_NAME)
        self.instruments = Instruments(self.meter_provider.get_meter(SCOPE_NAME))
        self._owned = owned  # built here from settings: shut down with the server
        self._exporters = exporters
        self._shutdown_timeout = shutdown_timeout
        self._flush_running = False
        self._flush_again = False

    @classmethod
    def off(cls) -> Telemetry:
        return cls()

    @classmethod
    def from_settings(cls, endpoint: str = "", protocol: str = "", service_name: str = "") -> Telemetry:
        """OTLP export as the flags and OTEL_* variables ask; off when none asks for it."""
        from parley.telemetry.exporters import choose

        choice = choose(endpoint, protocol, service_name)
        if not (choice.traces or choice.metrics):
            return cls.off()
        from parley.telemetry.providers import build_providers

        built = build_providers(choice)
        return cls(built.tracer_provider, built.meter_provider, owned=True, exporters=built.exporters)

    def open_session(self, session: SessionDescription) -> SessionObserver:
        """Start a session's root span (its parent is the caller's traceparent on Start, if any)."""
        if not self.enabled:
            return NO_OBSERVER
        return TracedSession(self.tracer, self.instruments, session, self.request_flush)

    # -- flush and shutdown, off the event loop ------------------------------------------

    def request_flush(self) -> None:
        """Hand every ended span to the exporter now, on a helper thread; never waits for the collector.

        At most one flush runs and one more is pending, however many sessions
        close at once; a flush requested while one runs starts when it ends,
        so it covers spans that ended after the running one began.
        """
        if self._flush_running:
            self._flush_again = True
            return
        self._flush_running = True
        self._run_off_loop(self._flush_spans, self._flush_done)

    def _flush_spans(self) -> None:
        flush = getattr(self.tracer_provider, "force_flush", None)
        if flush is not None:
            flush()

    def _flush_done(self) -> None:
        self._flush_running = False
        if self._flush_again:
            self._flush_again = False
            self.request_flush()

    async def shutdown(self) -> None:
        """Export what is left and stop the exporters (only those built here), waiting at most `shutdown_timeout`."""
        if not self._owned:
            return
        self._owned = False
        done = asyncio.get_running_loop().create_future()

        def stop() -> None:
            timeout_ms = int(self._shutdown_timeout * 1000)
            for provider in (self.tracer_provider, self.meter_provider):
                shutdown = getattr(provider, "shutdown", None)
                if shutdown is None:
                    continue
                try:
                    shutdown(timeout_millis=timeout_ms) if provider is self.meter_provider else shutdown()
                except Exception:  # noqa: BLE001 - a failing exporter must not fail the server's stop
                    log.warning("telemetry shutdown failed", exc_info=True)

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        self._run_off_loop(stop, finished)
        try:
            await asyncio.wait_for(asyncio.shield(done), self._shutdown_timeout)
        except TimeoutError:
            log.warning("telemetry export did not finish within %.1f s; dropped", self._shutdown_timeout)
            self._stop_retrying()
            try:
                await asyncio.wait_for(done, 2.0)
            except TimeoutError:
                log.warning("telemetry exporters did not stop")

    def _stop_retrying(self) -> None:
        """Tell the exporters to give up: their retries against a dead collector end at once."""
        for exporter in self._exporters:
            try:
                exporter.shutdown()
            except Exception:  # noqa: BLE001 - best effort, the server is stopping
                log.warning("telemetry exporter shutdown failed", exc_info=True)

    @staticmethod
    def _run_off_loop(work: Callable[[], None], then: Callable[[], None]) -> None:
        """Run blocking exporter work on a daemon thread (it never holds up the loop or process exit)."""
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                work()
            except Exception:  # noqa: BLE001
                log.warning("telemetry export failed", exc_info=True)
            finally:
                try:
                    loop.call_soon_threadsafe(then)
                except RuntimeError:  # the loop has closed
                    pass

        threading.Thread(target=run, name="parley-telemetry-export", daemon=True).start()
