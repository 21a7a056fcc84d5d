"""The examples in examples/python run against real publishers: the
camera-brightness subscriber against the demo's C camera, the NumPy
recorder against the Python IMU publisher."""

import os
import re
import signal
import subprocess
import sys

import numpy as np

from conftest import TIMEOUT

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples", "python")


def _example(name, *args):
    return [sys.executable, os.path.join(EXAMPLES, name), *args]


def test_camera_brightness_on_the_c_camera(bus):
    camera = subprocess.Popen([os.environ["PIPELINE_CAMERA"], "--bus", bus.name,
                               "--duration", "30"], stdout=subprocess.DEVNULL)
    try:
        r = subprocess.run(_example("camera_brightness.py", "--bus", bus.name, "--frames", "5"),
                           capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        camera.terminate()
        camera.wait(TIMEOUT)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if re.match(r"frame +\d+ ", line)]
    assert len(lines) == 5
    # The camera's test pattern averages near the middle of 0..255.
    for line in lines:
        brightness = float(line.split()[3])
        assert 50 < brightness < 205, line


def test_imu_publisher_recorded_to_npz(bus, tmp_path):
    out = tmp_path / "imu.npz"
    pub = subprocess.Popen(_example("imu_publisher.py", "--bus", bus.name, "--rate", "200"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from test_typed import _wait_subscribed
        _wait_subscribed(bus, "imu", 0)  # until the publisher made the topic
        subprocess.run(_example("record_npz.py", "imu", str(out), "--bus", bus.name,
                                "--count", "20"), check=True, timeout=TIMEOUT,
                       capture_output=True)
    finally:
        pub.send_signal(signal.SIGINT)
        pub_out, pub_err = pub.communicate(timeout=TIMEOUT)
    assert pub.returncode == 0, pub_err
    assert pub_out.startswith("published ")
    r = np.load(out)
    assert len(r["seq"]) == 20 and (np.diff(r["seq"]) == 1).all() and r["lost"].sum() == 0
    assert (r["linear_acceleration.z"] == 9.81).all()
    assert (np.diff(r["publish_ns"]) > 0).all() and r["payload"].shape[0] == 20
