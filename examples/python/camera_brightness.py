#!/usr/bin/env python3
"""camera_brightness: per-frame brightness of the demo camera
(examples/pipeline, topic "camera/image", foxglove.RawImage rgb8), computed
with NumPy straight on the frame in shared memory: no copy of the pixels.

    camera_brightness.py [--bus NAME] [--frames N] [--timeout S]
"""

import argparse

import shmbus
import shmbus.numpy


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bus", help="bus name (default: $SHMBUS_BUS or 'default')")
    ap.add_argument("--topic", default="camera/image")
    ap.add_argument("--frames", type=int, default=0, help="stop after N frames (0: never)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait per frame")
    args = ap.parse_args()

    # Created with the camera's layout if the camera is not up yet
    # (examples/pipeline/common.c: 8 slots, 1280x720 rgb8 + header).
    with shmbus.connect(args.bus) as bus, bus.subscriber(
            args.topic, type="foxglove.RawImage", create=True, slots=8, history=1,
            max_message_size=1280 * 720 * 3 + 4096) as sub:
        seen = 0
        while not args.frames or seen < args.frames:
            try:
                with sub.view(timeout=args.timeout) as v:
                    if sub.stats()["lag"] > 0:
                        continue  # a newer frame is there: live view skips this one
                    frame = shmbus.numpy.image(v)  # (720, 1280, 3) over the slot
                    brightness = frame.mean()
                    rgb = frame.reshape(-1, frame.shape[2]).mean(axis=0)
                    del frame                      # the view may end now
            except shmbus.Lapped:
                print("overwritten while read: result dropped")
                continue
            except shmbus.Timeout:
                print("no frame for %.1f s" % args.timeout)
                return 1
            seen += 1
            print("frame %6d  brightness %6.2f  rgb %s  lost %d" % (
                v.info.seq, brightness, " ".join("%6.2f" % c for c in rgb), v.info.lost))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
