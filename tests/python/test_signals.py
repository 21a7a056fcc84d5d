"""Ctrl-C ends a blocking wait: a process blocked in recv, view, wait or a
wait set's wait (the GIL released, asleep in the kernel) gets SIGINT and
raises KeyboardInterrupt at once; a signal whose handler does not raise
lets the wait go on; interrupt() from another thread ends a wait with
shmbus.Interrupted."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import shmbus
from conftest import TIMEOUT

CHILD = '''
import sys, shmbus
bus = shmbus.connect(sys.argv[1])
sub = bus.subscriber("quiet", create=True)
ws = bus.waitset([bus.subscriber("quiet2", create=True)])
calls = {"recv": lambda: sub.recv(), "view": lambda: sub.view(),
         "wait": lambda: sub.wait(timeout=3600), "waitset": lambda: ws.wait()}
print("ready", flush=True)
try:
    calls[sys.argv[2]]()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    bus.close()
    sys.exit(3)
print("returned", flush=True)
'''


def _until_asleep(bus, topic, pid):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if any(s.pid == pid and s.waiting for s in bus.info(topic).subscribers):
            return
        time.sleep(0.01)
    raise AssertionError("the subscriber never slept in its wait")


@pytest.mark.parametrize("call", ["recv", "view", "wait", "waitset"])
def test_sigint_ends_a_blocking_call(bus, call):
    child = subprocess.Popen([sys.executable, "-c", CHILD, bus.name, call],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        _until_asleep(bus, "quiet2" if call == "waitset" else "quiet", child.pid)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=TIMEOUT)
    finally:
        child.kill()
    assert child.returncode == 3, (out, err)
    assert out == "interrupted\n"


def test_handler_that_does_not_raise_lets_the_wait_go_on(bus):
    seen = []
    old = signal.signal(signal.SIGTERM, lambda *a: seen.append("TERM"))
    try:
        with bus.publisher("t") as pub, bus.subscriber("t") as sub:
            def later():
                _until_asleep(bus, "t", os.getpid())
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # give the wait the chance to (wrongly) end
                pub.send(b"after the signal")
            th = threading.Thread(target=later)
            th.start()
            got = sub.recv(timeout=TIMEOUT)
            th.join()
        assert got is not None and got[0] == b"after the signal"
        assert seen == ["TERM"]
    finally:
        signal.signal(signal.SIGTERM, old)


def test_interrupt_from_another_thread(bus):
    with bus.subscriber("t", create=True) as sub:
        th = threading.Thread(target=lambda: (_until_asleep(bus, "t", os.getpid()),
                                              sub.interrupt()))
        th.start()
        with pytest.raises(shmbus.Interrupted):
            sub.recv()
        th.join()
        assert sub.recv(timeout=0) is None  # the interrupt was used up


def test_recv_times_out_with_none(bus):
    with bus.subscriber("t", create=True) as sub:
        assert sub.recv(timeout=0.05) is None
        assert sub.wait(timeout=0.01) is False
        with pytest.raises(shmbus.Timeout):
            sub.view(timeout=0.01)


def test_a_waiting_subscriber_cannot_be_used_from_another_thread(bus):
    sub = bus.subscriber("t", create=True)
    ws = bus.waitset([bus.subscriber("t2", create=True)])
    errors = []

    def other():
        _until_asleep(bus, "t", os.getpid())
        for call in (sub.close, sub.take, lambda: sub.recv(0)):
            try:
                call()
            except shmbus.StateError as e:
                errors.append(str(e))
        sub.interrupt()

    th = threading.Thread(target=other)
    th.start()
    with pytest.raises(shmbus.Interrupted):
        sub.recv()
    th.join()
    assert len(errors) == 3 and all("another thread" in e for e in errors)
    assert not sub.closed

    def other_ws():
        _until_asleep(bus, "t2", os.getpid())
        for call in (ws.close, ws.members[0].take):
            try:
                call()
            except shmbus.StateError as e:
                errors.append(str(e))
        ws.interrupt()

    errors.clear()
    th = threading.Thread(target=other_ws)
    th.start()
    with pytest.raises(shmbus.Interrupted):
        ws.wait()
    th.join()
    assert len(errors) == 2, errors
