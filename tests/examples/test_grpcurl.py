"""The grpcurl scripts, through server reflection only: the tour runs every step against a real server."""

from __future__ import annotations

import json
import os
import re

from tests.examples.conftest import BIN, EXAMPLES, run


def json_objects(text: str) -> list[dict]:
    """The JSON objects grpcurl printed one after another (other lines skipped)."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while (start := text.find("{", at)) != -1:
        try:
            obj, at = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        found.append(obj)
    return found


def test_tour(address: str) -> None:
    tour(address)


def tour(address: str) -> None:
    """The grpcurl tour against the server (or proxy) at `address`: every step's reply checked."""
    env = {**os.environ, "PARLEY_ADDRESS": address, "GRPCURL": str(BIN / "grpcurl")}
    done = run(["bash", EXAMPLES / "grpcurl" / "tour.sh"], env=env)
    sections = dict(re.findall(r"^== (.+?)\n(.*?)(?=^== |\Z)", done.stdout, re.MULTILINE | re.DOTALL))

    assert json.loads(sections["health check"]) == {"status": "SERVING"}
    assert "parley.v1.AgentSessionService.StreamAudio" in sections["list services and methods"]
    assert "rpc WaitUtterance ( .parley.v1.WaitUtteranceRequest )" in sections["describe the session service"]
    assert "string text = 2;" in sections["describe SayRequest"]
    # the contract's comments come with it (reflection serves the descriptors with source info)
    assert "// Speaks a text. Returns the utterance handle at once." in sections["describe the session service"]
    assert "// Text to speak (non-empty, within the server's text limit)." in sections["describe SayRequest"]

    session = json.loads(sections["Start a session"])["session"]
    assert session["status"] == "SESSION_STATUS_ACTIVE" and session["name"].startswith("sessions/")
    said = json.loads(sections["Say"])["utterance"]
    assert said["state"] == "UTTERANCE_STATE_QUEUED"
    waited = json.loads(next(v for k, v in sections.items() if k.startswith("WaitUtterance")))["utterance"]
    assert (waited["id"], waited["state"]) == (said["id"], "UTTERANCE_STATE_PLAYED")
    cut = json_objects(sections["Say a long text, then Interrupt it a second later"])[0]["interrupted"][0]
    assert cut["state"] == "UTTERANCE_STATE_INTERRUPTED"
    assert cut["heard_text"] and cut["text"].startswith(cut["heard_text"]) and cut["heard_text"] != cut["text"]
    got = json.loads(sections["Get"])["session"]
    assert [u["state"] for u in got["utterances"]] == ["UTTERANCE_STATE_PLAYED", "UTTERANCE_STATE_INTERRUPTED"]
    closed = json.loads(sections["Close"])["session"]
    assert (closed["status"], closed["close_reason"]) == ("SESSION_STATUS_CLOSED", "tour done")

    events = [o["event"] for o in json_objects(next(v for k, v in sections.items() if k.startswith("the events")))]
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(set(sequences))
    states = [(e["utterance_updated"]["utterance"]["id"], e["utterance_updated"]["utterance"]["state"])
              for e in events if "utterance_updated" in e]
    assert (said["id"], "UTTERANCE_STATE_PLAYED") in states
    assert states.index((said["id"], "UTTERANCE_STATE_PLAYED")) < states.index((cut["id"], "UTTERANCE_STATE_INTERRUPTED"))
    assert events[-1]["session_closed"] == {"reason": "tour done"}
