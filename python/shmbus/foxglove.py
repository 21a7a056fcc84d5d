"""The Foxglove message types (schemas/foxglove/*.proto, package foxglove)
as protobuf classes: ``shmbus.foxglove.RawImage``, ``shmbus.foxglove.Log``,
... the types Foxglove's panels draw and the demo camera publishes. Built
like ``shmbus.msgs`` from the same installed FileDescriptorSet; modules
``shmbus.foxglove.<file>_pb2`` stand in for protoc's generated code.
"""

from . import msgs as _msgs

TYPES = _msgs._export(globals(), __name__, "foxglove")
