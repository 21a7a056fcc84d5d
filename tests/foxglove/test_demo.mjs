// test_demo.mjs CASE - the Foxglove message set.
//
//   schemas  every foxglove.* type in schemas/foxglove (FOX_FDS, the set
//            compiled with its imports) against Foxglove's own definitions
//            in @foxglove/schemas: names, field names, numbers, types,
//            labels, enum values
//   demo     the sensor-pipeline demo (FOX_PIPELINE: its programs) through
//            shmbus-foxglove to a Foxglove client: each topic arrives and
//            decodes from its advertised schema, the types Foxglove draws
//            are the ones it expects, and their schemas match Foxglove's
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { check, Client, decode, decoderFor, LONG_MS, run, waitFor } from "./harness.mjs";
import { compare, decodeFds, foxgloveTypes } from "./schemas.mjs";

function checkTypes(files, names, where) {
  for (const name of names) {
    const { diffs, known } = compare(files, name);
    check(diffs.length === 0, `${where} foxglove.${name} matches Foxglove's definition` +
      (diffs.length ? `: ${diffs.join("; ")}` : ""));
    for (const k of known) console.log(`  known difference: ${k}`);
  }
}

// What the demo must publish, and in which type.
const DEMO = {
  "camera/image": "foxglove.RawImage",
  "camera/calibration": "foxglove.CameraCalibration",
  "lidar/points": "foxglove.PointCloud",
  pose: "foxglove.PoseInFrame",
  tf: "foxglove.FrameTransforms",
  tf_static: "foxglove.FrameTransforms",
  imu: "shmbus.msgs.Imu",
  "pipeline/stats": "shmbus.examples.pipeline.FrameStats",
};

const cases = {
  async schemas() {
    const files = decodeFds(readFileSync(process.env.FOX_FDS));
    const names = foxgloveTypes(files);
    check(names.length >= 17, `schemas/foxglove defines ${names.length} types`);
    checkTypes(files, names, "schemas/foxglove:");
  },

  async demo({ bus, server }) {
    const url = await server().url;
    const progs = ["camera", "imu", "lidar", "processor"].map((p) =>
      spawn(`${process.env.FOX_PIPELINE}/pipeline_${p}`, ["--bus", bus],
        { stdio: ["ignore", "ignore", "inherit"] }));
    const exits = progs.map((p) => new Promise((resolve) => p.on("exit", (code) => resolve(code))));
    try {
      const c = new Client(url);
      const got = new Map();
      const decoders = new Map();
      // One message of each is all this needs: unsubscribing then keeps
      // a loaded machine from drowning the client in camera frames.
      c.fc.on("message", (m) => {
        const ch = c.subs.get(m.subscriptionId);
        if (ch && !got.has(ch.topic)) {
          got.set(ch.topic, decode(decoders.get(ch.topic), m.data));
          c.fc.unsubscribe(m.subscriptionId);
        }
      });
      for (const topic of Object.keys(DEMO)) {
        const ch = await c.channel(topic);
        check(ch.schemaName === DEMO[topic], `${topic} is ${DEMO[topic]} (${ch.schemaName})`);
        decoders.set(topic, decoderFor(ch));
        c.subscribe(ch);
      }
      const all = () => Object.keys(DEMO).every((t) => got.has(t));
      const missing = () => Object.keys(DEMO).filter((t) => !got.has(t)).join(", ");
      if (!all()) {
        await waitFor(c.fc, "message", all, LONG_MS, "a message on every demo topic")
          .catch((e) => { throw new Error(`${e.message}; none on: ${missing()}`); });
      }

      const img = got.get("camera/image");
      check(img.width === 1280 && img.height === 720 && img.encoding === "rgb8" &&
        img.data.length === 1280 * 720 * 3 && img.frameId === "camera_optical",
        "the camera frame is a full 1280x720 rgb8 RawImage in camera_optical");
      const cal = got.get("camera/calibration");
      check(cal.K.length === 9 && cal.P.length === 12 && cal.frameId === "camera_optical",
        "the calibration has K (9) and P (12) for the camera's frame");
      const pc = got.get("lidar/points");
      const names = pc.fields.map((f) => `${f.name}@${f.offset}:${f.type}`).join(" ");
      check(names === "x@0:7 y@4:7 z@8:7 intensity@12:7" && pc.pointStride === 16,
        `the cloud has float32 x, y, z, intensity, stride 16 (${names})`);
      const dv = new DataView(pc.data.buffer, pc.data.byteOffset, pc.data.byteLength);
      let sane = pc.data.length === 32 * 1024 * 16;
      for (let o = 0; sane && o < pc.data.length; o += 16) {
        const r = Math.hypot(dv.getFloat32(o, true), dv.getFloat32(o + 4, true), dv.getFloat32(o + 8, true));
        if (!(r > 0.1 && r <= 30.001)) sane = false;
      }
      check(sane, "32 x 1024 points, each 0.1..30 m from the lidar");
      check(got.get("pose").frameId === "world" && got.get("pose").pose.orientation,
        "the pose is in world");
      const tf = got.get("tf").transforms[0];
      check(tf.parentFrameId === "world" && tf.childFrameId === "base_link",
        "tf carries world -> base_link");
      const children = got.get("tf_static").transforms.map((t) => `${t.parentFrameId}>${t.childFrameId}`).sort();
      check(children.join(" ") === "base_link>camera_optical base_link>imu_link base_link>lidar",
        `tf_static fixes the sensors on the robot (${children.join(" ")})`);

      // The schemas the demo advertises, against Foxglove's.
      const seen = new Set();
      for (const topic of Object.keys(DEMO)) {
        const ch = c.channels.get(topic);
        if (!ch.schemaName.startsWith("foxglove.") || seen.has(ch.schemaName)) continue;
        seen.add(ch.schemaName);
        const files = decodeFds(Buffer.from(ch.schema, "base64"));
        const nested = new Set([ch.schemaName.slice("foxglove.".length)]);
        // The types it uses inside (Pose, Vector3, PackedElementField, ...).
        for (const n of foxgloveTypes(files)) nested.add(n);
        checkTypes(files, [...nested], `${topic}:`);
      }
      c.close();
    } finally {
      for (const p of progs) p.kill("SIGTERM");
      const codes = await Promise.all(exits);
      check(codes.every((x) => x === 0), `the demo's programs exit cleanly (${codes.join(" ")})`);
    }
  },
};

const name = process.argv[2];
if (!cases[name]) {
  console.log(`usage: test_demo.mjs ${Object.keys(cases).join("|")}`);
  process.exit(2);
}
run(name, cases[name]);
