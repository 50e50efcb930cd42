// Run a MicroPython module's steps under MicroPython's WebAssembly port
// (32-bit), for `fleetflow bench heap32` (tools/bench/heap32.py).
//
//   node run.mjs <heap bytes> <lib dir> <module>
//
// <lib dir> is copied into the port's in-memory filesystem at /lib (the
// port has no access to the host's files), then `import <module>` and
// `<module>.step(i)` for i = 0, 1, ... until it returns false, each in a
// runPython call of its own: the port's gc.collect() can't scan its native
// stack, so it frees only what earlier top-level calls let go. What the
// module prints goes to stdout.
import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [heap, lib, mod] = process.argv.slice(2);
if (!heap || !lib || !mod) {
  console.error("usage: node run.mjs <heap bytes> <lib dir> <module>");
  process.exit(2);
}
const mp = await loadMicroPython({
  heapsize: parseInt(heap, 10),
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  linebuffer: false,
});

function copy(src, dst) {
  try { mp.FS.mkdir(dst); } catch (e) { /* exists */ }
  for (const name of fs.readdirSync(src)) {
    const from = path.join(src, name);
    const to = dst + "/" + name;
    if (fs.statSync(from).isDirectory()) copy(from, to);
    else mp.FS.writeFile(to, fs.readFileSync(from));
  }
}
copy(lib, "/lib");
try {
  mp.runPython(`import ${mod}`);
  for (let i = 0; ; i++) {
    mp.runPython(`_more = ${mod}.step(${i})`);
    if (!mp.globals.get("_more")) break;
  }
} catch (e) {
  console.error(String(e));
  process.exit(1);
}
