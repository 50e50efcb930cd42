// Validate an AsyncAPI document with the official parser (@asyncapi/parser):
//   node tools/asyncapi/validate.mjs docs/asyncapi.json
// Prints one JSON object {valid, version, channels, operations, diagnostics}
// and exits 1 when the parser reports an error (severity 0).
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const text = readFileSync(path, "utf8");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: path });
const errors = diagnostics.filter((d) => d.severity === 0);
const out = {
  valid: Boolean(document) && errors.length === 0,
  version: document ? document.version() : null,
  channels: document ? document.channels().all().map((c) => c.address()) : [],
  operations: document ? document.operations().all().map((o) => o.id()) : [],
  diagnostics: diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path })),
};
console.log(JSON.stringify(out));
process.exit(out.valid ? 0 : 1);
