// Runs a wasm32-wasip1 command module under Node's WASI (V8, as in Envoy's wasm runtime).
// Usage: node run-wasm.mjs path/to/module.wasm [args...]
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const [path, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: "preview1", args: [path, ...args], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(path));
const imports = { wasi_snapshot_preview1: wasi.wasiImport };
// The filter's proxy-wasm host imports are not used by the benchmark; if the linker kept any,
// give them stubs that fail loudly.
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === "wasi_snapshot_preview1") continue;
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] = () => {
    throw new Error(`unexpected host call ${imp.module}.${imp.name}`);
  };
}
const instance = await WebAssembly.instantiate(module, imports);
// rsa-bench links the filter, which also exports the reactor entry point `_initialize`; Node's
// WASI refuses a module with both, so hand it the command's exports only.
const { memory, _start } = instance.exports;
process.exitCode = wasi.start({ exports: { memory, _start } });
