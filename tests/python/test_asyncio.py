"""asyncio waits on three topics at once: each subscriber's descriptor is
watched by the event loop (no polling), messages published from another
thread wake the right coroutine; a wait set gives one descriptor for all."""

import asyncio
import threading

import pytest

import shmbus
import shmbus.aio
import shmbus.msgs

TOPICS = ["a/imu", "b/imu", "c/imu"]


@pytest.fixture
def wakeups(monkeypatch):
    """How often the loop woke a coroutine through a descriptor: a handful
    when it waits for events, thousands if anything polled."""
    count = [0]
    readable = shmbus.aio._readable

    async def counted(fd):
        count[0] += 1
        await readable(fd)

    monkeypatch.setattr(shmbus.aio, "_readable", counted)
    return count


def _publish_later(bus, order, started):
    def run():
        started.wait(30)
        with bus.publisher(TOPICS[0], type=shmbus.msgs.Imu) as p0:
            pubs = {TOPICS[0]: p0}
            for t in TOPICS[1:]:
                pubs[t] = bus.publisher(t, type=shmbus.msgs.Imu)
            for i, t in enumerate(order):
                pubs[t].send(shmbus.msgs.Imu(orientation={"w": float(i)}))
            for t in TOPICS[1:]:
                pubs[t].close()
    th = threading.Thread(target=run)
    th.start()
    return th


def test_three_topics_at_once(bus, wakeups):
    subs = [bus.subscriber(t, type=shmbus.msgs.Imu, create=True) for t in TOPICS]
    started = threading.Event()

    async def main():
        tasks = [asyncio.create_task(s.recv_async()) for s in subs]
        await asyncio.sleep(0)  # every task now waits on its descriptor
        for t in tasks:
            assert not t.done()
        started.set()
        return await asyncio.wait_for(asyncio.gather(*tasks), 30)

    th = _publish_later(bus, ["c/imu", "a/imu", "b/imu"], started)
    results = asyncio.run(main())
    th.join(30)
    ws = {t: msg.orientation.w for t, (msg, info) in zip(TOPICS, results)}
    assert ws == {"c/imu": 0.0, "a/imu": 1.0, "b/imu": 2.0}
    assert all(isinstance(m, shmbus.msgs.Imu) for m, _ in results)
    assert 3 <= wakeups[0] <= 6, wakeups[0]


def test_async_iteration_and_waitset(bus, wakeups):
    subs = [bus.subscriber(t, create=True, type=shmbus.msgs.Imu) for t in TOPICS]
    ws = bus.waitset(subs)
    started = threading.Event()

    async def main():
        got = {}
        started.set()
        while len(got) < 3:
            ready = await asyncio.wait_for(ws.wait_async(), 30)
            for s in ready:
                async for msg, info in s:  # one message each here
                    got[s.topic] = msg.orientation.w
                    break
        return got

    th = _publish_later(bus, ["b/imu", "c/imu", "a/imu"], started)
    got = asyncio.run(main())
    th.join(30)
    assert got == {"b/imu": 0.0, "c/imu": 1.0, "a/imu": 2.0}
    assert wakeups[0] <= 9, wakeups[0]
