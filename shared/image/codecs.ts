/**
 * The WASM image decoders (`@jsquash/jpeg`: mozjpeg; `@jsquash/png`: the Rust `png` crate), initialised from
 * precompiled `WebAssembly.Module`s that each runtime obtains its own way: workerd forbids compiling WASM from bytes,
 * so the Worker imports the `.wasm` files as modules (workers/inference/codecs.ts) while Node compiles them from disk
 * (gpu-runner/src/codecs-node.ts). Training and serving thus run the very same decoder binaries, which is what makes
 * their pixels, and so their tensors, identical (jpeg-js and mozjpeg disagree by up to 3 levels per pixel).
 *
 * Only the decoders are imported (not the packages' index, which would also bundle the encoders).
 */
import decodeJpegWithMozjpeg, { init as initMozjpegDecoder } from "@jsquash/jpeg/decode.js";
import { decode as decodePngWithRust, init as initPngDecoder } from "@jsquash/png/decode.js";

/** Compiled decoder modules: `mozjpeg_dec.wasm` and `squoosh_png_bg.wasm` from node_modules. */
export interface CodecModules {
  jpeg: WebAssembly.Module;
  png: WebAssembly.Module;
}

/** 8-bit RGBA pixels, row-major, `data.length === width * height * 4`. */
export interface RgbaImage {
  data: Uint8ClampedArray;
  width: number;
  height: number;
}

/** Ready decoders; obtain them from `initCodecs` (or a loader from `createCodecLoader`). */
export interface ImageCodecs {
  /** Decodes a JPEG as stored: the EXIF orientation is not applied here. Rejects on undecodable data. */
  decodeJpeg(bytes: Uint8Array): Promise<RgbaImage>;
  /** Decodes a PNG to 8-bit RGBA (16-bit channels are reduced to 8 bits). Rejects on undecodable data. */
  decodePng(bytes: Uint8Array): Promise<RgbaImage>;
}

// jsquash keeps its decoders in module-level singletons, so one initialisation serves the whole isolate/process.
let initialised: Promise<ImageCodecs> | undefined;

/**
 * Instantiates both decoders from precompiled modules. Idempotent: later calls return the first call's codecs
 * (jsquash's PNG wrapper caches its first init for good, even a failed one, so it must only ever see a real module).
 */
export function initCodecs(modules: CodecModules): Promise<ImageCodecs> {
  if (!(modules.jpeg instanceof WebAssembly.Module) || !(modules.png instanceof WebAssembly.Module)) {
    return Promise.reject(new TypeError("initCodecs needs compiled WebAssembly.Module objects for jpeg and png"));
  }
  initialised ??= instantiate(modules).catch((error: unknown) => {
    initialised = undefined;
    throw error;
  });
  return initialised;
}

async function instantiate(modules: CodecModules): Promise<ImageCodecs> {
  // The .d.ts of @jsquash/jpeg only declares init(options); its code also takes (module, options).
  await (initMozjpegDecoder as unknown as (module: WebAssembly.Module) => Promise<void>)(modules.jpeg);
  await initPngDecoder(modules.png);
  return {
    async decodeJpeg(bytes) {
      // preserveOrientation: false keeps the stored pixel layout; decode.ts applies the orientation for both formats.
      const image = await decodeJpegWithMozjpeg(bytes as unknown as ArrayBuffer, { preserveOrientation: false });
      return { data: image.data, width: image.width, height: image.height };
    },
    async decodePng(bytes) {
      const image = await decodePngWithRust(bytes as unknown as ArrayBuffer);
      return { data: image.data, width: image.width, height: image.height };
    },
  };
}

/**
 * A lazy, once-only codec getter: the first call loads the modules and initialises; concurrent first calls share that
 * promise; a failed attempt is forgotten so that the next call retries. Call it inside a request, never at global
 * scope (workerd allows 1 s for the global scope).
 */
export function createCodecLoader(loadModules: () => CodecModules | Promise<CodecModules>): () => Promise<ImageCodecs> {
  let pending: Promise<ImageCodecs> | undefined;
  return () => {
    pending ??= Promise.resolve()
      .then(loadModules)
      .then(initCodecs)
      .catch((error: unknown) => {
        pending = undefined;
        throw error;
      });
    return pending;
  };
}
