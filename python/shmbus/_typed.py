"""Protobuf classes from the schemas stored with topics.

A typed topic stores its message type name and a serialized
google.protobuf.FileDescriptorSet: the file that defines the type and
every file it imports, dependencies first. From those bytes this module
builds a descriptor pool and real message classes, so a subscriber needs
no generated ``_pb2`` module; and for a publisher it makes the same bytes
from a class (or from the shmbus.msgs set) to store with the topic.
"""

from google.protobuf import (descriptor_pb2, descriptor_pool, message, message_factory,
                             symbol_database)

from . import _shmbus

Message = message.Message


# A topic of a type without a bound gets this many bytes when the caller
# gives none, and its publisher grows it when a message does not fit: the
# C runtime's SHMBUS_TYPED_DEFAULT_MAX_SIZE (shmbus/typed.h), so a topic is
# the same whichever language creates it.
TYPED_DEFAULT_MAX_SIZE = 512

# The widest value of each scalar type, without its key (protobuf-c writes
# int32 and enums sign-extended: ten bytes when negative). As the C walk,
# codegen/bound.c, which gives generated code its TYPE__SHMBUS_MAX_SIZE.
_SCALAR_MAX = None


def _scalar_max():
    global _SCALAR_MAX
    if _SCALAR_MAX is None:
        from google.protobuf.descriptor import FieldDescriptor as F

        _SCALAR_MAX = {F.TYPE_INT32: 10, F.TYPE_INT64: 10, F.TYPE_UINT64: 10, F.TYPE_SINT64: 10,
              F.TYPE_ENUM: 10, F.TYPE_UINT32: 5, F.TYPE_SINT32: 5, F.TYPE_BOOL: 1,
              F.TYPE_FIXED32: 4, F.TYPE_SFIXED32: 4, F.TYPE_FLOAT: 4,
              F.TYPE_FIXED64: 8, F.TYPE_SFIXED64: 8, F.TYPE_DOUBLE: 8}
    return _SCALAR_MAX


def _varint_size(v):
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


def max_encoded_size(descriptor):
    """The largest encoding of a message type (every field at its widest,
    nested messages included, the largest member of each oneof), or None
    when it has none: a repeated, string, bytes or map field anywhere in
    it, or a type that contains itself. The bound the C tools and the
    generated code size a topic by."""
    scalar = _scalar_max()
    done = {}

    def walk(d, active, depth):
        if d.full_name in done:
            return done[d.full_name]
        if d.full_name in active or depth > 100:
            return None
        for f in d.fields:
            if f.label == f.LABEL_REPEATED or (f.type != f.TYPE_MESSAGE and f.type not in scalar):
                return None
        active.add(d.full_name)
        total, oneofs = 0, {}
        for f in d.fields:
            key = _varint_size(f.number << 3)
            if f.type == f.TYPE_MESSAGE:
                inner = walk(f.message_type, active, depth + 1)
                if inner is None:
                    return None
                size = key + _varint_size(inner) + inner
            else:
                size = key + scalar[f.type]
            if f.containing_oneof is None:
                total += size
            else:
                name = f.containing_oneof.name
                oneofs[name] = max(oneofs.get(name, 0), size)
        total += sum(oneofs.values())
        active.discard(d.full_name)
        if total > 0x7FFFFFFF:
            return None
        done[d.full_name] = total
        return total

    return walk(descriptor, set(), 0)


def topic_size(cls):
    """max_message_size for a topic of `cls` (None: a type known by name
    only) when the caller gives none, as the C runtime chooses it: the
    type's bound (at least 1), else TYPED_DEFAULT_MAX_SIZE."""
    bound = max_encoded_size(cls.DESCRIPTOR) if cls is not None else None
    if bound is None:
        return TYPED_DEFAULT_MAX_SIZE
    return bound or 1


def split_fds(data):
    """The serialized FileDescriptorProtos of a FileDescriptorSet, as they
    lie in it (field 1, repeated): kept as bytes so that a subset stored
    with a topic is byte for byte what the set held."""
    out = []
    pos, end = 0, len(data)
    view = memoryview(data)

    def varint():
        nonlocal pos
        shift = value = 0
        while True:
            if pos >= end or shift > 63:
                raise _error(_shmbus.BadMessage, "truncated FileDescriptorSet")
            b = view[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    while pos < end:
        key = varint()
        if key != (1 << 3 | 2):
            raise _error(_shmbus.BadMessage, "not a FileDescriptorSet (field key %d)" % key)
        n = varint()
        if n > end - pos:
            raise _error(_shmbus.BadMessage, "truncated FileDescriptorSet")
        out.append(bytes(view[pos:pos + n]))
        pos += n
    return out


def _varint_bytes(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def join_fds(files):
    """Serialize FileDescriptorProto bytes as a FileDescriptorSet."""
    return b"".join(b"\x0a" + _varint_bytes(len(f)) + f for f in files)


def _error(cls, text):
    exc = cls(text)
    exc.code = cls.code
    exc.errmsg = text
    return exc


def _factory(pool):
    """Makes classes of a pool's descriptors, one class per descriptor."""
    get = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if get is not None:
        return lambda desc: get(desc)
    if pool is descriptor_pool.Default():
        return symbol_database.Default().GetPrototype
    return message_factory.MessageFactory(pool).GetPrototype


class Schema:
    """A FileDescriptorSet loaded into a pool of its own."""

    def __init__(self, data, pool=None):
        """pool: where to add the files (default: a pool of their own)."""
        self.raw = split_fds(data)
        self.files = [descriptor_pb2.FileDescriptorProto.FromString(f) for f in self.raw]
        self.by_name = {f.name: i for i, f in enumerate(self.files)}
        self.pool = pool if pool is not None else descriptor_pool.DescriptorPool()
        self._make = _factory(self.pool)
        added = set()

        def add(i):
            if i in added:
                return
            added.add(i)
            for dep in self.files[i].dependency:
                if dep in self.by_name:
                    add(self.by_name[dep])
            self.pool.Add(self.files[i])

        for i in range(len(self.files)):
            add(i)
        self.home = {}  # message full name -> index of its file
        self._classes = {}
        for i, f in enumerate(self.files):
            for m in f.message_type:
                self._index(i, (f.package + "." if f.package else "") + m.name, m)

    def _index(self, i, name, m):
        self.home[name] = i
        for n in m.nested_type:
            self._index(i, name + "." + n.name, n)

    def has_type(self, name):
        return name in self.home

    def message_class(self, name):
        cls = self._classes.get(name)
        if cls is None:
            if name not in self.home:
                raise _error(_shmbus.TypeMismatch, "no message type '%s' in the schema" % name)
            cls = self._classes[name] = self._make(self.pool.FindMessageTypeByName(name))
        return cls

    def subset(self, name):
        """The FileDescriptorSet a topic of type `name` stores: its file and
        every file it imports, dependencies first."""
        order, seen = [], set()

        def visit(i):
            if i in seen:
                return
            seen.add(i)
            for dep in self.files[i].dependency:
                if dep in self.by_name:
                    visit(self.by_name[dep])
            order.append(self.raw[i])

        visit(self.home[name])
        return join_fds(order)

    def same_files(self, other, name):
        """Whether `other` defines `name` with the same files as this."""
        if name not in self.home or not other.has_type(name):
            return False
        a = split_fds(self.subset(name))
        b = split_fds(other.subset(name))
        pa = [descriptor_pb2.FileDescriptorProto.FromString(f) for f in a]
        pb = [descriptor_pb2.FileDescriptorProto.FromString(f) for f in b]
        return pa == pb


def schema_of_class(cls):
    """The FileDescriptorSet of a generated (or pool-made) message class."""
    order, seen = [], set()

    def visit(f):
        if f.name in seen:
            return
        seen.add(f.name)
        for dep in f.dependencies:
            visit(dep)
        fp = descriptor_pb2.FileDescriptorProto()
        f.CopyToProto(fp)
        order.append(fp.SerializeToString())

    visit(cls.DESCRIPTOR.file)
    return join_fds(order)


_schemas = {}  # schema bytes -> Schema
_classes = {}  # (type name, schema bytes) -> class or None


def _schema(data):
    s = _schemas.get(data)
    if s is None:
        s = _schemas[data] = Schema(data)
    return s


def class_for_topic(type_name, schema):
    """The message class for a topic's type and stored schema: the
    shmbus.msgs class when the schema defines the type as shmbus.msgs does
    (so isinstance works across topics), else one from a pool built from
    the schema; None for untyped topics and for types nothing describes."""
    if not type_name:
        return None
    key = (type_name, schema)
    if key in _classes:
        return _classes[key]
    from . import msgs

    cls = None
    builtin = msgs.SCHEMA
    if schema:
        s = _schema(schema)
        if builtin.has_type(type_name) and builtin.same_files(s, type_name):
            cls = builtin.message_class(type_name)
        elif s.has_type(type_name):
            cls = s.message_class(type_name)
    elif builtin.has_type(type_name):
        cls = builtin.message_class(type_name)
    _classes[key] = cls
    return cls


def resolve_type(kind):
    """(type name, schema bytes, class) for what a caller passed as a
    topic's type: None (untyped), a full type name, or a message class."""
    if kind is None:
        return None, None, None
    from . import msgs

    if isinstance(kind, str):
        if msgs.SCHEMA.has_type(kind):
            return kind, msgs.SCHEMA.subset(kind), msgs.SCHEMA.message_class(kind)
        return kind, None, None
    if not (isinstance(kind, type) and issubclass(kind, Message)):
        raise TypeError("type must be None, a type name or a protobuf message class, "
                        "not %r" % (kind,))
    name = kind.DESCRIPTOR.full_name
    if msgs.SCHEMA.has_type(name) and kind is msgs.SCHEMA.message_class(name):
        return name, msgs.SCHEMA.subset(name), kind
    return name, schema_of_class(kind), kind
