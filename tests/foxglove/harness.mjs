// harness.mjs - what the Foxglove tests share: a bus of their own with a
// real broker, the real shmbus-foxglove server, the C bus helper
// (bus_helper.c) for the bus side, and clients built on Foxglove's own
// @foxglove/ws-protocol library whose events the tests wait for (every
// wait is bounded and ends on the event, never on a sleep).
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import wsp from "@foxglove/ws-protocol";
import protobufjs from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";
import WebSocket from "ws";

const { FoxgloveClient } = wsp;

export const env = {
  server: process.env.FOX_SERVER,
  helper: process.env.FOX_HELPER,
  cli: process.env.SHMBUS_CLI,
};

// Every wait ends at this bound at the latest (a loaded, sanitized run is
// slow; a hang must still end the test).
export const LONG_MS = 60000;

// CLOCK_REALTIME in ns, as precisely as node has it.
export function realtimeNs() {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

let failures = 0;
export function check(ok, what) {
  if (ok) {
    console.log(`ok: ${what}`);
  } else {
    failures++;
    console.log(`FAILED: ${what}`);
  }
}

// Resolves when pred(value) holds for an event, or rejects after ms.
export function waitFor(emitter, event, pred, ms, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    const on = (value) => {
      if (pred(value)) {
        clearTimeout(timer);
        emitter.off(event, on);
        resolve(value);
      }
    };
    emitter.on(event, on);
  });
}

function lines(stream, onLine) {
  createInterface({ input: stream }).on("line", onLine);
}

// A process whose exit we can await.
function exited(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode);
    else proc.on("exit", (code, signal) => resolve(code ?? signal));
  });
}

export class Server {
  constructor(bus, extraArgs) {
    this.log = [];
    this.proc = spawn(env.server, ["--bus", bus, "--port", "0", ...extraArgs], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.exit = exited(this.proc);
    lines(this.proc.stderr, (l) => {
      this.log.push(l);
      if (process.env.FOX_VERBOSE) console.log(`[server] ${l}`);
    });
    this.url = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the server did not start")), LONG_MS);
      lines(this.proc.stdout, (l) => {
        const m = / listening on (ws:\/\/\S+:\d+)/.exec(l);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      this.exit.then((code) => reject(new Error(`the server exited (${code}) before listening`)));
    });
  }

  // SIGTERM; resolves with its exit code once it has stopped.
  async stop() {
    this.proc.kill("SIGTERM");
    return this.exit;
  }
}

export class Helper {
  constructor(bus) {
    this.proc = spawn(env.helper, [], {
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...process.env, SHMBUS_BUS: bus },
    });
    this.replies = [];
    this.waiting = [];
    lines(this.proc.stdout, (l) => {
      const w = this.waiting.shift();
      if (w) w(JSON.parse(l));
      else this.replies.push(JSON.parse(l));
    });
    this.ready = this.next();
  }

  next() {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the bus helper did not answer")), LONG_MS);
      this.waiting.push((v) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
  }

  async cmd(line) {
    this.proc.stdin.write(line + "\n");
    const r = await this.next();
    if (r.error) throw new Error(`bus helper: ${line}: ${r.error}`);
    return r;
  }

  async quit() {
    this.proc.stdin.end("quit\n");
    return exited(this.proc);
  }
}

// A Foxglove client: the library's FoxgloveClient on a ws WebSocket, with
// what it heard kept, and protobuf decoders made from advertised schemas.
export class Client {
  constructor(url) {
    this.ws = new WebSocket(url, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
    this.fc = new FoxgloveClient({ ws: this.ws });
    this.channels = new Map(); // by topic
    this.statuses = [];
    this.subs = new Map(); // subscription id -> channel
    this.errors = [];
    this.fc.on("advertise", (chs) => {
      for (const ch of chs) this.channels.set(ch.topic, ch);
    });
    this.fc.on("unadvertise", (ids) => {
      for (const [t, ch] of this.channels) if (ids.includes(ch.id)) this.channels.delete(t);
    });
    this.fc.on("status", (s) => this.statuses.push(s));
    this.fc.on("error", (e) => this.errors.push(e));
    this.serverInfo = waitFor(this.fc, "serverInfo", () => true, LONG_MS, "serverInfo");
    this.barrierId = 4000000000;
  }

  // The channel of `topic`, once advertised.
  async channel(topic, ms = LONG_MS) {
    if (this.channels.has(topic)) return this.channels.get(topic);
    const chs = await waitFor(this.fc, "advertise", (c) => c.some((x) => x.topic === topic), ms,
      `advertise of ${topic}`);
    return chs.find((x) => x.topic === topic);
  }

  subscribe(ch) {
    const id = this.fc.subscribe(ch.id);
    this.subs.set(id, ch);
    return id;
  }

  // Everything sent before this returns has been handled by the server:
  // it answers messages in order, and an unsubscribe of an unknown id
  // gets a status.
  async sync() {
    const id = this.barrierId++;
    const p = waitFor(this.fc, "status", (s) => s.message.includes(`no subscription ${id}`),
      LONG_MS, "the server's answer to a barrier");
    this.fc.unsubscribe(id);
    await p;
  }

  close() {
    this.fc.close();
  }
}

export function decoderFor(ch) {
  const fds = descriptor.FileDescriptorSet.decode(Buffer.from(ch.schema, "base64"));
  const root = protobufjs.Root.fromDescriptor(fds);
  return root.lookupType(ch.schemaName);
}

export function decode(type, data) {
  return type.decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

// Runs a test case on a bus of its own; exit code 0 when every check held.
export async function run(name, body) {
  const bus = `fox-${name}-${process.pid}`;
  let helper, server;
  const timer = setTimeout(() => {
    console.log(`FAILED: ${name} did not finish in ${LONG_MS * 3} ms`);
    process.exit(1);
  }, LONG_MS * 3);
  try {
    helper = new Helper(bus);
    await helper.ready;
    const ctx = {
      bus,
      helper,
      server: (args = []) => {
        server = new Server(bus, args);
        return server;
      },
    };
    await body(ctx);
  } catch (e) {
    failures++;
    console.log(`FAILED: ${name}: ${e.stack ?? e}`);
  } finally {
    if (server) {
      const code = await server.stop();
      check(code === 0, `the server stops cleanly on SIGTERM (exit ${code})`);
    }
    if (helper) await helper.quit();
    spawnSync(env.cli, ["stop", "--bus", bus], { stdio: "inherit" });
    clearTimeout(timer);
  }
  console.log(failures ? `${name}: ${failures} checks failed` : `${name}: all checks held`);
  process.exit(failures ? 1 : 0);
}
