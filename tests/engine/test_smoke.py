import numpy as np

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import open_stream, rms


async def test_say_plays_audio_then_completes(stub, start_session) -> None:  # type: ignore[no-untyped-def]
    session = await start_session()
    client = await open_stream(stub, session.name)
    said = (await stub.Say(pb.SayRequest(session=session.name, text="hello there"))).utterance
    done = (await stub.WaitUtterance(pb.WaitUtteranceRequest(session=session.name, utterance_id=said.id))).utterance
    assert done.state == session_pb2.UTTERANCE_STATE_PLAYED
    speech = [f for f in client.frames if f.utterance_id == said.id]
    assert speech and rms(np.concatenate([f.pcm for f in speech])) > 1000
    await client.aclose()
