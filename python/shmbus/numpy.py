"""NumPy arrays over images in shared memory, without a copy.

    with sub.view() as v:
        frame = shmbus.numpy.image(v)        # (height, width, channels), read-only
        brightness = frame.mean()
        del frame                            # before the view ends

    with shmbus.numpy.image_loan(pub, 720, 1280, "rgb8") as img:
        img.array[:] = ...                   # written in place, published on exit

Works for shmbus.msgs.Image, foxglove.RawImage (what the demo camera
publishes) and any message with the same field names (width, height,
encoding, step, data; is_bigendian if it has one), integers as varints or
fixed32.

An array over a view reads the slot itself, so the view cannot end while
the array is alive: leaving the ``with`` block with the array still
referenced raises shmbus.BufferInUse and keeps the message held until the
array is deleted (the subscriber takes nothing meanwhile). Arrays cannot be
revoked in place, so this is how no array ever reads a slot the bus has
given back. A publisher that laps the subscriber while the array is used
still overwrites it: the view's exit raises shmbus.Lapped then, so a result
computed from a torn frame is never taken for a good one silently.
"""

import functools

import numpy as np

from . import _shmbus, _typed, msgs

# encoding -> (dtype, channels). Names as ROS and Foxglove use them.
ENCODINGS = {
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "8UC3": (np.uint8, 3),
    "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4), "8UC4": (np.uint8, 4),
    "rgb16": (np.uint16, 3), "bgr16": (np.uint16, 3),
    "rgba16": (np.uint16, 4), "bgra16": (np.uint16, 4),
    "32FC1": (np.float32, 1), "32FC3": (np.float32, 3),
    "bayer_rggb8": (np.uint8, 1), "bayer_bggr8": (np.uint8, 1),
    "bayer_gbrg8": (np.uint8, 1), "bayer_grbg8": (np.uint8, 1),
    "yuv422": (np.uint8, 2), "uyvy": (np.uint8, 2), "yuyv": (np.uint8, 2),
}

_FIELDS = ("width", "height", "encoding", "step", "data")  # is_bigendian optional


@functools.lru_cache(maxsize=64)
def _numbers(descriptor):
    by_name = {f.name: f.number for f in descriptor.fields}
    missing = [n for n in _FIELDS if n not in by_name]
    if missing:
        raise TypeError("%s is not an image type (no field %s)" % (
            descriptor.full_name, ", ".join(missing)))
    return by_name


def _pixel_format(encoding, bigendian):
    try:
        dtype, channels = ENCODINGS[encoding]
    except KeyError:
        raise ValueError("image encoding %r is not one of %s" % (
            encoding, ", ".join(sorted(ENCODINGS)))) from None
    dtype = np.dtype(dtype)
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if bigendian else "<")
    return dtype, channels


def image(view, message_class=None):
    """An ndarray (height, width, channels) over the pixel bytes of the
    image message a View holds, without a copy (read-only). The message
    class gives the field numbers: the subscriber's by default."""
    cls = message_class or getattr(view.subscriber, "message_class", None) or msgs.Image
    num = _numbers(cls.DESCRIPTOR)
    fields = _shmbus.wire_fields(view)

    def scalar(name):
        f = fields.get(num.get(name))
        return f[2] if f and f[0] in (0, 1, 5) else 0  # varint, fixed64, fixed32

    enc = fields.get(num["encoding"])
    data = fields.get(num["data"])
    if not enc or enc[0] != 2 or not data or data[0] != 2:
        raise _typed._error(_shmbus.BadMessage,
                            "message %d has no encoding or no data" % view.info.seq)
    encoding = bytes(view.data[enc[1]:enc[1] + enc[2]]).decode("ascii", "replace")
    height, width, step = scalar("height"), scalar("width"), scalar("step")
    dtype, channels = _pixel_format(encoding, scalar("is_bigendian"))
    row = width * channels * dtype.itemsize
    step = step or row
    offset, length = data[1], data[2]
    if step < row or (height and (height - 1) * step + row > length):
        raise _typed._error(_shmbus.BadMessage, (
            "image %d: %dx%d %s with step %d needs more than its %d data bytes"
            % (view.info.seq, width, height, encoding, step, length)))
    return np.ndarray((height, width, channels), dtype=dtype, buffer=view, offset=offset,
                      strides=(step, channels * dtype.itemsize, dtype.itemsize))


class image_loan:
    """An image written in place into a publisher's next slot:

        with image_loan(pub, height, width, "rgb8", header=None) as img:
            img.array[:] = pixels     # or camera.read_into(img.array)

    ``img.array`` is a writable ndarray (height, width, channels) over the
    pixel bytes; the message (header, size, encoding, step, then the
    pixels as its last field) is published when the block ends without an
    exception, and ``img.seq`` is its sequence number. An array still
    referenced when the block ends would let the slot be written after
    publishing: then nothing is published (shmbus.BufferInUse), so use the
    array in expressions or ``del`` it before the end."""

    def __init__(self, pub, height, width, encoding="rgb8", header=None, message_class=None):
        cls = message_class or pub.message_class or msgs.Image
        num = _numbers(cls.DESCRIPTOR)
        dtype, channels = _pixel_format(encoding, False)
        step = width * channels * dtype.itemsize
        head = cls(width=width, height=height, encoding=encoding, step=step)
        if header is not None:
            head.header.CopyFrom(header)
        n = height * step
        prefix = head.SerializeToString() + _typed._varint_bytes(num["data"] << 3 | 2) + \
            _typed._varint_bytes(n)
        self.loan = pub.loan(len(prefix) + n)
        buf = self.loan.data
        buf[:len(prefix)] = prefix
        buf.release()
        self._offset = len(prefix)
        self._shape = (height, width, channels)
        self._dtype = dtype
        self.seq = None

    @property
    def array(self):
        """The pixels in the slot, as a writable ndarray."""
        return np.ndarray(self._shape, dtype=self._dtype, buffer=self.loan,
                          offset=self._offset)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.loan.__exit__(*exc)
        self.seq = self.loan.seq
        return False
