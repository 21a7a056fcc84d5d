"""Loss is counted the same way in C and in Python: a C subscriber (`shmbus
echo --meta`) and a Python subscriber of one topic, both behind while a
publisher laps them, report the same losses, and each accounts for every
sequence number (received + lost = published), as the broker sees too."""

import json
import os
import signal
import subprocess
import time

from conftest import CLI, TIMEOUT

N = 100
SLOTS = 8


def _until(cond, what):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def test_c_and_python_subscribers_count_the_same_loss(bus):
    with bus.publisher("loss", max_message_size=64, slots=SLOTS) as pub, \
            bus.subscriber("loss") as sub:
        echo = subprocess.Popen([CLI, "echo", "--bus", bus.name, "loss", "--meta"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _until(lambda: len(bus.info("loss").subscribers) == 2, "the C subscriber")
            # Stop the C subscriber so that it falls behind exactly as the
            # Python one does (which takes nothing until all is published).
            os.kill(echo.pid, signal.SIGSTOP)
            _, status = os.waitpid(echo.pid, os.WUNTRACED)
            assert os.WIFSTOPPED(status)
            for i in range(N):
                pub.send(b"m%d" % i)
            py_received, py_lost = 0, 0
            for msg, info in iter(sub.take, None):
                py_received += 1
                py_lost += info.lost
            os.kill(echo.pid, signal.SIGCONT)
            c_entry = lambda: [s for s in bus.info("loss").subscribers if s.pid == echo.pid]
            _until(lambda: c_entry() and c_entry()[0].next_seq == N, "the C subscriber to catch up")
            c_broker = c_entry()[0]
        finally:
            echo.terminate()
            out, err = echo.communicate(timeout=TIMEOUT)
        metas = [json.loads(line)["_meta"] for line in out.splitlines()]
        c_received = len(metas)
        c_lost = sum(int(m["lost"]) for m in metas)

        assert py_lost > 0, "the publisher did not lap the subscribers"
        assert py_received + py_lost == N
        assert c_received + c_lost == N
        assert (c_received, c_lost) == (py_received, py_lost)
        stats = sub.stats()
        assert (stats["received"], stats["lost"]) == (py_received, py_lost)
        me = [s for s in bus.info("loss").subscribers if s.pid == os.getpid()][0]
        assert (me.received, me.lost) == (py_received, py_lost)
        assert (c_broker.received, c_broker.lost) == (c_received, c_lost)
