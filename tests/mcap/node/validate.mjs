// validate.mjs - reads an MCAP file with the reference TypeScript library
// (@mcap/core), as Foxglove does: once as a stream (every record, CRCs
// checked) and once through the index (footer, summary, chunk indexes).
// Prints one JSON line with what it found; exits 1 if either read fails.
//   node validate.mjs FILE.mcap
import { McapIndexedReader, McapStreamReader } from "@mcap/core";
import { decompress as zstdDecompress } from "fzstd";
import lz4 from "lz4js";
import { open, readFile } from "node:fs/promises";

const decompressHandlers = {
  zstd: (buf, size) => zstdDecompress(buf, new Uint8Array(Number(size))),
  lz4: (buf, size) => new Uint8Array(lz4.decompress(buf, Number(size))),
};

const path = process.argv[2];
const out = { file: path };
try {
  const bytes = new Uint8Array(await readFile(path));
  const stream = new McapStreamReader({ decompressHandlers, validateCrcs: true });
  stream.append(bytes);
  const counts = {};
  let rec;
  let messages = 0;
  let footer = false;
  while ((rec = stream.nextRecord())) {
    counts[rec.type] = (counts[rec.type] ?? 0) + 1;
    if (rec.type === "Message") messages++;
    if (rec.type === "Footer") footer = true;
  }
  if (!stream.done() || !footer) throw new Error("stream read did not reach the footer");
  out.stream_messages = messages;
  out.records = counts;

  const fh = await open(path, "r");
  const readable = {
    size: async () => BigInt((await fh.stat()).size),
    read: async (offset, size) => {
      const buf = new Uint8Array(Number(size));
      await fh.read(buf, 0, Number(size), Number(offset));
      return buf;
    },
  };
  const reader = await McapIndexedReader.Initialize({ readable, decompressHandlers });
  let indexed = 0;
  for await (const _ of reader.readMessages({ validateCrcs: true })) indexed++;
  out.indexed_messages = indexed;
  out.statistics_messages = Number(reader.statistics?.messageCount ?? -1n);
  out.chunks = reader.chunkIndexes.length;
  out.channels = [...reader.channelsById.values()].map((c) => c.topic);
  await fh.close();
  out.ok = indexed === messages && out.statistics_messages === messages;
} catch (e) {
  out.ok = false;
  out.error = String(e?.message ?? e);
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
