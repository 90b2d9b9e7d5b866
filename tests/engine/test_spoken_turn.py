"""A whole spoken turn with the offline default providers: real speech in, a real reply out."""

from __future__ import annotations

import numpy as np

from parley.audio.pcm import resample
from parley.providers import registry
from parley.providers.workers import Workers
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import open_stream, rms

QUESTION = "what is the weather today"


async def spoken(text: str, rate: int = 16000, voice: str = "") -> np.ndarray:
    """`text` said by the default TTS (in `voice`, "" for its default), at `rate`."""
    workers = Workers(2)
    try:
        tts = registry.build("tts", "", {}, voice=voice, workers=workers)
        pcm = np.concatenate([c async for c in tts.synthesize(text)])
        return resample(pcm, tts.sample_rate, rate)
    finally:
        workers.close()


def heard_the_question(text: str) -> bool:
    """Most of QUESTION's words: Whisper tiny now and then mishears one word of espeak's voice ("winner")."""
    return len(set(text.lower().strip("?.!").split()) & set(QUESTION.split())) >= 3


async def test_spoken_question_gets_a_spoken_answer(stub) -> None:
    question = await spoken(QUESTION)
    config = session_pb2.SessionConfig(instructions="You are a helpful voice assistant. Answer in one sentence.")
    session = (await stub.Start(pb.StartRequest(config=config))).session
    assert session.config.providers.stt.name == "whisper"  # the offline defaults, filled in
    client = await open_stream(stub, session.name)
    await client.send_silence(0.5)
    await client.send(question)  # 20 ms chunks in real time
    await client.send_silence(1.5)

    def replied() -> bool:
        return any(u.utterance.source == session_pb2.UTTERANCE_SOURCE_REPLY
                   and u.utterance.state == session_pb2.UTTERANCE_STATE_PLAYED
                   for u in client.of("utterance_updated"))

    while not replied():  # keep the caller's line open (silence) until the reply has played
        await client.send_silence(0.5)
        assert len(client.frames) < 50 * 60, "no reply within a minute"

    finals = [t.text for t in client.of("transcript") if t.is_final]
    assert finals and heard_the_question(finals[0]), finals
    user_states = [s.new_state for s in client.of("user_state_changed")]
    assert user_states[:3] == [session_pb2.USER_STATE_LISTENING, session_pb2.USER_STATE_SPEAKING,
                               session_pb2.USER_STATE_LISTENING]
    agent_states = [s.new_state for s in client.of("agent_state_changed")]
    assert agent_states[:4] == [session_pb2.AGENT_STATE_LISTENING, session_pb2.AGENT_STATE_IDLE,
                                session_pb2.AGENT_STATE_THINKING, session_pb2.AGENT_STATE_SPEAKING]
    assert agent_states[-1] == session_pb2.AGENT_STATE_IDLE

    reply = next(u.utterance for u in client.of("utterance_updated")
                 if u.utterance.state == session_pb2.UTTERANCE_STATE_PLAYED)
    assert reply.text.strip()
    frames = [f for f in client.frames if f.utterance_id == reply.id]
    assert all(len(f.pcm) == 480 for f in frames)
    assert rms(np.concatenate([f.pcm for f in frames])) > 300  # audible speech
    assert 0 < client.position_of_last_frame(reply.id) < client.position_of_state(
        reply.id, session_pb2.UTTERANCE_STATE_PLAYED)

    turn = client.of("metrics_updated")[0].turn
    assert turn.e2e_latency_ms > turn.llm_ttft_ms > 0
    assert turn.stt_latency_ms > 0 and turn.end_of_turn_delay_ms > 0
    history = (await stub.Get(pb.GetRequest(session=session.name))).session.chat_history
    assert [m.role for m in history] == [session_pb2.CHAT_ROLE_SYSTEM, session_pb2.CHAT_ROLE_USER,
                                         session_pb2.CHAT_ROLE_ASSISTANT]
    assert heard_the_question(history[1].content), history[1].content
    await client.aclose()


async def test_caller_words_cut_the_agent_before_the_caller_finishes(stub) -> None:
    """STT_ONLY barge-in with the default recognizer: interim transcripts carry the words that cut."""
    interruption = session_pb2.InterruptionConfig(mode=session_pb2.INTERRUPTION_MODE_STT_ONLY, min_words=2)
    providers = session_pb2.ProvidersConfig(tts=session_pb2.ProviderSpec(name="tone"),
                                            llm=session_pb2.ProviderSpec(name="echo"))
    config = session_pb2.SessionConfig(providers=providers, interruption=interruption, auto_reply=False)
    session = (await stub.Start(pb.StartRequest(config=config))).session
    client = await open_stream(stub, session.name)
    long_text = "this agent keeps talking for a good long while so that the caller has to cut in " * 2
    said = (await stub.Say(pb.SayRequest(session=session.name, text=long_text))).utterance
    await client.wait_for(lambda: session_pb2.UTTERANCE_STATE_SPEAKING in client.utterance_states(said.id))
    await client.send(await spoken("please stop talking now and listen to me carefully for a moment"))
    await client.send_silence(1.5)
    await client.wait_for(lambda: any(t.is_final for t in client.of("transcript")))

    assert client.utterance_states(said.id)[-1] == session_pb2.UTTERANCE_STATE_INTERRUPTED
    cut_at = client.position_of_state(said.id, session_pb2.UTTERANCE_STATE_INTERRUPTED)
    final_at = client.position_of(lambda e: e.WhichOneof("event") == "transcript" and e.transcript.is_final)
    assert cut_at < final_at  # cut by interim words, while the caller was still speaking
    assert any(not t.is_final and len(t.text.split()) >= 2 for t in client.of("transcript"))
    await client.aclose()


AGENT_TEXT = ("Thank you for calling our customer service. Today I would like to tell you about the many new "
              "features we have added to your account, starting with the monthly summary and the savings plan.")


async def transcribe(pcm: np.ndarray, rate: int) -> list[str]:
    workers = Workers(2)
    try:
        stream = registry.build("stt", "whisper", {}, workers=workers).stream()
        await stream.push(resample(pcm, rate, 16000), interim=False)
        words = (await stream.finish()).text.lower().split()
        await stream.aclose()
        return [w.strip(",.?!;:") for w in words]
    finally:
        workers.close()


async def test_a_caller_who_talks_over_the_agent_cuts_it_and_it_keeps_only_what_was_heard(stub) -> None:
    """The default providers, a real voice barge-in: heard_text is the words in the audio that was sent."""
    session = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(auto_reply=False)))).session
    client = await open_stream(stub, session.name)
    said = (await stub.Say(pb.SayRequest(session=session.name, text=AGENT_TEXT))).utterance
    await client.wait_for(lambda: session_pb2.UTTERANCE_STATE_SPEAKING in client.utterance_states(said.id))
    await client.send_silence(2.0)
    await client.send(await spoken("Stop, wait a moment please", voice="en+f3"))
    await client.wait_for(lambda: client.utterance_states(said.id)[-1] == session_pb2.UTTERANCE_STATE_INTERRUPTED)
    done = (await stub.WaitUtterance(pb.WaitUtteranceRequest(session=session.name, utterance_id=said.id))).utterance
    assert done.end_reason == "CALLER_SPOKE"

    heard = done.heard_text.split()
    assert 3 <= len(heard) < len(AGENT_TEXT.split()) and AGENT_TEXT.startswith(done.heard_text)
    sent = np.concatenate([f.pcm for f in client.frames if f.utterance_id == said.id])
    assert abs(len(sent) / 24000 * 1000 - done.played_ms) < 200  # what was sent is what counts as played
    in_audio = await transcribe(sent, 24000)
    words = [w.strip(",.").lower() for w in heard]
    assert abs(len(in_audio) - len(words)) <= 2, (in_audio, words)  # a word cut mid-way may go either way
    assert in_audio[-1] in words[-3:] or in_audio[-2] == words[-1], (in_audio, words)
    history = (await stub.Get(pb.GetRequest(session=session.name))).session.chat_history
    agent_lines = [m for m in history if m.role == session_pb2.CHAT_ROLE_ASSISTANT]
    assert [(m.content, m.interrupted) for m in agent_lines] == [(done.heard_text, True)]

    after = (await stub.Say(pb.SayRequest(session=session.name, text="Sorry, go ahead."))).utterance
    while (await stub.Get(pb.GetRequest(session=session.name))).session.utterances[-1].state in (
            session_pb2.UTTERANCE_STATE_QUEUED, session_pb2.UTTERANCE_STATE_SPEAKING):
        await client.send_silence(0.1)
    assert (await stub.WaitUtterance(pb.WaitUtteranceRequest(
        session=session.name, utterance_id=after.id))).utterance.state == session_pb2.UTTERANCE_STATE_PLAYED
    await client.aclose()
