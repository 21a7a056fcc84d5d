// test_server.mjs CASE - shmbus-foxglove driven by Foxglove's own client
// library (@foxglove/ws-protocol), messages decoded with protobufjs from
// the schemas the server advertises. One case per run (meson counts each):
//
//   advertise  serverInfo, advertise with schemas, several clients, the
//              newest message on subscribe
//   imu        1000 IMU messages in order, none lost
//   image      a 1280x720 rgb8 foxglove.RawImage, every byte
//   late       topics created after connecting are advertised within 100 ms;
//              a removed one is unadvertised
//   publish    clientPublish (JSON and protobuf) reaches the bus; a topic of
//              another type, bad JSON and unknown types are refused
//   slow       a client that stops reading: the publisher and another
//              client are unaffected, its drops are counted and reported
//   lapped     frames overwritten while the server copies them are never
//              sent: every frame a client gets is whole
//   errors     bad requests get status messages; --topics and
//              --no-client-publish; a plain HTTP request
import http from "node:http";
import { check, Client, decode, decoderFor, LONG_MS, realtimeNs, run, waitFor } from "./harness.mjs";

// Collects the decoded messages of a subscription.
function collect(client, subId, type) {
  const got = [];
  client.fc.on("message", (m) => {
    if (m.subscriptionId === subId) got.push({ t: m.timestamp, msg: decode(type, m.data) });
  });
  return got;
}

// Resolves once got holds n messages (or pred says so).
function until(client, got, pred, what) {
  if (pred(got)) return Promise.resolve();
  return waitFor(client.fc, "message", () => pred(got), LONG_MS, what);
}

const cases = {
  async advertise({ helper, server }) {
    await helper.cmd("create /imu");
    await helper.cmd("imu plain 1");
    const srv = server();
    const url = await srv.url;
    const a = new Client(url);
    const b = new Client(url);
    const info = await a.serverInfo;
    check(info.capabilities.includes("clientPublish"), "serverInfo offers clientPublish");
    check(["json", "protobuf"].every((e) => info.supportedEncodings.includes(e)),
      "serverInfo: supportedEncodings json and protobuf");
    check(info.name.includes("fox-advertise"), `serverInfo names the bus (${info.name})`);
    for (const c of [a, b]) {
      const imu = await c.channel("/imu");
      const plain = await c.channel("plain");
      check(imu.encoding === "protobuf" && imu.schemaName === "shmbus.msgs.Imu" &&
        imu.schemaEncoding === "protobuf", "a ROS-style topic is advertised as protobuf with its type");
      check(plain.id !== imu.id, "each topic has its own channel");
      check(decoderFor(plain).fullName === ".shmbus.msgs.Imu",
        "the advertised schema is a FileDescriptorSet that defines the type");
    }
    // A subscriber gets the newest message at once (a camera shows a
    // picture; a transform published long ago is known).
    const ch = await a.channel("plain");
    const sub = a.subscribe(ch);
    const got = collect(a, sub, decoderFor(ch));
    await until(a, got, (g) => g.length >= 1, "the newest message of 'plain'");
    check(got[0].msg.header.frameId === "imu_link", "the newest message arrives decoded");
    check(got[0].t > 1600000000n * 1000000000n, `messageData carries the publish time (${got[0].t})`);
    a.close();
    b.close();
  },

  async imu({ helper, server }) {
    await helper.cmd("create /imu");
    const url = await server().url;
    const c = new Client(url);
    const ch = await c.channel("/imu");
    const sub = c.subscribe(ch);
    const got = collect(c, sub, decoderFor(ch));
    await c.sync();
    await helper.cmd("imu /imu 1000");
    await until(c, got, (g) => g.length >= 1000, "1000 IMU messages");
    await c.sync(); // anything more would have come before this answer
    check(got.length === 1000, `exactly 1000 messages arrived (${got.length})`);
    let inOrder = true;
    for (let i = 0; i < got.length; i++) {
      const m = got[i].msg;
      if ((m.angularVelocity?.x ?? 0) !== i || Number(m.header.stampNs) !== i + 1) inOrder = false;
      if (i && got[i].t < got[i - 1].t) inOrder = false;
    }
    check(inOrder, "in publish order, every field as published, publish times non-decreasing");
    const warnings = c.statuses.filter((s) => s.level > 0 && !/no subscription 4\d{9}/.test(s.message));
    check(warnings.length === 0, `no warning or error status (${JSON.stringify(warnings)})`);
    c.close();
  },

  async image({ helper, server }) {
    const url = await server().url;
    const c = new Client(url);
    await c.serverInfo;
    await helper.cmd("image /camera/image 1280 720");
    const ch = await c.channel("/camera/image");
    check(ch.schemaName === "foxglove.RawImage", "the camera is a foxglove.RawImage channel");
    const sub = c.subscribe(ch);
    const got = collect(c, sub, decoderFor(ch));
    await until(c, got, (g) => g.length >= 1, "the image");
    const img = got[0].msg;
    check(img.width === 1280 && img.height === 720, `1280x720 (${img.width}x${img.height})`);
    check(img.encoding === "rgb8" && img.step === 3840, `rgb8, step 3840 (${img.encoding}, ${img.step})`);
    check(img.frameId === "camera_optical", "frame_id");
    check(Number(img.timestamp.seconds) === 1700000000 && img.timestamp.nanos === 123456789,
      "timestamp");
    const n = 1280 * 720 * 3;
    let same = img.data.length === n;
    for (let k = 0; same && k < n; k++) if (img.data[k] !== ((k * 7 + (k >> 11)) & 255)) same = false;
    check(same, `all ${n} pixel bytes are the ones published`);
    c.close();
  },

  async late({ helper, server }) {
    const url = await server().url;
    const c = new Client(url);
    await c.serverInfo;
    await c.sync(); // the advertise of what exists has come
    const latencies = [];
    for (let i = 0; i < 5; i++) {
      const topic = `/late/t${i}`;
      const seen = waitFor(c.fc, "advertise", (chs) => chs.some((x) => x.topic === topic),
        LONG_MS, `advertise of ${topic}`).then(() => realtimeNs());
      const { t0_ns: t0 } = await helper.cmd(`create ${topic}`);
      const ms = Number((await seen) - BigInt(t0)) / 1e6;
      latencies.push(ms.toFixed(1));
      check(ms < 100, `${topic} advertised ${ms.toFixed(1)} ms after it was created (bound 100 ms)`);
    }
    console.log(`creation to advertise, ms: ${latencies.join(" ")}`);
    // A topic removed is unadvertised (an event, not a scan): by the
    // channel id it was advertised with, and only it.
    const gone = await c.channel("/late/t0");
    const kept = await c.channel("/late/t1");
    const unadv = waitFor(c.fc, "unadvertise", (ids) => ids.includes(gone.id), LONG_MS,
      "unadvertise of /late/t0").then((ids) => ({ ids, at: realtimeNs() }));
    const { t0_ns: r0 } = await helper.cmd("remove /late/t0");
    const { ids, at } = await unadv;
    check(!ids.includes(kept.id), `only the removed topic is unadvertised (${ids})`);
    check(!c.channels.has("/late/t0") && c.channels.has("/late/t1"),
      "the client's channels follow: /late/t0 gone, /late/t1 still there");
    console.log(`removal to unadvertise: ${(Number(at - BigInt(r0)) / 1e6).toFixed(1)} ms`);
    c.close();
  },

  async publish({ helper, server }) {
    await helper.cmd("create /typed");
    const url = await server().url;
    const c = new Client(url);
    await c.serverInfo;
    // JSON, as Foxglove's Publish panel sends it, for a type the server
    // knows without a schema.
    const j = c.fc.advertise({ topic: "/cmd", encoding: "json", schemaName: "foxglove.Vector3" });
    const cmdCh = await c.channel("/cmd");
    check(cmdCh.schemaName === "foxglove.Vector3", "the topic it created is advertised with its type");
    for (let i = 1; i <= 3; i++)
      c.fc.sendMessage(j, new TextEncoder().encode(JSON.stringify({ x: i, y: -i, z: 0.5 })));
    c.fc.sendMessage(j, new TextEncoder().encode("{not json"));
    c.fc.sendMessage(j, new TextEncoder().encode(JSON.stringify({ q: 1 })));
    // Protobuf, with the schema the client has.
    const type = decoderFor(cmdCh);
    const p = c.fc.advertise({ topic: "/cmd_pb", encoding: "protobuf", schemaName: "foxglove.Vector3",
      schema: cmdCh.schema, schemaEncoding: "protobuf" });
    c.fc.sendMessage(p, type.encode({ x: 4, y: 5, z: 6 }).finish());
    c.fc.sendMessage(p, new Uint8Array([0x0a, 0xff, 0xff])); // truncated length
    // Refused channels.
    c.fc.advertise({ topic: "/typed", encoding: "json", schemaName: "foxglove.Vector3" });
    c.fc.advertise({ topic: "/nope", encoding: "json", schemaName: "no.Such" });
    c.fc.advertise({ topic: "/cbor", encoding: "cbor", schemaName: "foxglove.Vector3" });
    await c.sync();

    const cmd = await helper.cmd("take /cmd 4 1000");
    check(cmd.type === "foxglove.Vector3", `the bus topic has the type (${cmd.type})`);
    check(JSON.stringify(cmd.messages) ===
      JSON.stringify([{ x: 1, y: -1, z: 0.5 }, { x: 2, y: -2, z: 0.5 }, { x: 3, y: -3, z: 0.5 }]),
      `the 3 JSON messages arrived on the bus, and nothing else (${JSON.stringify(cmd.messages)})`);
    check(cmd.max_message_size === 27,
      `the topic it created is sized to the type's bound: three doubles, 27 B (${cmd.max_message_size})`);
    const pb = await helper.cmd("take /cmd_pb 2 1000");
    check(JSON.stringify(pb.messages) === JSON.stringify([{ x: 4, y: 5, z: 6 }]),
      `the protobuf message arrived, the malformed one did not (${JSON.stringify(pb.messages)})`);
    const errs = c.statuses.filter((s) => s.level === 2).map((s) => s.message);
    const has = (re, what) => check(errs.some((m) => re.test(m)), `${what} (${errs.find((m) => re.test(m))})`);
    has(/not published on '\/cmd': not a valid foxglove\.Vector3: not JSON/, "bad JSON is refused with a status");
    has(/not published on '\/cmd'.*\bq\b/, "a JSON field the type lacks is refused");
    has(/not published on '\/cmd_pb'/, "malformed protobuf is refused");
    has(/cannot publish on '\/typed'.*shmbus\.msgs\.Imu/, "a topic of another type refuses the channel, naming both types");
    has(/unknown type 'no\.Such'/, "an unknown type without a schema is refused");
    has(/encoding 'cbor' is not supported/, "an unsupported encoding is refused");
    c.close();
  },

  async slow({ helper, server }) {
    // 26 MB a phase: more than a stalled client's socket buffers (up to
    // about 10 MB on loopback) and its queue hold, so it must drop; at a
    // rate (6.5 MB/s) and with a queue (640 ms of data before the reading
    // client counts as behind) that a reading client keeps up with on a
    // loaded machine, under a sanitizer too.
    const size = 65536, n = 400, hz = 100;
    await helper.cmd(`flood /flood ${size} 1 ${hz} 0`);
    const srv = server(["--queue-messages", "1024", "--queue-bytes", String(8 << 20), "--verbose"]);
    const url = await srv.url;
    const b = new Client(url);
    const s = new Client(url);
    const chB = await b.channel("/flood");
    const type = decoderFor(chB);
    const gotB = collect(b, b.subscribe(chB), type);
    await b.sync();
    const index = (g) => g.map((x) => x.msg.width);
    const last = (g, w) => g.length > 0 && g[g.length - 1].msg.width === w;

    // Without the stalled client.
    const pubA = await helper.cmd(`flood /flood ${size} ${n} ${hz} 1`);
    await until(b, gotB, (g) => last(g, n), "phase A's last message at B");
    const phaseA = index(gotB).filter((w) => w >= 1 && w <= n);

    // With a client that subscribed and stopped reading.
    const chS = await s.channel("/flood");
    const gotS = collect(s, s.subscribe(chS), type);
    await s.sync();
    s.ws.pause();
    const pubB = await helper.cmd(`flood /flood ${size} ${n} ${hz} ${n + 1}`);
    await until(b, gotB, (g) => last(g, 2 * n), "phase B's last message at B");
    const phaseB = index(gotB).filter((w) => w > n && w <= 2 * n);

    // The stalled client reads again: it gets the newest messages and a
    // report of what it missed once it has caught up.
    const report = waitFor(s.fc, "status", (st) => st.id === "shmbus.dropped" && last(gotS, 2 * n),
      LONG_MS, "the drop report after catching up");
    s.ws.resume();
    const st = await report;
    const dropped = Number(/\((\d+) dropped in all/.exec(st.message)?.[1] ?? -1);

    const seq = (a, from) => a.length === n && a.every((w, i) => w === from + i);
    check(pubA.published === n && pubA.failed === 0 && pubB.published === n && pubB.failed === 0,
      `the publisher published ${n} and ${n} (failed ${pubA.failed}, ${pubB.failed}) without and with the stalled client`);
    console.log(`publisher: ${(n / (pubA.elapsed_ns / 1e9)).toFixed(1)} msgs/s without, ` +
      `${(n / (pubB.elapsed_ns / 1e9)).toFixed(1)} msgs/s with the stalled client (paced at ${hz})`);
    check(seq(phaseA, 1), `the other client got all ${n} in order without the stalled client (${phaseA.length})`);
    check(seq(phaseB, n + 1), `... and all ${n} in order with it (${phaseB.length})`);
    check(dropped > 0, `the stalled client's oldest messages were dropped (${dropped}): ${st.message}`);
    // It subscribed after phase A: the newest message then (n), then phase B.
    const gotPhaseB = index(gotS).filter((w) => w >= n);
    check(gotPhaseB.length + dropped === n + 1,
      `received ${gotPhaseB.length} + dropped ${dropped} = the ${n + 1} messages it was due`);
    check(gotPhaseB.every((w, i) => i === 0 || w > gotPhaseB[i - 1]), "what it received is in order");

    // Alone and stalled: the server stops reading the topic for it (what
    // the publisher overwrites meanwhile is dropped for it, not copied),
    // and it still gets the newest and the count.
    b.fc.unsubscribe([...b.subs.keys()][0]);
    await b.sync();
    await s.sync();
    s.ws.pause();
    const pubC = await helper.cmd(`flood /flood ${size} ${n} ${hz} ${2 * n + 1}`);
    const reportC = waitFor(s.fc, "status", (x) => x.id === "shmbus.dropped" && last(gotS, 3 * n),
      LONG_MS, "the drop report after catching up alone");
    s.ws.resume();
    const stC = await reportC;
    const droppedC = Number(/\((\d+) dropped in all/.exec(stC.message)?.[1] ?? -1) - dropped;
    const gotC = index(gotS).filter((w) => w > 2 * n);
    check(pubC.published === n && pubC.failed === 0, "the publisher published all while it stalled alone");
    check(droppedC > 0 && gotC.length + droppedC === n,
      `alone: received ${gotC.length} + dropped ${droppedC} = the ${n} published (${stC.message})`);
    check(gotC[gotC.length - 1] === 3 * n, "alone: the newest message arrived");

    const code = await srv.stop();
    check(code === 0, "the server stops cleanly");
    const sum = srv.log.map((l) =>
      /'\/flood': \d+ messages received, (\d+) lost on the bus, (\d+) skipped while every client was behind/.exec(l))
      .find(Boolean);
    check(sum && sum[1] === "0", `the server's own subscriber lost nothing on the bus (${sum?.[0]})`);
    check(sum && Number(sum[2]) > 0, "while the only client was behind, the server skipped messages instead of copying them");
    check(srv.log.some((l) => /dropping its oldest messages/.test(l)), "the log says a client is being dropped from");
    b.close();
    s.close();
  },

  async lapped({ helper, server }) {
    // A 2-slot topic flooded as fast as the publisher can: slots are
    // rewritten while the server copies frames out of them. The k-th frame
    // of a flood has width FIRST + k and every data byte k & 255, so with
    // FIRST 1 a whole frame's bytes are all (width - 1) & 255. A copy the
    // publisher overwrote must be dropped (counted lost), not sent.
    const size = 16384, n = 60000;
    await helper.cmd(`flood /lap ${size} 1 1 1 2`);
    const srv = server();
    const url = await srv.url;
    const c = new Client(url);
    const ch = await c.channel("/lap");
    const type = decoderFor(ch);
    const got = collect(c, c.subscribe(ch), type);
    await c.sync();
    const pub = await helper.cmd(`flood /lap ${size} ${n} 1000000000 1 2`);
    await until(c, got, (g) => g.length > 0 && g[g.length - 1].msg.width === n, "the last frame");
    const code = await srv.stop();
    let torn = 0;
    for (const { msg } of got) {
      const d = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
      if (d.length !== size || !d.equals(Buffer.alloc(size, (msg.width - 1) & 255))) {
        if (torn++ === 0) console.log(`frame ${msg.width} is torn`);
      }
    }
    const sum = srv.log.map((l) => /'\/lap': (\d+) messages received, (\d+) lost on the bus/.exec(l))
      .find(Boolean);
    console.log(`${got.length} frames at the client; the server: ${sum?.[0]}`);
    check(pub.published === n && pub.failed === 0, `the publisher published all ${n}`);
    check(torn === 0, `every frame the client got is whole (${torn} torn of ${got.length})`);
    check(code === 0, "the server stops cleanly");
    c.close();
  },

  async errors({ helper, server }) {
    await helper.cmd("create cam/a");
    await helper.cmd("create /cam/b");
    await helper.cmd("create imu");
    const srv = server(["--topics", "cam/*", "--no-client-publish"]);
    const url = await srv.url;
    const c = new Client(url);
    const info = await c.serverInfo;
    check(!info.capabilities.includes("clientPublish"), "--no-client-publish: no clientPublish capability");
    const a = await c.channel("cam/a");
    const b = await c.channel("/cam/b");
    await c.sync();
    check(!c.channels.has("imu"), "--topics: a topic that matches no pattern is not advertised");
    const raw = (text) => c.ws.send(text);
    c.fc.subscribe(99999);
    c.subscribe(a);
    c.fc.subscribe(a.id);
    raw(JSON.stringify({ op: "subscribe", subscriptions: [{ id: 1, channelId: b.id }] }));
    raw("not json");
    raw("{\"op\": \"getParameters\", \"parameterNames\": []}");
    raw("{\"op\": \"frobnicate\"}");
    c.ws.send(new Uint8Array([7, 1, 2]));
    c.fc.advertise({ topic: "/x", encoding: "json", schemaName: "foxglove.Vector3" });
    await c.sync();
    const msgs = c.statuses.map((s) => `${s.level} ${s.message}`);
    const has = (re, what) => check(msgs.some((m) => re.test(m)), `${what} (${msgs.find((m) => re.test(m))})`);
    has(/^2 subscribe: no channel 99999/, "unknown channel");
    has(/^2 subscribe: already subscribed to channel/, "a second subscription to one channel");
    has(/^2 subscribe: subscription id 1 is already in use/, "a subscription id in use");
    has(/^2 a text message must be a JSON object/, "text that is not JSON");
    has(/^2 getParameters: not offered/, "an operation the server does not offer");
    has(/^2 frobnicate: unknown operation/, "an unknown operation");
    has(/^2 binary message with opcode 7/, "an unknown binary opcode");
    has(/^2 advertise: this server does not take messages/, "advertise without clientPublish");
    const body = await new Promise((resolve, reject) => {
      http.get(url.replace("ws:", "http:"), (res) => {
        let t = "";
        res.on("data", (d) => (t += d));
        res.on("end", () => resolve(`${res.statusCode} ${t}`));
      }).on("error", reject);
    });
    check(/^400 .*Foxglove WebSocket server/.test(body), `a plain HTTP request is told what this is (${body.slice(0, 60)}...)`);
    c.close();
  },
};

const name = process.argv[2];
if (!cases[name]) {
  console.log(`usage: test_server.mjs ${Object.keys(cases).join("|")}`);
  process.exit(2);
}
run(name, cases[name]);
