#!/usr/bin/env python3
"""record_npz: records a topic into a NumPy .npz file: one row per message
with its sequence number, publish time, publisher and losses, and the
payload (raw bytes, padded), plus, for typed topics, every numeric scalar
field of the message flattened into columns (linear_acceleration.z, ...).

    record_npz.py TOPIC OUT.npz [--bus NAME] [--count N] [--duration S]

    import numpy as np
    r = np.load("imu.npz")
    r["seq"], r["publish_ns"], r["linear_acceleration.z"]
"""

import argparse
import time

import numpy as np

import shmbus


def scalars(msg, prefix="", out=None):
    """{dotted field name: number} of a message's numeric singular fields."""
    from google.protobuf.descriptor import FieldDescriptor as F
    out = {} if out is None else out
    for f in msg.DESCRIPTOR.fields:
        if f.label == F.LABEL_REPEATED:
            continue
        name = prefix + f.name
        if f.type == F.TYPE_MESSAGE:
            scalars(getattr(msg, f.name), name + ".", out)
        elif f.type not in (F.TYPE_STRING, F.TYPE_BYTES):
            out[name] = getattr(msg, f.name)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("topic")
    ap.add_argument("out")
    ap.add_argument("--bus")
    ap.add_argument("--count", type=int, default=0, help="stop after N messages")
    ap.add_argument("--duration", type=float, default=0, help="stop after S seconds")
    args = ap.parse_args()

    meta = {"seq": [], "publish_ns": [], "publisher": [], "lost": []}
    payloads, columns = [], {}
    end = time.monotonic() + args.duration if args.duration else None
    with shmbus.connect(args.bus) as bus, bus.subscriber(args.topic) as sub:
        typed = sub.message_class is not None
        try:
            while not args.count or len(payloads) < args.count:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                r = sub.recv(timeout=left)
                if r is None:
                    continue
                msg, info = r
                for k in meta:
                    meta[k].append(getattr(info, k))
                if typed:
                    payloads.append(msg.SerializeToString())
                    row = len(payloads) - 1
                    for name, value in scalars(msg).items():
                        col = columns.setdefault(name, [np.nan] * row)
                        col.append(value)
                    for col in columns.values():
                        if len(col) < row + 1:
                            col.append(np.nan)
                else:
                    payloads.append(msg)
        except KeyboardInterrupt:
            pass
    width = max((len(p) for p in payloads), default=0)
    data = np.zeros((len(payloads), width), dtype=np.uint8)
    for i, p in enumerate(payloads):
        data[i, :len(p)] = np.frombuffer(p, dtype=np.uint8)
    arrays = {k: np.asarray(v, dtype=np.int64 if k != "publisher" else np.uint32)
              for k, v in meta.items()}
    arrays["size"] = np.asarray([len(p) for p in payloads], dtype=np.int64)
    arrays["payload"] = data
    arrays.update({k: np.asarray(v, dtype=np.float64) for k, v in columns.items()})
    np.savez(args.out, **arrays)
    print("recorded %d messages of %s (%d lost) to %s" % (
        len(payloads), args.topic, sum(meta["lost"]), args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
