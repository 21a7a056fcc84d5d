"""Typed messages between C and Python: the `shmbus pub` CLI (C, pbjson)
publishes every shmbus.msgs type and Python takes it as a real message
object decoded from the topic's stored schema; Python publishes and
`shmbus echo` prints the same JSON; a user's own class (compiled by protoc
here, never imported by the subscriber) travels the same way."""

import json
import subprocess
import sys

import pytest
from google.protobuf import json_format

import shmbus
import shmbus.msgs
from conftest import CLI, TIMEOUT, cli, sample

TYPES = [t for t in shmbus.msgs.TYPES if "." not in t[len("shmbus.msgs."):]]


def test_message_set_is_complete():
    # The package carries the whole schemas/ set, so TYPES is not empty by
    # accident (a test over an empty list would pass).
    assert {"shmbus.msgs.Imu", "shmbus.msgs.Image", "shmbus.msgs.PointCloud",
            "shmbus.msgs.Odometry", "shmbus.msgs.LaserScan"} <= set(TYPES)


@pytest.mark.parametrize("type_name", TYPES)
def test_c_publishes_python_takes(bus, type_name):
    cls = shmbus.msgs.SCHEMA.message_class(type_name)
    want = sample(cls)
    topic = "c2py/" + type_name.rsplit(".", 1)[1]
    cli("pub", "--bus", bus.name, "-q", topic, type_name, json_format.MessageToJson(want))
    with bus.subscriber(topic, last=1) as sub:
        got, info = sub.recv(timeout=10)
    assert type(got) is getattr(shmbus.msgs, type_name.rsplit(".", 1)[1])
    assert got == want, "C encoded\n%s\nPython decoded\n%s" % (want, got)
    assert info.seq == 0 and info.lost == 0 and info.size == want.ByteSize()


def _echo(bus, topic, n=1, *extra):
    return subprocess.Popen([CLI, "echo", "--bus", bus.name, topic, "-n", str(n), "--wait",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_subscribed(bus, topic, subscribers):
    """Until the topic exists and has that many subscribers (the broker's
    count is the event; bounded)."""
    import time
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if len(bus.info(topic).subscribers) >= subscribers:
                return
        except shmbus.NoTopic:
            pass
        time.sleep(0.01)
    raise AssertionError("no subscriber showed on %s" % topic)


@pytest.mark.parametrize("type_name", TYPES)
def test_python_publishes_echo_prints(bus, type_name):
    cls = getattr(shmbus.msgs, type_name.rsplit(".", 1)[1])
    msg = sample(cls)
    topic = "py2c/" + cls.DESCRIPTOR.name
    with bus.publisher(topic, type=cls) as pub:
        echo = _echo(bus, topic, 1, "--full")
        _wait_subscribed(bus, topic, 1)
        pub.send(msg)
        out, err = echo.communicate(timeout=TIMEOUT)
    assert echo.returncode == 0, err
    got = json.loads(out.splitlines()[0])
    want = json.loads(json_format.MessageToJson(msg))
    assert got == want


def test_type_by_name_and_schema_matches_c(bus):
    # A topic created by Python with a type name stores the schema the C
    # tools store: publishers of both kinds bring one schema version.
    with bus.publisher("imu", type="shmbus.msgs.Imu") as pub:
        pub.send(shmbus.msgs.Imu())
        cli("pub", "--bus", bus.name, "-q", "imu", "shmbus.msgs.Imu", "{}")
        assert bus.info("imu").schema_versions == 1


def test_user_class_without_pb2_on_the_subscriber(bus, tmp_path):
    proto = tmp_path / "robot" / "arm.proto"
    proto.parent.mkdir()
    proto.write_text('''syntax = "proto3";
package robot;
import "shmbus/msgs/header.proto";
message Joint { string name = 1; double position = 2; }
message Arm { shmbus.msgs.Header header = 1; repeated Joint joints = 2;
              map<string, int32> limits = 3; enum Mode { IDLE = 0; MOVING = 1; }
              Mode mode = 4; }
''')
    import os
    schemas = os.path.join(os.path.dirname(__file__), "..", "..", "schemas")
    subprocess.run(["protoc", "--proto_path=%s" % tmp_path, "--proto_path=%s" % schemas,
                    "--python_out=%s" % tmp_path, "robot/arm.proto",
                    "shmbus/msgs/header.proto"], check=True, timeout=TIMEOUT)
    # The publisher imports the generated module in a process of its own;
    # this process never imports it.
    code = '''
import sys, shmbus
sys.path.insert(0, %r)
from robot import arm_pb2
with shmbus.connect(%r) as bus, bus.publisher("arm", type=arm_pb2.Arm) as pub:
    m = arm_pb2.Arm(mode=arm_pb2.Arm.MOVING)
    m.header.frame_id = "base"
    m.joints.add(name="elbow", position=1.25)
    m.limits["elbow"] = 3
    pub.send(m)
''' % (str(tmp_path), bus.name)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)
    assert "robot.arm_pb2" not in sys.modules
    with bus.subscriber("arm", last=1) as sub:
        msg, _ = sub.recv(timeout=10)
    assert msg.DESCRIPTOR.full_name == "robot.Arm"
    assert msg.header.frame_id == "base" and msg.joints[0].name == "elbow"
    assert msg.joints[0].position == 1.25 and msg.limits["elbow"] == 3
    assert msg.mode == msg.DESCRIPTOR.enum_types_by_name["Mode"].values_by_name["MOVING"].number
    # ... and the C tools decode it from the schema the Python class stored.
    out = cli("echo", "--bus", bus.name, "arm", "--last", "1", "-n", "1").stdout
    assert json.loads(out) == {"header": {"frameId": "base"},
                               "joints": [{"name": "elbow", "position": 1.25}],
                               "limits": {"elbow": 3}, "mode": "MOVING"}


def test_wrong_type_is_type_mismatch(bus):
    with bus.publisher("imu", type=shmbus.msgs.Imu):
        with pytest.raises(shmbus.TypeMismatch) as e:
            bus.subscriber("imu", type=shmbus.msgs.Image)
    assert e.value.code == shmbus.TypeMismatch.code < 0
    assert "shmbus.msgs.Imu" in str(e.value) and "shmbus.msgs.Image" in str(e.value)


def test_send_of_another_type_is_refused(bus):
    with bus.publisher("imu", type=shmbus.msgs.Imu) as pub:
        with pytest.raises(shmbus.TypeMismatch):
            pub.send(shmbus.msgs.Image())
        assert pub.stats()["published"] == 0


def test_undecodable_bytes_are_bad_message(bus):
    with bus.publisher("imu", type=shmbus.msgs.Imu) as pub, bus.subscriber("imu") as sub:
        pub.send(b"\xff\xff\xff")  # raw bytes are the caller's business
        with pytest.raises(shmbus.BadMessage):
            sub.take()
        pub.send(shmbus.msgs.Imu(orientation={"w": 1.0}))
        msg, info = sub.take()  # the next message is fine
        assert msg.orientation.w == 1.0 and info.seq == 1


@pytest.mark.parametrize("type_name", ["shmbus.msgs.Vector3", "shmbus.msgs.Pose",
                                       "shmbus.msgs.Imu", "shmbus.msgs.Image"])
def test_typed_topic_is_sized_as_c_sizes_it(bus, type_name):
    # A typed topic opened without a size gets the size the C runtime and
    # the CLI give it (the type's largest encoding, else 512 B), whichever
    # language creates it.
    cls = getattr(shmbus.msgs, type_name.rsplit(".", 1)[1])
    with bus.publisher("size/py", type=cls) as pub:
        cli("pub", "--bus", bus.name, "size/c", type_name, "{}", "-q")
        py, c = bus.info("size/py").max_message_size, bus.info("size/c").max_message_size
        assert py == c, "Python sized %s at %d B, C at %d B" % (type_name, py, c)
        assert pub.max_message_size == py
    want = {"shmbus.msgs.Vector3": 27, "shmbus.msgs.Pose": 67}.get(type_name, 512)
    assert py == want


def test_typed_publisher_grows_a_topic_made_smaller(bus):
    # The CLI made the Imu topic at 512 B; a Python publisher opened
    # without a size sends an Imu three times that: the topic grows and
    # the subscriber gets it whole, as with a C typed publisher.
    cli("pub", "--bus", bus.name, "imu", "shmbus.msgs.Imu", "{}", "-q")
    assert bus.info("imu").max_message_size == 512
    with bus.subscriber("imu", type=shmbus.msgs.Imu) as sub, \
            bus.publisher("imu", type=shmbus.msgs.Imu) as pub:
        big = shmbus.msgs.Imu(header={"frame_id": "f" * 1500}, orientation={"w": 1.0})
        pub.send(big)
        msg, _ = sub.recv(timeout=TIMEOUT)
    assert msg == big
    assert bus.info("imu").max_message_size >= big.ByteSize()


def test_max_encoded_size_follows_the_c_walk():
    from shmbus import _typed

    assert _typed.max_encoded_size(shmbus.msgs.Quaternion.DESCRIPTOR) == 4 * 9
    # Header has a string (frame_id): no bound.
    assert _typed.max_encoded_size(shmbus.msgs.Imu.DESCRIPTOR) is None
    assert _typed.topic_size(None) == _typed.TYPED_DEFAULT_MAX_SIZE == 512
