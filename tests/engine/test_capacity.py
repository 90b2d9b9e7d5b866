"""Many sessions in one process: opening and closing them leaves nothing behind."""

from __future__ import annotations

import asyncio
import gc

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def cycle(stub, count: int) -> None:
    config = session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)
    names = [s.session.name for s in await asyncio.gather(
        *(stub.Start(pb.StartRequest(config=config)) for _ in range(count)))]
    said = await asyncio.gather(*(stub.Say(pb.SayRequest(session=n, text="hi")) for n in names))
    await asyncio.gather(*(stub.WaitUtterance(pb.WaitUtteranceRequest(session=n, utterance_id=s.utterance.id))
                           for n, s in zip(names, said, strict=True)))
    await asyncio.gather(*(stub.PlayBackgroundAudio(pb.PlayBackgroundAudioRequest(session=n)) for n in names[:20]))
    await asyncio.gather(*(stub.Close(pb.CloseRequest(session=n)) for n in names))


async def test_200_sessions_open_and_close_leave_no_tasks_or_memory(server, stub) -> None:
    await cycle(stub, 20)  # warm caches, pools and allocators
    gc.collect()
    await asyncio.sleep(0.1)
    tasks_before = len(asyncio.all_tasks())
    rss_before = rss_mb()

    await cycle(stub, 200)
    assert server.registry.active_count == 0
    gc.collect()
    await asyncio.sleep(0.1)

    leftover = [t.get_name() for t in asyncio.all_tasks()]
    assert len(leftover) <= tasks_before, leftover
    growth = rss_mb() - rss_before
    assert growth < 25, f"RSS grew {growth:.1f} MB over 200 sessions"
