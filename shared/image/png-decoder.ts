/**
 * A minimal, re-instantiable host for `@jsquash/png`'s decoder binary (`squoosh_png_bg.wasm`, the Rust `png` crate
 * behind wasm-bindgen), replacing the package's generated JS glue for decoding.
 *
 * Why not the package's glue: it keeps one instance per JS realm for good. A Rust panic (any undecodable stream,
 * e.g. a PNG whose chunks and CRCs are fine but whose zlib data is not) traps mid-function and leaves that instance's
 * allocator and shadow stack inconsistent; measured here, later decodes then fail with "memory access out of bounds"
 * while memory grows (655 MB after 3,000 such files), and the glue offers no way to start over (it also caches a
 * failed init). This host instantiates the compiled module afresh whenever a decode fails, and whenever the
 * instance's memory has grown large (a WASM memory never shrinks, and a Worker has 128 MB in all).
 *
 * The import names below are those of @jsquash/png 3.1.1's binary (wasm-bindgen hashes them per build);
 * `createPngDecoder` checks them so that a package upgrade fails loudly at init instead of at the first decode.
 */
import type { RgbaImage } from "./codecs";

const IMPORT_MEMORY = "__wbindgen_memory";
const IMPORT_BUFFER = "__wbg_buffer_a448f833075b71ba";
const IMPORT_UINT16_VIEW = "__wbg_newwithbyteoffsetandlength_099217381c451830";
const IMPORT_DROP = "__wbindgen_object_drop_ref";
const IMPORT_IMAGE_DATA = "__wbg_newwithownedu8clampedarrayandsh_91db5987993a08fb";
const IMPORT_THROW = "__wbindgen_throw";
const EXPECTED_IMPORTS = [IMPORT_MEMORY, IMPORT_BUFFER, IMPORT_UINT16_VIEW, IMPORT_DROP, IMPORT_IMAGE_DATA, IMPORT_THROW];

/** wasm-bindgen's object handles start at 132 (below: stack slots, then undefined, null, true, false). */
const FIRST_HANDLE = 132;
/** Past this much WASM memory, the instance is dropped after the decode so that the memory can be collected. */
const MAX_RETAINED_MEMORY_BYTES = 32 * 1024 * 1024;

interface PngExports {
  memory: WebAssembly.Memory;
  decode(pointer: number, length: number): number;
  __wbindgen_malloc(size: number, align: number): number;
  __wbindgen_free(pointer: number, size: number, align: number): void;
}

/** Returns a synchronous PNG decoder to 8-bit RGBA (16-bit samples reduced to 8 bits, palettes expanded). */
export function createPngDecoder(module: WebAssembly.Module): (bytes: Uint8Array) => RgbaImage {
  const imports = new Set(WebAssembly.Module.imports(module).map((entry) => entry.name));
  const missing = EXPECTED_IMPORTS.filter((name) => !imports.has(name));
  if (missing.length > 0 || imports.size !== EXPECTED_IMPORTS.length) {
    throw new Error(
      `The PNG decoder binary does not match shared/image/png-decoder.ts (missing imports: ${missing.join(", ") || "none"}, ${imports.size} in all): @jsquash/png was upgraded; update the import names there.`,
    );
  }
  let instance: PngInstance | undefined;
  return (bytes) => {
    instance ??= instantiate(module);
    try {
      return instance.decode(bytes);
    } catch (error) {
      instance = undefined; // a trapped instance is not safe to reuse
      throw error;
    } finally {
      if (instance && instance.memoryBytes() > MAX_RETAINED_MEMORY_BYTES) instance = undefined;
    }
  };
}

interface PngInstance {
  decode(bytes: Uint8Array): RgbaImage;
  memoryBytes(): number;
}

function instantiate(module: WebAssembly.Module): PngInstance {
  const objects: unknown[] = [];
  const freeSlots: number[] = [];
  const keep = (value: unknown): number => {
    const slot = freeSlots.length > 0 ? freeSlots.pop()! : objects.length;
    objects[slot] = value;
    return slot + FIRST_HANDLE;
  };
  const lookup = (handle: number): unknown => objects[handle - FIRST_HANDLE];
  const release = (handle: number): void => {
    if (handle < FIRST_HANDLE) return;
    objects[handle - FIRST_HANDLE] = undefined;
    freeSlots.push(handle - FIRST_HANDLE);
  };
  let exports: PngExports;
  const wbg = {
    [IMPORT_MEMORY]: () => keep(exports.memory),
    [IMPORT_BUFFER]: (handle: number) => keep((lookup(handle) as WebAssembly.Memory).buffer),
    [IMPORT_UINT16_VIEW]: (handle: number, offset: number, length: number) =>
      keep(new Uint16Array(lookup(handle) as ArrayBuffer, offset >>> 0, length >>> 0)),
    [IMPORT_DROP]: release,
    [IMPORT_IMAGE_DATA]: (pointer: number, length: number, width: number, height: number) => {
      const data = new Uint8ClampedArray(exports.memory.buffer, pointer >>> 0, length >>> 0).slice();
      exports.__wbindgen_free(pointer, length, 1);
      return keep({ data, width: width >>> 0, height: height >>> 0 });
    },
    [IMPORT_THROW]: (pointer: number, length: number) => {
      throw new Error(new TextDecoder().decode(new Uint8Array(exports.memory.buffer, pointer >>> 0, length >>> 0)));
    },
  };
  // Instantiating an already compiled module is allowed in workerd (only compiling from bytes is not).
  exports = new WebAssembly.Instance(module, { wbg }).exports as unknown as PngExports;
  return {
    decode(bytes) {
      const pointer = exports.__wbindgen_malloc(bytes.length, 1) >>> 0;
      new Uint8Array(exports.memory.buffer).set(bytes, pointer); // as in the package's glue: the callee owns it now
      const handle = exports.decode(pointer, bytes.length);
      const image = lookup(handle) as RgbaImage | undefined;
      release(handle);
      if (!image) throw new Error("the PNG decoder returned no image");
      return image;
    },
    memoryBytes: () => exports.memory.buffer.byteLength,
  };
}
