"""Randomized conversations: whatever a caller does, the session goes on speaking and listening.

A seeded script plays many steps against a live session over the real
server: the caller talks at random moments (over the agent's speech, while
it thinks, while a tool call is out, right after an utterance played),
coughs, the backend calls Say / Reply / Interrupt, and the audio stream is
dropped and re-attached. After every step the session must settle: every
utterance final, the agent IDLE or LISTENING, and a new Say played out in
full. At the end every caller turn must have had its reply, or a reply that
ended with a stated reason.

The stand-in providers make the script fast and repeatable: the energy VAD
hears the tones as the caller's voice, the scripted STT gives each voiced
stretch the next line of its script (short bursts give no words: noise),
and the echo LLM answers "You said: ...".
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from google.protobuf import struct_pb2

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import StreamClient, open_stream
from tests.engine.test_conversation import tone
from tests.engine.test_spoken_turn import spoken

QUEUED, SPEAKING, PLAYED, INTERRUPTED, FAILED = (
    session_pb2.UTTERANCE_STATE_QUEUED, session_pb2.UTTERANCE_STATE_SPEAKING, session_pb2.UTTERANCE_STATE_PLAYED,
    session_pb2.UTTERANCE_STATE_INTERRUPTED, session_pb2.UTTERANCE_STATE_FAILED,
)
SETTLED_AGENT = (session_pb2.AGENT_STATE_IDLE, session_pb2.AGENT_STATE_LISTENING)
SCRIPT = ["alpha bravo", "charlie delta echo", "foxtrot golf", "hotel india juliet", "kilo lima"]
SCRIPT_WORDS = set(" ".join(SCRIPT).split())
SETTLE_SECONDS = 20.0
CALLER_VOICE = "en+f3"  # not the agent's voice


def providers(with_tools: bool) -> session_pb2.ProvidersConfig:
    config = session_pb2.ProvidersConfig(
        tts=session_pb2.ProviderSpec(name="tone"),
        stt=session_pb2.ProviderSpec(name="scripted"),
        vad=session_pb2.ProviderSpec(name="energy"),
        llm=session_pb2.ProviderSpec(name="echo"),
    )
    config.tts.options.update({"ms_per_char": 25})
    config.stt.options.update({"transcripts": SCRIPT, "silent_below_ms": 900})
    config.llm.options.update({"token_delay_ms": 80})
    if with_tools:
        config.llm.options.update({"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}],
                                   "after_tools_template": "You said: {tool_results}"})
    return config


async def spoken_all(texts: list[str]) -> list[np.ndarray]:
    return [await spoken(text, voice=CALLER_VOICE) for text in texts]


@dataclass
class Voice:
    """What the caller sounds like: tones for the stand-in VAD, or real speech for the default providers."""

    long: list[np.ndarray]  # talking over the agent: longer than min_duration_seconds
    short: list[np.ndarray]  # a few words, too short to cut by voice alone
    cough: np.ndarray  # a short burst of noise, no words

    @staticmethod
    def tones() -> Voice:
        return Voice(long=[tone(s, freq=f) for s, f in ((0.7, 220.0), (1.0, 330.0), (1.3, 440.0))],
                     short=[tone(0.45, freq=300.0)], cough=tone(0.15, freq=500.0))


@dataclass
class Conversation:
    """The test's side of one session: its stream, its calls, and what it must check."""

    stub: object
    name: str
    rng: random.Random
    client: StreamClient
    voice: Voice
    api_utterances: set[str] = field(default_factory=set)  # created by Say / Reply calls, not by caller turns
    api_user_texts: set[str] = field(default_factory=set)
    answered_tool_calls: set[str] = field(default_factory=set)
    probes: int = 0
    log: list[str] = field(default_factory=list)

    async def get(self) -> session_pb2.Session:
        return (await self.stub.Get(pb.GetRequest(session=self.name))).session

    # -- the caller --------------------------------------------------------------

    async def caller_says(self, audio: np.ndarray) -> None:
        await self.client.send(audio)
        await self.client.send_silence(self.rng.uniform(0.05, 0.5))

    async def set_the_scene(self, scene: str) -> None:
        """Bring the session to a moment worth acting in: speaking, thinking, a tool call out, just played."""
        seen = len(self.client.events)
        if scene == "speaking":
            words = " ".join(self.rng.choice(["one", "two", "three", "four"]) for _ in range(self.rng.randint(8, 20)))
            said = (await self.stub.Say(pb.SayRequest(session=self.name, text=words,
                                                      interruptible=self.rng.random() < 0.85))).utterance
            self.api_utterances.add(said.id)
            await self.until(seen, lambda e: e.WhichOneof("event") == "utterance_updated"
                             and e.utterance_updated.utterance.id == said.id
                             and e.utterance_updated.utterance.state == SPEAKING)
            await self.client.send_silence(self.rng.uniform(0.0, 0.4))
        elif scene in ("thinking", "tool call"):
            await self.caller_says(self.rng.choice(self.voice.long))
            kind = "tool_call_requested" if scene == "tool call" else "agent_state_changed"
            await self.until(seen, lambda e: e.WhichOneof("event") == kind and (
                kind != "agent_state_changed" or e.agent_state_changed.new_state == session_pb2.AGENT_STATE_THINKING))
        elif scene == "just played":
            said = (await self.stub.Say(pb.SayRequest(session=self.name, text="short one"))).utterance
            self.api_utterances.add(said.id)
            await self.until(seen, lambda e: e.WhichOneof("event") == "utterance_updated"
                             and e.utterance_updated.utterance.id == said.id
                             and e.utterance_updated.utterance.state == PLAYED)

    async def until(self, seen: int, matches, timeout: float = SETTLE_SECONDS) -> None:
        """Keep the line open until an event after the first `seen` matches.

        The bound is on a hang, not a speed claim, as settle's is: with the
        default providers THINKING waits for Whisper's transcript, which
        comes about half a second after the caller stops here, but has taken
        over 5 s on a loaded 2-core host."""
        deadline = time.monotonic() + timeout
        while not any(matches(e) for e in self.client.events[seen:]):
            assert time.monotonic() < deadline, f"the scene never came; steps: {self.log}"
            await self.client.send_silence(0.02)

    # -- the backend ---------------------------------------------------------------

    async def say(self) -> None:
        words = " ".join(self.rng.choice(["one", "two", "three", "four", "five"])
                         for _ in range(self.rng.randint(2, 8)))
        said = (await self.stub.Say(pb.SayRequest(session=self.name, text=words,
                                                  interruptible=self.rng.random() < 0.85))).utterance
        self.api_utterances.add(said.id)

    async def reply(self) -> None:
        text = f"api question {len(self.api_user_texts)}"
        policy = self.rng.choice([pb.BUSY_POLICY_QUEUE, pb.BUSY_POLICY_INTERRUPT])
        reply = (await self.stub.Reply(pb.ReplyRequest(session=self.name, user_text=text,
                                                       busy_policy=policy))).utterance
        self.api_utterances.add(reply.id)
        self.api_user_texts.add(text)

    async def interrupt(self) -> None:
        scope = self.rng.choice([pb.INTERRUPT_SCOPE_CURRENT, pb.INTERRUPT_SCOPE_ALL])
        await self.stub.Interrupt(pb.InterruptRequest(session=self.name, scope=scope, force=self.rng.random() < 0.3))

    async def reattach(self) -> None:
        await self.client.aclose()
        await asyncio.sleep(self.rng.uniform(0.0, 0.5))  # the line is down for a moment
        self.client = await open_stream(self.stub, self.name)

    async def answer_tool_calls(self) -> None:
        """The backend answers most tool calls, late or early; some it never answers (they time out)."""
        for event in self.client.of("tool_call_requested"):
            call = event.call
            if call.id in self.answered_tool_calls:
                continue
            self.answered_tool_calls.add(call.id)
            if self.rng.random() < 0.8:
                history = (await self.get()).chat_history
                asked = next((m.content for m in reversed(history) if m.role == session_pb2.CHAT_ROLE_USER), "")
                try:
                    await self.stub.SubmitToolResult(pb.SubmitToolResultRequest(
                        session=self.name, tool_call_id=call.id, result=asked))
                except Exception as exc:  # noqa: BLE001 - a call already timed out or cut is answered FAILED_PRECONDITION
                    self.log.append(f"late tool result: {exc}")

    # -- the invariants ---------------------------------------------------------------

    async def settle(self, step: str) -> None:
        """With the caller silent, every utterance ends and the agent goes back to idle or listening."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            await self.answer_tool_calls()
            session = await self.get()
            pending = [u for u in session.utterances if u.state in (QUEUED, SPEAKING)]
            if not pending and session.agent_state in SETTLED_AGENT \
                    and session.user_state != session_pb2.USER_STATE_SPEAKING:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"after {step!r} the session did not settle: agent {session.agent_state}, "
                    f"pending {[(u.id, u.state, u.text) for u in pending]}; steps: {self.log}")
            await self.client.send_silence(0.1)

    async def probe(self) -> None:
        """A new Say plays out in full: the session still speaks."""
        self.probes += 1
        text = f"probe number {self.probes}"
        said = (await self.stub.Say(pb.SayRequest(session=self.name, text=text, interruptible=False))).utterance
        self.api_utterances.add(said.id)
        waiting = asyncio.ensure_future(self.stub.WaitUtterance(
            pb.WaitUtteranceRequest(session=self.name, utterance_id=said.id), timeout=SETTLE_SECONDS))
        while not waiting.done():
            await self.client.send_silence(0.1)
        done = (await waiting).utterance
        assert done.state == PLAYED and done.heard_text == text, (done, self.log)
        assert any(f.utterance_id == said.id for f in self.client.frames), "the probe's audio never reached the stream"

    async def every_turn_answered(self, scripted: bool) -> None:
        """Each caller turn got a reply; a reply that did not play out says why."""
        session = await self.get()
        turns = [m.content for m in session.chat_history
                 if m.role == session_pb2.CHAT_ROLE_USER and m.content not in self.api_user_texts]
        replies = [u for u in session.utterances
                   if u.source == session_pb2.UTTERANCE_SOURCE_REPLY and u.id not in self.api_utterances]
        assert len(session.utterances) < 50, "raise recent_utterances: the check needs every utterance"
        assert len(replies) == len(turns), (turns, [(u.id, u.state, u.text) for u in replies])
        for turn, reply in zip(turns, replies, strict=True):
            if scripted:
                assert set(turn.split()) <= SCRIPT_WORDS, turn  # one or more lines of the script, merged
            if reply.state == PLAYED:
                assert reply.heard_text.startswith("You said:") if scripted else reply.heard_text, reply
            else:
                assert reply.state in (INTERRUPTED, FAILED) and reply.end_reason, reply


SCENES = ["speaking", "speaking", "thinking", "tool call", "just played", "idle"]
ACTIONS = ["talk over", "talk over", "short words", "cough", "say", "reply", "interrupt", "reattach", "pause"]


async def run_conversation(
    stub, seed: int, steps: int, *, with_tools: bool = False, voice: Voice | None = None,
) -> None:
    """`voice` None: the stand-in providers and tones; else the default providers and that voice."""
    params = struct_pb2.Struct()
    params.update({"type": "object", "properties": {"q": {"type": "string"}}})
    config = session_pb2.SessionConfig(
        providers=providers(with_tools) if voice is None else None, tool_timeout_seconds=1.5,
        instructions="" if voice is None else "You are a helpful voice assistant. Answer in one short sentence.",
        tools=[session_pb2.ToolDefinition(name="lookup", description="Looks things up", parameters=params)]
        if with_tools else [],
    )
    name = (await stub.Start(pb.StartRequest(config=config))).session.name
    rng = random.Random(seed)
    scripted, voice = voice is None, voice or Voice.tones()
    talk = Conversation(stub, name, rng, await open_stream(stub, name), voice)
    try:
        for index in range(steps):
            scene, step = rng.choice(SCENES), rng.choice(ACTIONS)
            if scene == "tool call" and not with_tools:
                scene = "thinking"
            talk.log.append(f"{index}:{step}@{scene}")
            await talk.set_the_scene(scene)
            if step == "talk over":
                await talk.caller_says(rng.choice(voice.long))
            elif step == "short words":
                await talk.caller_says(rng.choice(voice.short))  # too short to cut by voice alone; words decide
            elif step == "cough":
                await talk.caller_says(voice.cough)
            elif step == "say":
                await talk.say()
            elif step == "reply":
                await talk.reply()
            elif step == "interrupt":
                await talk.interrupt()
            elif step == "reattach":
                await talk.reattach()
            else:
                await talk.client.send_silence(rng.uniform(0.1, 0.8))
            await talk.answer_tool_calls()
            await talk.settle(talk.log[-1])
            await talk.probe()
        await talk.every_turn_answered(scripted)
        metrics = (await talk.get()).metrics
        print(f"steps {talk.log}; interruptions {metrics.interruptions}, "
              f"false interruptions {metrics.false_interruptions}")
        assert metrics.interruptions >= 1  # the script did make the caller cut the agent
    finally:
        await talk.client.aclose()
        await stub.Close(pb.CloseRequest(session=name))


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_conversations_keep_speaking_and_listening(stub, seed: int) -> None:
    await run_conversation(stub, seed, 18, with_tools=False)


async def test_random_conversations_with_tool_calls(stub) -> None:
    await run_conversation(stub, 3, 14, with_tools=True)


async def test_random_conversation_with_the_default_providers(stub) -> None:
    """Real speech in (espeak, another voice than the agent's), Whisper, WebRTC VAD, the local model."""
    phrases = await spoken_all(["could you please tell me when the library opens tomorrow morning",
                                "I would like to book a table for two people tonight",
                                "no stop"])
    noise = np.random.default_rng(7).normal(0, 6000, 2400).clip(-32768, 32767).astype(np.int16)
    voice = Voice(long=phrases[:2], short=phrases[2:], cough=noise)
    await run_conversation(stub, 4, 8, voice=voice)
