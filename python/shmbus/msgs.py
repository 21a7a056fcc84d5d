"""The shmbus.msgs message types (schemas/shmbus/msgs/*.proto) as protobuf
classes, without generated files: ``shmbus.msgs.Imu``, ``shmbus.msgs.Image``,
... are built at import from the FileDescriptorSet installed with the
package. Subscribers of topics of these types get instances of these very
classes.

The files go into protobuf's default descriptor pool, and each also shows
as a module ``shmbus.msgs.<file>_pb2`` (``shmbus.msgs.header_pb2``, ...), so
code that protoc generated for the user's own .proto files importing
"shmbus/msgs/header.proto" imports and works unchanged.
"""

import pathlib as _pathlib
import sys as _sys
import types as _types

from google.protobuf import descriptor_pool as _descriptor_pool

from . import _typed

_FDS = (_pathlib.Path(__file__).parent / "msgs.fds").read_bytes()
try:
    SCHEMA = _typed.Schema(_FDS, pool=_descriptor_pool.Default())
except Exception:  # the default pool holds other files of these names
    SCHEMA = _typed.Schema(_FDS)

TYPES = sorted(n for n in SCHEMA.home if n.startswith("shmbus.msgs."))

__all__ = []
for _name in TYPES:
    _short = _name[len("shmbus.msgs."):]
    if "." not in _short:  # nested types stay reachable through their parent
        globals()[_short] = SCHEMA.message_class(_name)
        __all__.append(_short)

for _file in SCHEMA.files:
    if not _file.name.startswith("shmbus/msgs/"):
        continue
    _stem = _file.name[len("shmbus/msgs/"):-len(".proto")] + "_pb2"
    _mod = _types.ModuleType(__name__ + "." + _stem)
    _mod.DESCRIPTOR = SCHEMA.pool.FindFileByName(_file.name)
    for _m in _file.message_type:
        setattr(_mod, _m.name, globals()[_m.name])
    globals()[_stem] = _mod
    _sys.modules[_mod.__name__] = _mod
