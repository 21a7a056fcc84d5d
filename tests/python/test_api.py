"""The package's surface: connecting, introspection with the fields of
`shmbus info`, errors as exceptions with the bus's code and text, untyped
bytes, iteration, wait sets, and closing a bus with what it opened."""

import os

import pytest

import shmbus
import shmbus.msgs
from conftest import cli, stop_bus


def test_no_broker_without_autostart(request):
    name = "py-nobroker-%d" % os.getpid()
    with pytest.raises(shmbus.NoBroker) as e:
        shmbus.connect(name, autostart=False, timeout=1)
    assert isinstance(e.value, ConnectionError)
    assert e.value.code == -8 and e.value.errmsg and e.value.call == "connect"
    stop_bus(name)


def test_invalid_names(bus):
    with pytest.raises(shmbus.InvalidName) as e:
        bus.publisher("not a topic!")
    assert isinstance(e.value, ValueError) and "not a topic!" in str(e.value)
    with pytest.raises(shmbus.InvalidName):
        shmbus.connect("../escape")
    assert shmbus.topic_name_valid("/camera/image_raw")
    assert not shmbus.topic_name_valid("a b")


def test_missing_topic(bus):
    with pytest.raises(shmbus.NoTopic):
        bus.subscriber("nobody/here")


def test_every_code_has_a_class():
    names = [n for n in dir(shmbus) if isinstance(getattr(shmbus, n), type)
             and issubclass(getattr(shmbus, n), shmbus.Error) and n not in ("Error", "BufferInUse")]
    codes = sorted(getattr(shmbus, n).code for n in names)
    assert codes == list(range(-22, 0))
    for c in codes:
        assert shmbus.strerror(c)


def test_topics_and_info_match_the_cli(bus):
    with bus.publisher("/camera/imu", type=shmbus.msgs.Imu, slots=16) as pub, \
            bus.subscriber("/camera/imu", last=4) as sub:
        for i in range(3):
            pub.send(shmbus.msgs.Imu())
        assert sub.take() is not None
        topics = bus.topics()
        assert [(t.name, t.type_name) for t in topics] == [("/camera/imu", "shmbus.msgs.Imu")]
        info = bus.info("camera/imu")  # the same topic without the slash
        assert info.name == "/camera/imu" and info.type_name == "shmbus.msgs.Imu"
        assert info.slot_count == 16 and info.next_seq == 3
        assert info.max_message_size == pub.max_message_size == sub.max_message_size
        assert [p.pid for p in info.publishers] == [os.getpid()]
        assert info.publishers[0].published == 3
        (s,) = info.subscribers
        assert (s.pid, s.received, s.lost, s.lag) == (os.getpid(), 1, 0, 2)
        text = cli("info", "--bus", bus.name, "/camera/imu").stdout
        assert "shmbus.msgs.Imu" in text
        assert "%d slots" % info.slot_count in text
        assert "published:   3 sequence numbers" in text
        assert "schema:      %d bytes" % info.schema_size in text


def test_untyped_bytes_and_info(bus):
    with bus.publisher("raw", max_message_size=128) as pub, bus.subscriber("raw") as sub:
        assert pub.type_name == "" and sub.message_class is None
        seq = pub.send(bytearray(b"\x00\x01"))
        pub.send(memoryview(b"xyz"))
        (a, ia), (b, ib) = sub.take(), sub.take()
        assert (a, b) == (b"\x00\x01", b"xyz")
        assert (ia.seq, ib.seq) == (seq, seq + 1) and ia.size == 2
        assert ia.publisher == pub.stats()["publisher_id"]
        assert abs(ia.publish_time - ia.publish_ns / 1e9) < 1e-6 and ia.publish_ns > 0
        with pytest.raises(shmbus.MessageTooLarge):
            pub.send(b"x" * 129)
        assert sub.take() is None


def test_late_joiner_and_iteration(bus):
    with bus.publisher("hist", type="shmbus.msgs.Header", slots=8) as pub:
        for i in range(5):
            pub.send(shmbus.msgs.Header(stamp_ns=i))
        with bus.subscriber("hist", last=3) as sub:
            got = []
            for msg, info in sub:
                got.append(msg.stamp_ns)
                if len(got) == 3:
                    break
            assert got == [2, 3, 4]
        with bus.subscriber("hist", first=True) as sub:
            # from the first message the history holds; those before it
            # are counted lost
            msg, info = sub.take()
            assert msg.stamp_ns == info.seq == info.lost > 0


def test_waitset(bus):
    subs = [bus.subscriber("w%d" % i, create=True) for i in range(3)]
    with bus.publisher("w1") as pub, shmbus.WaitSet(subs) as ws:
        assert ws.wait(timeout=0) == []
        pub.send(b"x")
        assert ws.wait(timeout=10) == [subs[1]]
        with pytest.raises(shmbus.StateError):
            subs[1].close()  # still a member
        ws.remove(subs[1])
        subs[1].close()
        ws.interrupt()
        with pytest.raises(shmbus.Interrupted):
            ws.wait(timeout=10)


def test_bus_close_closes_what_it_opened(bus_name_):
    bus = shmbus.connect(bus_name_)
    pub = bus.publisher("t")
    sub = bus.subscriber("t")
    ws = bus.waitset([sub])
    bus.close()
    assert bus.closed and pub.closed and sub.closed
    with pytest.raises(shmbus.StateError):
        pub.send(b"x")
    with pytest.raises(shmbus.StateError):
        bus.topics()
    del ws


def test_broker_is_shared_with_the_cli(bus):
    cli("pub", "--bus", bus.name, "-q", "hello", "shmbus.msgs.Header", '{"frameId": "x"}')
    with bus.subscriber("hello", last=1) as sub:
        msg, _ = sub.recv(timeout=10)
    assert msg.frame_id == "x"
    assert bus.broker_pid > 0 and bus.name.startswith("py-")
