#!/usr/bin/env python3
"""imu_publisher: publishes shmbus.msgs.Imu samples on "imu" at a fixed
rate (a slow yaw and gravity), as the demo's C IMU does. Watch them with
`shmbus echo imu` or `shmbus hz imu`.

    imu_publisher.py [--bus NAME] [--rate HZ] [--count N]
"""

import argparse
import math
import time

import shmbus
from shmbus.msgs import Imu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bus")
    ap.add_argument("--topic", default="imu")
    ap.add_argument("--rate", type=float, default=100.0, help="samples per second")
    ap.add_argument("--count", type=int, default=0, help="stop after N samples (0: never)")
    args = ap.parse_args()

    with shmbus.connect(args.bus) as bus, bus.publisher(args.topic, type=Imu) as pub:
        period = 1.0 / args.rate
        next_t = time.monotonic()
        n = 0
        try:
            while not args.count or n < args.count:
                t = n * period
                msg = Imu()
                msg.header.stamp_ns = time.time_ns()
                msg.header.frame_id = "imu_link"
                msg.angular_velocity.z = 0.1 * math.sin(0.5 * t)
                msg.linear_acceleration.x = 0.02 * math.sin(40 * t)
                msg.linear_acceleration.z = 9.81
                pub.send(msg)
                n += 1
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))
        except KeyboardInterrupt:
            pass
        print("published %d samples on %s" % (n, pub.topic))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
