// schemas.mjs - compares our foxglove.* message types, as a serialized
// FileDescriptorSet holds them (what a topic stores and the server
// advertises), with Foxglove's own definitions from @foxglove/schemas: the
// same message names, field names, numbers, types, labels and enum values.
import { createRequire } from "node:module";
import protobufjs from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";

const require = createRequire(import.meta.url);
const foxglove = require("@foxglove/schemas/internal");

// FieldDescriptorProto.Type numbers of the scalar types.
const SCALAR = {
  double: 1, float: 2, int64: 3, uint64: 4, int32: 5, fixed64: 6, fixed32: 7, bool: 8,
  string: 9, bytes: 12, uint32: 13, sfixed32: 15, sfixed64: 16, sint32: 17, sint64: 18,
};
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;
const LABEL_REPEATED = 3;

// Where protoc-c 1.4 cannot follow Foxglove: it does not compile proto3
// `optional`, so these fields are plain (same number, type and wire form;
// schemas/foxglove/location_fix.proto says what that changes).
export const KNOWN_DIFFERENCES = new Set([
  "foxglove.LocationFix.color: optional",
  "foxglove.LocationFix.heading: optional",
  "foxglove.LocationFix.velocity: optional",
]);

// Foxglove's definition of foxglove.<name>, parsed from the .proto text
// their generator makes: { fields: [{name, number, repeated, optional,
// type, typeName}], enums: {fullName: {NAME: value}} }.
function theirs(name) {
  const schema = foxglove.foxgloveMessageSchemas[name];
  if (!schema) return undefined;
  const enums = Object.values(foxglove.foxgloveEnumSchemas).filter(
    (e) => e.parentSchemaName === name,
  );
  const root = protobufjs.parse(foxglove.generateProto(schema, enums), { keepCase: true }).root;
  const t = root.lookupType(`foxglove.${name}`);
  const out = { fields: [], enums: {} };
  for (const f of t.fieldsArray) {
    const field = {
      name: f.name,
      number: f.id,
      repeated: f.repeated,
      optional: f.options?.proto3_optional === true,
    };
    if (SCALAR[f.type] !== undefined) {
      field.type = SCALAR[f.type];
    } else if (t.nested?.[f.type] instanceof protobufjs.Enum) {
      field.type = TYPE_ENUM;
      field.typeName = `.foxglove.${name}.${f.type}`;
      out.enums[field.typeName] = { ...t.nested[f.type].values };
    } else {
      field.type = TYPE_MESSAGE;
      field.typeName = `.${f.type}`;
    }
    out.fields.push(field);
  }
  return out;
}

// The same from our descriptors.
function ours(files, name) {
  for (const file of files) {
    if (file.package !== "foxglove") continue;
    const m = (file.messageType ?? []).find((x) => x.name === name);
    if (!m) continue;
    const out = { fields: [], enums: {} };
    for (const e of m.enumType ?? []) {
      const values = {};
      for (const v of e.value ?? []) values[v.name] = v.number;
      out.enums[`.foxglove.${name}.${e.name}`] = values;
    }
    for (const f of m.field ?? []) {
      out.fields.push({
        name: f.name,
        number: f.number,
        repeated: f.label === LABEL_REPEATED,
        optional: f.proto3Optional === true,
        type: f.type,
        typeName: f.type === TYPE_MESSAGE || f.type === TYPE_ENUM ? f.typeName : undefined,
      });
    }
    return out;
  }
  return undefined;
}

export function decodeFds(bytes) {
  return descriptor.FileDescriptorSet.decode(bytes).file;
}

// The foxglove.* message types a descriptor set defines (top level).
export function foxgloveTypes(files) {
  const names = [];
  for (const f of files)
    if (f.package === "foxglove") for (const m of f.messageType ?? []) names.push(m.name);
  return names;
}

// Differences between our foxglove.<name> and Foxglove's, as strings
// "foxglove.X.field: what"; known ones are returned apart.
export function compare(files, name) {
  const a = ours(files, name);
  const b = theirs(name);
  const diffs = [];
  if (!b) return { diffs: [`foxglove.${name}: Foxglove defines no such message`], known: [] };
  if (!a) return { diffs: [`foxglove.${name}: not in our schema`], known: [] };
  const mine = new Map(a.fields.map((f) => [f.name, f]));
  for (const f of b.fields) {
    const o = mine.get(f.name);
    const at = `foxglove.${name}.${f.name}`;
    if (!o) {
      diffs.push(`${at}: missing`);
      continue;
    }
    mine.delete(f.name);
    if (o.number !== f.number) diffs.push(`${at}: number ${o.number}, Foxglove ${f.number}`);
    if (o.type !== f.type || o.typeName !== f.typeName)
      diffs.push(`${at}: type ${o.type} ${o.typeName ?? ""}, Foxglove ${f.type} ${f.typeName ?? ""}`);
    if (o.repeated !== f.repeated) diffs.push(`${at}: repeated ${o.repeated}, Foxglove ${f.repeated}`);
    if (o.optional !== f.optional) diffs.push(`${at}: optional`);
    if (f.type === TYPE_ENUM) {
      const x = JSON.stringify(Object.entries(a.enums[o.typeName] ?? {}).sort());
      const y = JSON.stringify(Object.entries(b.enums[f.typeName] ?? {}).sort());
      if (x !== y) diffs.push(`${at}: enum values ${x}, Foxglove ${y}`);
    }
  }
  for (const extra of mine.keys()) diffs.push(`foxglove.${name}.${extra}: not in Foxglove's`);
  return {
    diffs: diffs.filter((d) => !KNOWN_DIFFERENCES.has(d)),
    known: diffs.filter((d) => KNOWN_DIFFERENCES.has(d)),
  };
}
