/**
 * Assembles the project's own WebAssembly text into the binaries the code loads: shared/image/resample.wat →
 * shared/image/resample.wasm (committed, so installing and running need no assembler). Run it after editing the
 * text: `npm run build:wasm`. tests/node/resample-wasm.test.ts fails when the committed binary is not this text's.
 */
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import createWabt from "wabt";

export const WASM_SOURCES = [{ text: "shared/image/resample.wat", binary: "shared/image/resample.wasm" }];

/** The binary for one `.wat` file's text. */
export async function assembleWat(name, text) {
  const wabt = await createWabt();
  const module = wabt.parseWat(name, text, { simd: true });
  try {
    module.validate();
    return new Uint8Array(module.toBinary({ log: false, write_debug_names: false }).buffer);
  } finally {
    module.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = new URL("..", import.meta.url);
  for (const { text, binary } of WASM_SOURCES) {
    const bytes = await assembleWat(text, await readFile(new URL(text, root), "utf8"));
    await writeFile(new URL(binary, root), bytes);
    console.log(`${binary}: ${bytes.length} bytes`);
  }
}
