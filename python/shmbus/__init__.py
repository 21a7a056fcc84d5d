"""shmbus: a shared-memory publish/subscribe bus for one Linux host.

    import shmbus
    from shmbus.msgs import Imu

    bus = shmbus.connect()                        # $SHMBUS_BUS or "default"
    pub = bus.publisher("imu", type=Imu)          # creates the topic
    sub = bus.subscriber("imu", last=10)          # typed from the topic's schema
    pub.send(Imu(linear_acceleration={"z": 9.81}))
    msg, info = sub.recv(timeout=1.0)             # None on timeout
    print(msg.linear_acceleration.z, info.seq, info.lost)

Typed topics decode with google.protobuf from the schema stored with the
topic (no generated files needed); untyped ones give bytes. Zero copy:
``with sub.view() as v:`` (``v.data``, ``shmbus.numpy.image(v)``) and
``with pub.loan(n) as buf:``. Waits release the GIL, Ctrl-C ends them.
Errors are exceptions derived from shmbus.Error with the bus's ``code`` and
text (shmbus.TypeMismatch, shmbus.NoBroker, ...).
"""

import dataclasses
import types as _types
import weakref

from . import _shmbus, _typed
from ._shmbus import (START_FIRST, START_LAST, START_NEW, LAPPED_OLDEST, LAPPED_PACE,
                      MsgInfo, View, Loan, Error, BufferInUse, TypeMismatch, BadMessage,
                      NoTopic, library_version, strerror, topic_name_valid)

for _name in dir(_shmbus):
    _obj = getattr(_shmbus, _name)
    if isinstance(_obj, type) and issubclass(_obj, Error):
        globals()[_name] = _obj

__version__ = "1.0.0"


def connect(bus=None, *, autostart=True, broker_path=None, timeout=None, key_file=None):
    """Connect to the bus `bus` (None: $SHMBUS_BUS, else "default"),
    starting its broker when none runs. Use it as a context manager, or
    close() it: that closes its publishers, subscribers and wait sets."""
    return Bus(bus, autostart=autostart, broker_path=broker_path, timeout=timeout,
               key_file=key_file)


@dataclasses.dataclass
class TopicInfo:
    """What ``shmbus info TOPIC`` shows."""
    name: str
    type_name: str
    slot_count: int
    slot_size: int
    max_message_size: int
    history: int
    integrity: bool
    flags: int
    waiters: int
    schema_versions: int
    grown: int
    schema_size: int
    segment_size: int
    next_seq: int
    broker_bytes: int
    publishers: list   # of SimpleNamespace(pid, id, published, skipped)
    subscribers: list  # of SimpleNamespace(pid, id, received, lost, next_seq, lag,
                       #                    rejected, waiting)


def _seconds_ns(s):
    return None if s is None else int(s * 1e9)


class _Handle:
    """Closes on leaving a `with` block; says what it is."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        kind = type(self).__name__
        if self.closed:
            return "<shmbus.%s closed>" % kind
        return "<shmbus.%s %r %s>" % (kind, self.topic, self.type_name or "untyped")


class Bus(_shmbus.Bus):
    """A connection to a bus (see connect())."""

    def __init__(self, name=None, **kw):
        super().__init__(name, **kw)
        self._children = weakref.WeakSet()

    __enter__ = _Handle.__enter__
    __exit__ = _Handle.__exit__

    def __repr__(self):
        return "<shmbus.Bus %s>" % ("closed" if self.closed else repr(self.name))

    def _own(self, child):
        self._children.add(child)
        return child

    def publisher(self, topic, type=None, *, max_message_size=0, slots=0, history=0,
                  integrity=False, grow=None):
        """A publisher on `topic`, creating the topic when it does not exist.

        type: None (untyped bytes), a protobuf message class, or a type name
        ("shmbus.msgs.Imu"); a topic it creates stores the type's schema.
        max_message_size: bytes (0: the default: for a typed topic the
        type's largest encoding, or 512 when it has none, as in C);
        slots: ring size; history: how many messages late joiners may ask
        for; integrity: tag every message (SHMBUS_TOPIC_INTEGRITY);
        grow: a message that does not fit grows the topic instead of
        failing (default: for a typed publisher opened without a size)."""
        return self._own(Publisher(self, topic, type, max_message_size=max_message_size,
                                   slot_count=slots, history=history, integrity=integrity,
                                   grow=grow))

    def subscriber(self, topic, type=None, *, last=None, first=False, spin=None,
                   stall_timeout=None, create=False, lapped=None, max_message_size=0,
                   slots=0, history=0, integrity=False):
        """A subscriber of `topic`.

        type: None (whatever the topic has: messages decode from its stored
        schema, or arrive as bytes if untyped), a message class (used to
        decode; the topic must have its type), or a type name.
        last=N: start with the last N messages still in the ring; first:
        from the topic's first message; otherwise only new messages.
        spin: seconds a wait spins before it sleeps (None: the library's
        self-tuned default, 0: never). stall_timeout: seconds after which a
        sequence number given out but not published is skipped.
        create: create the topic (as the publisher options say) if missing.
        lapped: LAPPED_PACE (default) or LAPPED_OLDEST."""
        start = START_FIRST if first else START_LAST if last else START_NEW
        return self._own(Subscriber(
            self, topic, type, start=start, last=last or 0,
            spin_ns=_seconds_ns(spin), stall_timeout_ns=_seconds_ns(stall_timeout),
            create=create, lapped=lapped, max_message_size=max_message_size,
            slot_count=slots, history=history, integrity=integrity))

    def waitset(self, subscribers=()):
        """A WaitSet over `subscribers`, closed with the bus."""
        return self._own(WaitSet(subscribers))

    def topics(self):
        """[(name, type_name)] of the topics this user may subscribe to."""
        return [_types.SimpleNamespace(name=n, type_name=t) for n, t in super().topics()]

    def info(self, topic):
        """TopicInfo: layout, counts, each publisher and subscriber."""
        d = super().info(topic)
        d["publishers"] = [_types.SimpleNamespace(**c) for c in d["publishers"]]
        d["subscribers"] = [_types.SimpleNamespace(**c) for c in d["subscribers"]]
        return TopicInfo(**d)

    def close(self):
        """Close every publisher, subscriber and wait set made through this
        bus, then the connection."""
        children = list(self._children)
        for c in children:
            if isinstance(c, WaitSet):
                c.close()
        for c in children:
            if not isinstance(c, WaitSet):
                c.close()
        super().close()


def _type_error(text):
    return _typed._error(TypeMismatch, text)


class Publisher(_Handle, _shmbus.Publisher):
    """Publishes messages on a topic (see Bus.publisher)."""

    def __init__(self, bus, topic, type=None, *, max_message_size=0, grow=None, **kw):
        name, schema, cls = _typed.resolve_type(type)
        if name is not None and not max_message_size:
            # As the C runtime does: sized from the type, grown when a
            # message does not fit (a topic another program created
            # smaller, an unbounded type's guess).
            max_message_size = _typed.topic_size(cls)
            if grow is None:
                grow = True
        super().__init__(bus, topic, type_name=name, schema=schema,
                         max_message_size=max_message_size, grow=bool(grow), **kw)
        self.message_class = cls

    def send(self, msg):
        """Publish a protobuf message (serialized) or a bytes-like object
        (as is). Returns its sequence number."""
        if isinstance(msg, _typed.Message):
            type_name = self.type_name
            if type_name and msg.DESCRIPTOR.full_name != type_name:
                raise _type_error("topic '%s' has type '%s', not '%s'" % (
                    self.topic, type_name, msg.DESCRIPTOR.full_name))
            msg = msg.SerializeToString()
        return super().send(msg)


class Subscriber(_Handle, _shmbus.Subscriber):
    """Takes messages from a topic (see Bus.subscriber). Iterating blocks
    for each message and ends when the topic is removed."""

    def __init__(self, bus, topic, type=None, **kw):
        name, schema, cls = _typed.resolve_type(type)
        super().__init__(bus, topic, type_name=name, schema=schema, **kw)
        self.message_class = cls or _typed.class_for_topic(self.type_name, self.schema)

    def decode(self, data):
        """A message of the topic's type from its bytes (bytes when the
        topic has no class); BadMessage if they do not decode."""
        cls = self.message_class
        if cls is None:
            return bytes(data)
        try:
            return cls.FromString(data)
        except Exception as e:  # google.protobuf.message.DecodeError
            raise _typed._error(BadMessage, "a message on '%s' does not decode as %s: %s" % (
                self.topic, cls.DESCRIPTOR.full_name, e)) from None

    def take(self):
        """(message, MsgInfo), or None when there is nothing new."""
        r = super().take()
        if r is None or self.message_class is None:
            return r
        return self.decode(r[0]), r[1]

    def recv(self, timeout=None):
        """(message, MsgInfo), or None after `timeout` seconds (None:
        forever). Blocks with the GIL released; Ctrl-C ends it."""
        r = super().recv(timeout)
        if r is None or self.message_class is None:
            return r
        return self.decode(r[0]), r[1]

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self.recv()
        except NoTopic:  # removed, and everything it held taken
            raise StopIteration from None

    async def recv_async(self):
        """Await the next (message, MsgInfo): asyncio's loop watches the
        subscriber's descriptor (no polling)."""
        from . import aio
        return await aio.recv(self)

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.recv_async()
        except NoTopic:
            raise StopAsyncIteration from None


class WaitSet(_shmbus.WaitSet):
    """Wait on many subscribers at once: wait(timeout) returns those with
    something to take; fileno() serves event loops."""

    __enter__ = _Handle.__enter__
    __exit__ = _Handle.__exit__

    async def wait_async(self):
        """Await until a member has something; returns those members."""
        from . import aio
        return await aio.wait(self)
