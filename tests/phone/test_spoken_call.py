"""A phone call with real speech: espeak's question in µ-law over the media stream, Whisper's transcript out."""

from __future__ import annotations

from parley.audio import g711
from parley.audio.pcm import resample
from parley.providers import registry
from parley.providers.workers import Workers
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.test_spoken_turn import spoken
from tests.engine.test_telephone_audio import QUESTION, words
from tests.phone.conftest import with_settings
from tests.phone.provider import FRAME_BYTES

SILENCE = b"\xff" * FRAME_BYTES


async def test_a_spoken_question_on_the_phone_is_transcribed_and_answered(serve_phone, phone_settings, stub) -> None:  # type: ignore[no-untyped-def]
    real = session_pb2.SessionConfig(providers=session_pb2.ProvidersConfig(llm=session_pb2.ProviderSpec(name="echo")))
    phone = await serve_phone(with_settings(phone_settings, session_config=real))  # real VAD, STT and TTS
    provider = phone.provider()
    await provider.open()
    await provider.wait_for(lambda: provider.of("media"))
    name = (await stub.List(pb.ListRequest())).sessions[0].name
    events = stub.WatchEvents(pb.WatchEventsRequest(session=name))

    await provider.say(SILENCE * 25 + g711.mulaw_encode(await spoken(QUESTION, rate=8000)) + SILENCE * 50)
    transcript, reply = "", ""
    async for response in events:
        event = response.event
        if event.WhichOneof("event") == "transcript" and event.transcript.is_final:
            transcript = event.transcript.text
        utterance = event.utterance_updated.utterance
        if utterance.source == session_pb2.UTTERANCE_SOURCE_REPLY and \
                utterance.state == session_pb2.UTTERANCE_STATE_PLAYED:
            reply = utterance.id
            break
    events.cancel()
    assert len(words(transcript) & words(QUESTION)) >= 4, transcript

    await provider.wait_for(lambda: reply in [m.name for m in provider.of("mark")])
    mark_at = provider.received.index(next(m for m in provider.of("mark") if m.name == reply))
    answer = b"".join(r.payload for r in provider.received[:mark_at] if r.kind == "media" and r.payload != SILENCE)
    workers = Workers(2)
    try:
        stream = registry.build("stt", "whisper", {}, workers=workers).stream()
        await stream.push(resample(g711.mulaw_decode(answer), 8000, 16000))
        heard = await stream.finish()
        await stream.aclose()
    finally:
        workers.close()
    assert heard.text.strip(), "the answer sent to the phone is not speech"
    await provider.hang_up()
    await provider.wait_for(lambda: provider.closed)
    await provider.aclose()
