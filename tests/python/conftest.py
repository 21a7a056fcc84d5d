"""What the Python tests share: a bus of their own per test (its broker
started by the first connect and stopped afterwards), the shmbus CLI, and
sample messages with every field set.

meson runs these with PYTHONPATH at the build tree's python/ and with
SHMBUSD, SHMBUS_CLI and SHMBUS_RUNTIME_DIR set (tests/python/meson.build).
In CI (CI set) a skipped test counts as failed: nothing skips silently.
"""

import os
import re
import subprocess

import pytest

import shmbus

CLI = os.environ.get("SHMBUS_CLI", "shmbus")
TIMEOUT = 60  # seconds any CLI call may take on a loaded machine


def bus_name(request):
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:40]
    return "py-%s-%d" % (tag, os.getpid())


def cli(*args, check=True, input=None):
    """Run `shmbus ARGS`; its CompletedProcess (text)."""
    r = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=TIMEOUT,
                       input=input)
    if check and r.returncode != 0:
        raise AssertionError("shmbus %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                          r.stdout, r.stderr))
    return r


def stop_bus(name):
    cli("stop", "--bus", name, check=False)
    left = [f for f in os.listdir("/dev/shm") if name in f]
    assert not left, "files of bus %s left in /dev/shm: %s" % (name, left)


@pytest.fixture
def bus_name_(request):
    name = bus_name(request)
    yield name
    stop_bus(name)


@pytest.fixture
def bus(bus_name_):
    with shmbus.connect(bus_name_) as b:
        yield b


def sample(cls):
    """A message of `cls` with every field set to a value that is not its
    default (repeated fields: two values), so a round trip that drops or
    mangles any field shows."""
    msg = cls()
    fill(msg, 0)
    return msg


def fill(msg, depth):
    from google.protobuf.descriptor import FieldDescriptor as F

    for f in msg.DESCRIPTOR.fields:
        if f.message_type and depth > 3:
            continue
        field = getattr(msg, f.name)
        if f.message_type and f.message_type.GetOptions().map_entry:
            key = _scalars(f.message_type.fields_by_name["key"])[0]
            val_f = f.message_type.fields_by_name["value"]
            if val_f.message_type:
                fill(field[key], depth + 1)
            else:
                field[key] = _scalars(val_f)[0]
        elif f.label == F.LABEL_REPEATED:
            if f.message_type:
                fill(field.add(), depth + 1)
                fill(field.add(), depth + 1)
            else:
                field.extend(_scalars(f))
        elif f.message_type:
            fill(field, depth + 1)
        else:
            setattr(msg, f.name, _scalars(f)[0])


def _scalars(f):
    from google.protobuf.descriptor import FieldDescriptor as F

    t, n = f.type, f.number
    if t == F.TYPE_ENUM:
        vals = [v.number for v in f.enum_type.values]
        return [vals[-1], vals[len(vals) // 2]]
    if t == F.TYPE_BOOL:
        return [True, True]
    if t == F.TYPE_STRING:
        return ["%s-%d" % (f.name, n), "\u00e9/%d" % n]
    if t == F.TYPE_BYTES:
        return [bytes([n, 0, 255]), b"\x01" * n]
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return [n + 0.5, -0.25]
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return [4000000000 - n, n]
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return [(1 << 63) + n, n]
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return [-(1 << 40) - n, n]
    return [-1000 - n, n]  # int32, sint32, sfixed32


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped:
        report.outcome = "failed"
        report.longrepr = "skipped in CI (CI is set): %s" % (report.longrepr,)
