#!/usr/bin/env python3
"""python_bench.py: the Python package against the same work in C, in one
run on one bus (run by bench/run after shmbus-bench; also by hand):

    PYTHONPATH=build/bench/python SHMBUSD=build/bench/bus/shmbusd \\
        python3 bench/python_bench.py build/bench/bench/shmbus-py-baseline [--tsv F] [--txt F]

Cases, each timed per message over batches (publish a batch, then time
taking it; the figure of a batch is its time / its messages):
  py_take 64 B         sub.take() of an untyped 64 B message: (bytes, MsgInfo)
  py_take_imu          sub.take() of a typed Imu: decoded into a shmbus.msgs.Imu
  py_image_view SIZE   `with sub.view() as v:` + shmbus.numpy.image(v) + one
                       pixel read + release, for rgba8 images of 64 KiB, 1 MiB
                       and 8 MiB (published in place, only one pixel written)
and their C twins from shmbus-py-baseline (c_take: shmbus_sub_take;
c_take_imu: the generated take, protobuf-c unpack; c_image_view: the
generated view_data + view_release). ratio = Python / C.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import shmbus
import shmbus.msgs
import shmbus.numpy

BATCH = 32
IMAGES = [(128, 128), (512, 512), (1024, 2048)]  # rgba8: 64 KiB, 1 MiB, 8 MiB


def imu_sample():
    m = shmbus.msgs.Imu()
    m.header.stamp_ns = 1700000000000000000
    m.header.frame_id = "imu_link"
    m.orientation.w = 1.0
    m.angular_velocity.x, m.angular_velocity.y, m.angular_velocity.z = 0.1, 0.2, 0.3
    m.linear_acceleration.x, m.linear_acceleration.y = 0.01, 0.02
    m.linear_acceleration.z = 9.81
    cov = [0.01 if i % 4 == 0 else 0.0 for i in range(9)]
    m.orientation_covariance.extend(cov)
    m.angular_velocity_covariance.extend(cov)
    m.linear_acceleration_covariance.extend(cov)
    return m


def take_case(bus, topic, kind, message, batches):
    pub = bus.publisher(topic, type=kind, slots=64, max_message_size=4096)
    sub = bus.subscriber(topic)
    clock = time.perf_counter_ns
    take = sub.take
    v = []
    for _ in range(batches):
        for _ in range(BATCH):
            pub.send(message)
        t0 = clock()
        for _ in range(BATCH):
            r = take()
        v.append((clock() - t0) / BATCH)
        assert r is not None
    sub.close()
    pub.close()
    return v


def image_case(bus, height, width, batches):
    size = height * width * 4
    pub = bus.publisher("py-bench/pyimage%d" % size, type=shmbus.msgs.Image, slots=4,
                        max_message_size=size + 256)
    sub = bus.subscriber(pub.topic)
    image = shmbus.numpy.image
    clock = time.perf_counter_ns
    v = []
    for b in range(batches):
        with shmbus.numpy.image_loan(pub, height, width, "rgba8") as img:
            img.array[0, 0, 0] = b & 0xFF
        t0 = clock()
        with sub.view() as view:
            px = image(view)[0, 0, 0]
        v.append(clock() - t0)
        assert px == b & 0xFF
    sub.close()
    pub.close()
    return v, size


def stats(name, size, v, floor=None):
    v = sorted(v)
    med = statistics.median(v)
    chunks = [statistics.median(v[i::5]) for i in range(5)]
    return {
        "case": name, "size": size, "median": med,
        "p99": v[min(len(v) - 1, int(0.99 * len(v)))],
        "p999": v[min(len(v) - 1, int(0.999 * len(v)))],
        "rate": 1e9 / med if med > 0 else float("nan"),
        "spread": (max(chunks) - min(chunks)) / med * 100 if med > 0 else float("nan"),
        "floor": floor,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("baseline", help="the shmbus-py-baseline executable")
    ap.add_argument("--batches", type=int, default=3000)
    ap.add_argument("--tsv", help="append the rows to this TSV (bench/results/latest.tsv)")
    ap.add_argument("--txt", help="append the table and target checks to this file")
    ap.add_argument("--smoke", action="store_true", help="a few batches: check it runs")
    args = ap.parse_args()
    batches = 20 if args.smoke else args.batches
    bus_name = "bench-py-%d" % os.getpid()

    rows = []
    with shmbus.connect(bus_name) as bus:
        base = subprocess.run([args.baseline, bus_name, str(batches)], capture_output=True,
                              text=True, timeout=600)
        if base.returncode != 0:
            sys.exit("python_bench: %s failed: %s" % (args.baseline, base.stderr))
        c = {}
        for line in base.stdout.splitlines():
            name, size, vals = line.split()
            c[(name, int(size))] = stats(name, int(size), [float(x) for x in vals.split(",")])
        imu = imu_sample()
        c_imu_size = [s for (n, s) in c if n == "c_take_imu"][0]
        assert imu.ByteSize() == c_imu_size, (imu.ByteSize(), c_imu_size)
        rows.append(c[("c_take", 64)])
        rows.append(stats("py_take", 64, take_case(bus, "py-bench/pytake64", None, b"\1" * 64,
                                                   batches), ("c_take", 64)))
        rows.append(c[("c_take_imu", c_imu_size)])
        rows.append(stats("py_take_imu", c_imu_size,
                          take_case(bus, "py-bench/pyimu", shmbus.msgs.Imu, imu, batches),
                          ("c_take_imu", c_imu_size)))
        for h, w in IMAGES:
            v, size = image_case(bus, h, w, batches)
            rows.append(c[("c_image_view", size)])
            rows.append(stats("py_image_view", size, v, ("c_image_view", size)))
        broker = bus.broker_pid
    os.kill(broker, 15)

    by = {(r["case"], r["size"]): r for r in rows}
    for r in rows:
        if r["floor"]:
            r["ratio"] = r["median"] / by[r["floor"]]["median"]
    lines = ["", "Python (bench/python_bench.py; ratio = Python / the same in C)",
             "%-16s %9s %10s %10s %10s %12s %7s %-22s %7s" % (
                 "case", "size", "median_ns", "p99_ns", "p999_ns", "msgs/s", "spread%",
                 "floor", "ratio")]
    tsv = ["# python: bench/python_bench.py, %d batches; per-message figures; "
           "ratio_to_floor = Python / the same in C" % batches]
    for r in rows:
        floor = "%s@%d" % r["floor"] if r["floor"] else "-"
        ratio = "%.2f" % r["ratio"] if "ratio" in r else "-"
        lines.append("%-16s %9d %10.0f %10.0f %10.0f %12.0f %7.1f %-22s %7s" % (
            r["case"], r["size"], r["median"], r["p99"], r["p999"], r["rate"], r["spread"],
            floor, ratio))
        tsv.append("\t".join([r["case"], str(r["size"]), "%.1f" % r["median"], "%.1f" % r["p99"],
                              "%.1f" % r["p999"], "%.0f" % r["rate"], "-", "%.1f" % r["spread"],
                              floor, ratio if ratio != "-" else "-",
                              # peer_case ratio_to_peer lost_pct value unit
                              "-", "-", "-", "-", "-"]))

    def view(case, size):
        return by[(case, size)]["median"]

    small, big = IMAGES[0][0] * IMAGES[0][1] * 4, IMAGES[-1][0] * IMAGES[-1][1] * 4
    py_flat = view("py_image_view", big) / view("py_image_view", small)
    c_flat = view("c_image_view", big) / view("c_image_view", small)
    checks = [
        ("Python take of 64 B < 2 us", view("py_take", 64) < 2000,
         "%.0f ns (C %.0f ns)" % (view("py_take", 64), view("c_take", 64))),
        ("Python image view 8 MiB / 64 KiB <= 2x (as flat as C)", py_flat <= 2.0,
         "%.2fx (C %.2fx)" % (py_flat, c_flat)),
    ]
    lines.append("")
    for what, ok, detail in checks:
        lines.append("target %-12s %s: %s" % ("MET" if ok else "MISSED", what, detail))
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.txt:
        with open(args.txt, "a") as f:
            f.write(text)
    if args.tsv:
        with open(args.tsv, "a") as f:
            f.write("\n".join(tsv) + "\n")
    bad = [r for r in rows if not r["median"] > 0]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
