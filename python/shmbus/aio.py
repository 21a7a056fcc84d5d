"""asyncio for shmbus: the event loop watches a subscriber's (or a wait
set's) descriptor, which is readable while there is something to take, so
awaiting a message costs no polling and no thread of our own.

    msg, info = await sub.recv_async()
    async for msg, info in sub: ...
    ready = await waitset.wait_async()
"""

import asyncio


async def _readable(fd):
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def ready():
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


async def recv(sub):
    """The next (message, MsgInfo) of a subscriber."""
    fd = None
    while True:
        r = sub.take()  # an empty take also makes the descriptor non-readable
        if r is not None:
            return r
        if fd is None:
            fd = sub.fileno()
        await _readable(fd)


async def wait(waitset):
    """The members of a wait set that have something to take."""
    fd = None
    while True:
        ready = waitset.wait(0)
        if ready:
            return ready
        if fd is None:
            fd = waitset.fileno()
        await _readable(fd)
