"""The shmbus.msgs message types (schemas/shmbus/msgs/*.proto) as protobuf
classes, without generated files: ``shmbus.msgs.Imu``, ``shmbus.msgs.Image``,
... are built at import from the FileDescriptorSet installed with the
package. Subscribers of topics of these types get instances of these very
classes. The set also holds the Foxglove types (schemas/foxglove), which
``shmbus.foxglove`` shows the same way.

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



def _export(namespace, module, package):
    """Put the message classes of `package` ("shmbus.msgs", "foxglove") in
    `namespace` (the globals of `module`) and a module per .proto file
    (`module`.<file>_pb2) in sys.modules; the sorted type names."""
    names = sorted(n for n in SCHEMA.home if n.startswith(package + "."))
    exported = []
    for name in names:
        short = name[len(package) + 1:]
        if "." not in short:  # nested types stay reachable through their parent
            namespace[short] = SCHEMA.message_class(name)
            exported.append(short)
    folder = package.replace(".", "/") + "/"
    for file in SCHEMA.files:
        if not file.name.startswith(folder):
            continue
        stem = file.name[len(folder):-len(".proto")] + "_pb2"
        mod = _types.ModuleType(module + "." + stem)
        mod.DESCRIPTOR = SCHEMA.pool.FindFileByName(file.name)
        for m in file.message_type:
            setattr(mod, m.name, namespace[m.name])
        namespace[stem] = mod
        _sys.modules[mod.__name__] = mod
    namespace["__all__"] = exported
    return names


TYPES = _export(globals(), __name__, "shmbus.msgs")
