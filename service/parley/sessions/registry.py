"""The session registry: creates, finds, lists, reaps and closes sessions.

This is the engine's front door, used by the gRPC servicers and directly by
Python backends that embed Parley.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from parley.cancelling import cancel_and_wait
from parley.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from parley.providers import registry as providers
from parley.providers.workers import Workers
from parley.sessions.clock import LOOP_CLOCK, Clock
from parley.sessions.config import AgentAction, SessionConfig, validate
from parley.sessions.defaults import with_defaults
from parley.sessions.frame_clock import FrameClock
from parley.sessions.idempotency import RequestLog
from parley.sessions.limits import RegistryLimits
from parley.sessions.names import SESSION_NAME, check_replica_id, new_session_name, owner_replica
from parley.sessions.observer import NoObservers, ObserverFactory
from parley.sessions.recording import SessionRecording
from parley.sessions.session import Session
from parley.sessions.session_types import SessionHooks, SessionSnapshot
from parley.sessions.stream_slots import StreamSlots
from parley.sessions.utterance import UtteranceSnapshot

log = logging.getLogger("parley.registry")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class ClosedSession:
    """What a closed session leaves behind: its final snapshot, for Get, List and WaitUtterance.

    Keeping this instead of the Session releases the session's mixer,
    providers and buffers as soon as it closes.
    """

    closed = True

    def __init__(self, session: Session, recording_expires: float) -> None:
        self.name = session.name
        self.owner = session.owner
        self.idle_ttl_seconds = session.idle_ttl_seconds
        self._snapshot = session.snapshot()
        self._utterances = {u.id: u for u in self._snapshot.utterances}
        self.recording = session.recording
        self.recording_expires = recording_expires
        self.was_recorded = session.recording is not None

    def forget_recording(self) -> None:
        if self.recording is not None:
            self.recording.delete()
            self.recording = None

    def snapshot(self, *, full: bool = True) -> SessionSnapshot:
        return self._snapshot if full else dataclasses.replace(self._snapshot, utterances=(), chat_history=())

    def ensure_active(self) -> None:
        raise FailedPrecondition(f"{self.name} is closed", reason="SESSION_CLOSED")

    async def close(self, *args: object) -> None:
        """Closing a closed session changes nothing."""

    async def wait_utterance(self, utterance_id: str) -> UtteranceSnapshot:
        found = self._utterances.get(utterance_id)
        if found is None:
            raise InvalidArgument("utterance_id", f"no utterance {utterance_id[:80]!r} in this session")
        return found


AnySession = Session | ClosedSession


@dataclass(frozen=True)
class Page:
    sessions: list[AnySession]
    next_page_token: str


class SessionRegistry:
    """Owns every session of one server (or one embedding process)."""

    def __init__(
        self, limits: RegistryLimits = RegistryLimits(), *, workers: Workers | None = None,
        observers: ObserverFactory | None = None, clock: Clock = LOOP_CLOCK, replica: str = "",
    ) -> None:
        """`replica`: this server's id among several behind a proxy; it goes into every session name."""
        self.limits = limits
        self.replica = check_replica_id(replica)
        self.clock = clock
        self.frame_clock = FrameClock(clock=clock)  # one ticking task for every session's audio
        self.stream_slots = StreamSlots(limits.max_streams)
        self.workers = workers or Workers()
        self.observers = observers or NoObservers()
        self._active: dict[str, Session] = {}
        self._closed: OrderedDict[str, ClosedSession] = OrderedDict()
        self._order: dict[str, int] = {}
        self._counter = 0
        self._starts = RequestLog()
        self._reaper: asyncio.Task[None] | None = None
        self._accepting = True
        self._emptied = asyncio.Event()

    # -- lifecycle of the registry ---------------------------------------

    def start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_forever(), name="session-reaper")

    def stop_accepting(self) -> None:
        """From now on Start is UNAVAILABLE (reason DRAINING); open sessions carry on."""
        self._accepting = False

    async def wait_empty(self) -> None:
        """Return once no session is open (closed by its client, its idle TTL or the server)."""
        while self._active:
            self._emptied.clear()
            await self._emptied.wait()

    async def shutdown(self, reason: str = "server shutting down") -> None:
        """Refuse new sessions, close every open one, stop the reaper."""
        self._accepting = False
        if self._reaper is not None:
            await cancel_and_wait([self._reaper])
            self._reaper = None
        await asyncio.gather(*(s.close(reason) for s in list(self._active.values())))
        for session in list(self._active.values()):
            self._retire(session)
        for closed in self._closed.values():  # a recording lives no longer than the snapshot that names it
            closed.forget_recording()
        await self.frame_clock.aclose()

    # -- sessions ----------------------------------------------------------

    async def start(
        self, config: SessionConfig, *, owner: str = "", request_id: str = "", hooks: SessionHooks | None = None,
        fingerprint: Hashable = None,
    ) -> Session:
        """Create and start a session; a repeated (owner, request_id) returns the first one.

        `fingerprint` identifies the request: the same request_id with another
        fingerprint is InvalidArgument naming request_id.
        """
        key = (owner, request_id) if request_id else None
        return await self._starts.run(key, lambda: self._create(config, owner, hooks), fingerprint)

    async def _create(self, config: SessionConfig, owner: str, hooks: SessionHooks | None) -> Session:
        if not self._accepting:
            raise Unavailable("the server is shutting down", reason="DRAINING")
        validate(config)
        self._check_stand_ins(config)
        config = with_defaults(config)
        if len(self._active) >= self.limits.max_sessions:
            raise ResourceExhausted(
                "max_sessions", f"the server holds its maximum of {self.limits.max_sessions} sessions"
            )
        if sum(s.owner == owner for s in self._active.values()) >= self.limits.max_sessions_per_principal:
            raise ResourceExhausted("max_sessions_per_principal",
                                    f"at most {self.limits.max_sessions_per_principal} open sessions per principal")
        name = new_session_name(self.replica)
        ttl = config.idle_ttl_seconds if config.idle_ttl_seconds is not None else self.limits.session_idle_ttl
        self.frame_clock.start()
        session = Session(name, owner, config, idle_ttl_seconds=ttl, workers=self.workers,
                          frame_clock=self.frame_clock, stream_slots=self.stream_slots,
                          limits=self.limits.session, hooks=hooks,
                          observers=self.observers, clock=self.clock)
        self._counter += 1
        self._order[name] = self._counter
        self._active[name] = session
        try:
            await session.start()
        except BaseException:
            self._forget(name)
            await session.close("failed to start")
            raise
        return session

    def _check_stand_ins(self, config: SessionConfig) -> None:
        """Stand-in providers (fakes that crash or hang on request) only where the operator allowed them."""
        if self.limits.allow_stand_in_providers:
            return
        for stage in providers.STAGES:
            name = getattr(config.providers, stage).name
            if name in providers.stand_ins(stage):
                raise PermissionDenied(
                    f"config.providers.{stage}.name: {name!r} is a stand-in provider for tests and benchmarks; "
                    "this server was not started with --allow-stand-in-providers", reason="STAND_IN_PROVIDERS_OFF")

    def get(self, name: str, *, owner: str = "", field: str = "session") -> AnySession:
        """The session named `name` if `owner` owns it (closed ones included); else NotFound."""
        if not SESSION_NAME.match(name):
            raise InvalidArgument(field, f"must look like 'sessions/{{id}}', got {name[:80]!r}")
        session = self._active.get(name) or self._closed.get(name)
        if session is None or session.owner != owner:
            raise NotFound(f"{name} not found{self._elsewhere(name)}", reason="SESSION_NOT_FOUND")
        return session

    def get_active(self, name: str, *, owner: str = "", field: str = "session") -> Session:
        """Like get(), but a closed session is FailedPrecondition; marks activity."""
        return self.use(self.get(name, owner=owner, field=field))

    @staticmethod
    def use(session: AnySession) -> Session:
        """A call on `session`: FailedPrecondition if it closed, else it takes a request token and marks activity."""
        session.ensure_active()
        assert isinstance(session, Session)
        session.request_rate.take()
        session.touch()
        return session

    def list(self, *, owner: str = "", page_size: int = 0, page_token: str = "") -> Page:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument("page_size", f"must be 0..{MAX_PAGE_SIZE}, got {page_size}")
        size = page_size or DEFAULT_PAGE_SIZE
        before = _decode_token(page_token) if page_token else None
        every: list[AnySession] = [*self._active.values(), *self._closed.values()]
        mine = sorted(
            (s for s in every if s.owner == owner),
            key=lambda s: self._order[s.name],
            reverse=True,
        )
        if before is not None:
            mine = [s for s in mine if self._order[s.name] < before]
        page = mine[:size]
        token = _encode_token(self._order[page[-1].name]) if len(mine) > size else ""
        return Page(page, token)

    async def close(
        self, name: str, *, owner: str = "", reason: str = "closed by client", farewell: AgentAction | None = None,
        farewell_timeout: float = 10.0,
    ) -> AnySession:
        """Close a session (after its farewell, if any); closing a closed one returns it unchanged."""
        session = self.get(name, owner=owner)
        await session.close(reason or "closed by client", farewell, farewell_timeout)
        return self._retire(session) if isinstance(session, Session) else session

    def recording(self, name: str, *, owner: str = "") -> SessionRecording:
        """The session's recording: FailedPrecondition if it is not recorded, NotFound once it was deleted."""
        session = self.get(name, owner=owner)
        if session.recording is not None:
            return session.recording
        if isinstance(session, ClosedSession) and session.was_recorded:
            raise NotFound(f"the recording of {name} was deleted (recording_ttl)", reason="RECORDING_DELETED")
        raise FailedPrecondition(f"{name} is not recorded (config.recording.enabled)", reason="NOT_RECORDED")

    @property
    def active_count(self) -> int:
        return len(self._active)

    def active_sessions(self) -> builtins.list[Session]:
        return list(self._active.values())

    # -- internals -----------------------------------------------------------

    def _elsewhere(self, name: str) -> str:
        """Why a name another replica owns is not found here, for the error message."""
        owner = owner_replica(name)
        if not self.replica or owner in ("", self.replica):
            return ""
        return f" on replica {self.replica}: replica {owner} owns it"

    def _retire(self, session: Session) -> ClosedSession:
        if self._active.pop(session.name, None) is None:
            return self._closed[session.name]
        self._note_if_empty()
        closed = self._closed[session.name] = ClosedSession(session, self.clock.now() + self.limits.recording_ttl)
        while len(self._closed) > self.limits.closed_session_retention:
            old, gone = self._closed.popitem(last=False)
            gone.forget_recording()
            self._order.pop(old, None)
        return closed

    def _forget(self, name: str) -> None:
        self._active.pop(name, None)
        self._order.pop(name, None)
        self._note_if_empty()

    def _note_if_empty(self) -> None:
        if not self._active:
            self._emptied.set()

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.limits.reap_interval)
            await self.reap(self.clock.now())

    async def reap(self, now: float) -> None:
        """Close sessions idle past their TTL, retire those that closed themselves, delete old recordings."""
        for closed in self._closed.values():
            if closed.recording is not None and now >= closed.recording_expires:
                closed.forget_recording()
        for session in list(self._active.values()):
            if session.finished:
                self._retire(session)
            elif not session.closed and session.reapable(now):
                log.info("idle ttl reached", extra={"session": session.name})
                await session.close("idle ttl expired")
                self._retire(session)


def _encode_token(order: int) -> str:
    return base64.urlsafe_b64encode(f"before:{order}".encode()).decode()


def _decode_token(token: str) -> int:
    try:
        prefix, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if prefix != "before":
            raise ValueError(prefix)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument("page_token", "is not a token from a previous ListResponse") from exc
