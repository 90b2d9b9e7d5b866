"""A reply's markup never reaches speech: the model's <em>, <<SYS>> and Markdown are taken out on the server."""

from __future__ import annotations

from google.protobuf import struct_pb2

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import open_stream
from tests.engine.test_speech import PLAYED, wait_done

# The echo LLM is a stand-in here: it answers this text, markup and all, as a model could.
MARKED_UP = "<<SYS>> [INST] ## <em>Sure</em>! The **capital** of France is [Paris](https://example.org/paris).</s>"


async def test_reply_speaks_the_words_without_the_markup(stub) -> None:
    options = struct_pb2.Struct()
    options.update({"template": MARKED_UP})
    providers = session_pb2.ProvidersConfig(llm=session_pb2.ProviderSpec(name="echo", options=options),
                                            tts=session_pb2.ProviderSpec(name="espeak"))
    session = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=providers)))).session
    client = await open_stream(stub, session.name)
    reply = (await stub.Reply(pb.ReplyRequest(session=session.name, user_text="What is the capital of France?"))).utterance
    done = await wait_done(stub, session.name, reply.id)

    assert done.state == PLAYED and done.played_ms > 500  # it was spoken
    assert done.text == "Sure! The capital of France is Paris."
    spoken = [e.text for e in client.of("agent_text")]  # the text handed to the TTS, piece by piece
    assert " ".join(spoken) == done.text
    history = (await stub.Get(pb.GetRequest(session=session.name))).session.chat_history
    assert history[-1].content == done.text
    await client.aclose()
