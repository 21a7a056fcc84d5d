"""Zero copy out: views and the arrays over them. Using a view after it
ended raises; an array alive when the view ends keeps the slot held (never
handed back while readable); a view lapped while held is reported invalid;
an 8 MiB image arrives as an ndarray inside the topic's mapping."""

import numpy as np
import pytest

import shmbus
import shmbus.msgs
import shmbus.numpy


def _mapping_of(address):
    """The /proc/self/maps line of the mapping that holds `address`."""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= address < hi:
                return line.strip()
    return None


def test_view_used_after_release_raises(bus):
    with bus.publisher("t", max_message_size=64) as pub, bus.subscriber("t") as sub:
        pub.send(b"hello")
        with sub.view(timeout=5) as v:
            data = v.data
            assert bytes(data) == b"hello" and v.valid()
        assert v.released
        with pytest.raises(ValueError):  # the memoryview was revoked
            data[0]
        with pytest.raises(shmbus.StateError):
            v.data
        with pytest.raises(shmbus.StateError):
            np.frombuffer(v, dtype=np.uint8)  # no new export
        with pytest.raises(shmbus.StateError):
            v.valid()
        with pytest.raises(shmbus.StateError):
            shmbus.numpy.image(v)
        pub.send(b"next")
        assert sub.take()[0] == b"next"  # the subscriber went on


def test_array_alive_at_end_keeps_the_slot(bus):
    with bus.publisher("t", max_message_size=64, slots=4) as pub, \
            bus.subscriber("t") as sub:
        pub.send(b"abc")
        with pytest.raises(shmbus.BufferInUse):
            with sub.view(timeout=5) as v:
                arr = np.frombuffer(v, dtype=np.uint8)
                part = v.data[1:]  # a slice outlives the revoked memoryview
        assert not v.released
        with pytest.raises(shmbus.BufferInUse):
            sub.take()  # the message is still held
        with pytest.raises(shmbus.BufferInUse):
            sub.close()
        assert bytes(arr) == b"abc" and bytes(part) == b"bc"
        del arr
        assert not v.released
        del part
        assert v.released  # the last buffer went: the view ended
        assert sub.stats()["received"] == 1
        pub.send(b"d")
        assert sub.take()[0] == b"d"


def test_view_lapped_while_held_is_invalid(bus):
    with bus.publisher("t", max_message_size=64, slots=4) as pub, \
            bus.subscriber("t") as sub:
        pub.send(b"first")
        v = sub.view(timeout=5)
        assert v.valid() and bytes(v.data) == b"first"
        for i in range(8):  # two laps of the 4-slot ring
            pub.send(b"x%d" % i)
        assert not v.valid()
        lost = sub.stats()["lost"]
        with pytest.raises(shmbus.Lapped) as e:
            with v:
                pass
        assert e.value.code == shmbus.Lapped.code
        assert sub.stats()["lost"] == lost + 1 and sub.stats()["received"] == 0
        # release() says it instead of raising
        pub.send(b"again")
        got = []
        while True:
            try:
                w = sub.view(timeout=0)
            except shmbus.Timeout:
                break
            got.append(bytes(w.data))
            assert w.release() is True
        assert got[-1] == b"again"


def test_image_8mib_is_an_array_in_the_mapping(bus):
    h, w = 1024, 2048  # rgba8: 8 MiB of pixels
    with bus.publisher("cam", type=shmbus.msgs.Image, max_message_size=9 << 20,
                       slots=4) as pub, bus.subscriber("cam") as sub:
        with shmbus.numpy.image_loan(pub, h, w, "rgba8") as img:
            pixels = img.array
            pixels[:] = np.arange(w, dtype=np.uint8)[None, :, None]
            pixels[7, 9] = (1, 2, 3, 4)
            del pixels
        assert img.seq == 0
        with sub.view(timeout=10) as v:
            frame = shmbus.numpy.image(v)
            assert frame.shape == (h, w, 4) and frame.dtype == np.uint8
            assert not frame.flags.writeable and not frame.flags.owndata
            addr = frame.__array_interface__["data"][0]
            start = v.address
            assert start <= addr and addr + frame.nbytes <= start + v.info.size
            line = _mapping_of(addr)
            # the topic's data object, mapped read-only (a sealed memfd)
            assert line and ":cam:data" in line and " r--s " in line, line
            assert _mapping_of(addr + frame.nbytes - 1) == line
            assert list(frame[7, 9]) == [1, 2, 3, 4] and frame[100, 300, 0] == 300 % 256
            mean = float(frame.mean())
            del frame
        # the same message decoded the ordinary way (a copy) agrees
        assert v.info.size > 8 << 20 and mean > 0


def test_image_mono16_and_step_padding(bus):
    with bus.publisher("cam", type=shmbus.msgs.Image, max_message_size=1 << 16) as pub, \
            bus.subscriber("cam") as sub:
        data = np.arange(4 * 6, dtype="<u2").reshape(4, 6)
        padded = np.zeros((4, 8), dtype="<u2")
        padded[:, :6] = data
        pub.send(shmbus.msgs.Image(width=6, height=4, encoding="mono16", step=16,
                                   data=padded.tobytes()))
        with sub.view(timeout=5) as v:
            a = shmbus.numpy.image(v)
            assert a.shape == (4, 6, 1)
            assert (a[:, :, 0] == data).all()
            del a


def test_image_that_lies_about_its_size_is_refused(bus):
    with bus.publisher("cam", type=shmbus.msgs.Image) as pub, bus.subscriber("cam") as sub:
        pub.send(shmbus.msgs.Image(width=100, height=100, encoding="rgb8", data=b"123"))
        with sub.view(timeout=5) as v:
            with pytest.raises(shmbus.BadMessage):
                shmbus.numpy.image(v)


def test_loan_publishes_on_exit_and_discards_on_error(bus):
    with bus.publisher("t", max_message_size=32) as pub, bus.subscriber("t") as sub:
        with pub.loan(5) as buf:
            buf[:] = b"12345"
        assert sub.take()[0] == b"12345"
        with pytest.raises(RuntimeError):
            with pub.loan() as buf:
                buf[:3] = b"bad"
                raise RuntimeError("producer failed")
        assert sub.take() is None  # discarded: nothing published
        with pytest.raises(ValueError):
            buf[0] = 1  # the loan's memoryview was revoked
        loan = pub.loan()
        with loan as buf:
            buf[:2] = b"ok"
            loan.size = 2
        assert sub.take()[0] == b"ok" and loan.seq == 2
        with pytest.raises(shmbus.MessageTooLarge):
            pub.loan(33)


def test_loan_with_live_array_is_not_published(bus):
    with bus.publisher("t", max_message_size=32) as pub, bus.subscriber("t") as sub:
        with pytest.raises(shmbus.BufferInUse):
            with pub.loan(4) as buf:
                arr = np.frombuffer(buf, dtype=np.uint8)
                arr[:] = 9
        assert sub.take() is None
        with pytest.raises(shmbus.StateError):
            pub.loan()  # the slot is still lent out
        del arr
        pub.send(b"after")
        assert sub.take()[0] == b"after"


def test_foxglove_raw_image_is_an_array(bus):
    """The demo camera's type, foxglove.RawImage (fixed32 sizes, no
    is_bigendian), from shmbus.foxglove: a loan writes it, a view reads it."""
    import shmbus.foxglove
    assert "RawImage" in shmbus.foxglove.__all__
    assert shmbus.foxglove.image_pb2.RawImage is shmbus.foxglove.RawImage
    h, w = 48, 64
    with bus.publisher("cam", type="foxglove.RawImage", max_message_size=h * w * 3 + 256) as pub, \
            bus.subscriber("cam") as sub:
        assert sub.message_class is shmbus.foxglove.RawImage
        with shmbus.numpy.image_loan(pub, h, w, "rgb8") as img:
            img.array[:] = np.arange(h * w * 3, dtype=np.uint32).reshape(h, w, 3) % 251
        with sub.view(timeout=5) as v:
            frame = shmbus.numpy.image(v)
            assert frame.shape == (h, w, 3)
            assert (frame == np.arange(h * w * 3).reshape(h, w, 3) % 251).all()
            del frame
        msg = shmbus.foxglove.RawImage()
        msg.width, msg.height, msg.encoding, msg.step = 2, 1, "mono16", 4
        msg.data = bytes([1, 0, 2, 1])
        pub.send(msg)
        with sub.view(timeout=5) as v:
            a = shmbus.numpy.image(v)
            assert a.dtype == np.dtype("<u2") and a[0, :, 0].tolist() == [1, 258]
            del a
