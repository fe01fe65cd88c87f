/**
 * The WASM image decoders (`@jsquash/jpeg`: mozjpeg; `@jsquash/png`: the Rust `png` crate), instantiated from
 * precompiled `WebAssembly.Module`s that each runtime obtains its own way: workerd forbids compiling WASM from bytes,
 * so the Worker imports the `.wasm` files as modules (workers/inference/codecs.ts) while Node compiles them from disk
 * (gpu-runner/src/codecs-node.ts). Training and serving thus run the very same decoder binaries, which is what makes
 * their pixels, and so their tensors, identical (jpeg-js and mozjpeg disagree by up to 3 levels per pixel).
 *
 * A decoder instance that failed is never reused: libjpeg's error exit and a Rust panic both abandon the WASM stack
 * mid-call, and measured here, a few thousand such failures later either decoder reads out of bounds. Each failure
 * (and each decode of over `JPEG_RESET_PIXELS`) therefore starts a fresh instance from the compiled module, which
 * costs about a millisecond.
 */
import decodeWithMozjpeg, { init as initMozjpeg } from "@jsquash/jpeg/decode.js";
import { createPngDecoder } from "./png-decoder";
import type { ResampleKernels } from "./preprocess";
import { createResampleKernels } from "./resample-wasm";

/**
 * Compiled decoder modules: `mozjpeg_dec.wasm` and `squoosh_png_bg.wasm` from node_modules/@jsquash; optionally
 * this folder's `resample.wasm` (the runner passes it; the Worker resamples its one image per request in TypeScript).
 */
export interface CodecModules {
  jpeg: WebAssembly.Module;
  png: WebAssembly.Module;
  resample?: WebAssembly.Module;
}

/** 8-bit RGBA pixels, row-major, `data.length === width * height * 4`. */
export interface RgbaImage {
  data: Uint8ClampedArray;
  width: number;
  height: number;
  /**
   * Set when every alpha byte is known to be 255 (a decoded JPEG): preprocessImage then skips its transparency
   * scan (0.2 ms of a 500x375 photo's ~3 ms). Absent means "unknown", and the pixels are checked.
   */
  opaque?: boolean;
}

/** Ready decoders; obtain them from `initCodecs` (or a getter from `createCodecLoader`). */
export interface ImageCodecs {
  /** Decodes a JPEG as stored: the EXIF orientation is not applied here. Rejects on undecodable data. */
  decodeJpeg(bytes: Uint8Array): Promise<RgbaImage>;
  /** Decodes a PNG to 8-bit RGBA (16-bit samples reduced to 8 bits). Rejects on undecodable data. */
  decodePng(bytes: Uint8Array): Promise<RgbaImage>;
  /**
   * Faster resampling passes with the same output (resample-wasm.ts), when the runtime compiled them:
   * `imageToTensorInput` hands them to `preprocessImage`.
   */
  resample?: ResampleKernels;
  /** Bytes of WASM memory the JPEG decoder holds now (for tests and diagnostics). */
  jpegDecoderBytes?(): number;
}

/**
 * Decoded pixels above which the JPEG decoder is re-instantiated afterwards. A WASM memory never shrinks, and
 * mozjpeg's grows to hold the whole output (4 bytes a pixel) plus, for a progressive JPEG, its coefficients: measured
 * by bench/predict/large-image-memory.ts, a 12 MP progressive photo grows it by about 120 MB. But a replaced instance
 * is not collected at once: in Node, re-instantiating after each of five 6 MP progressive photos held 41 MB more
 * (external memory 117 vs 76 MB, RSS 229 vs 188 MB, after collections) than keeping one grown instance. So it pays
 * only for photos this large. The edge never decodes one (PREDICT_MAX_PIXELS, 2 MP: workers/config.ts).
 */
const JPEG_RESET_PIXELS = 8_000_000;

// @jsquash/jpeg keeps its decoder in a module-level singleton: one set of codecs serves the whole isolate/process.
let initialised: Promise<ImageCodecs> | undefined;

/**
 * Instantiates both decoders from precompiled modules. Idempotent: later calls return the first successful call's
 * codecs. Never call the @jsquash packages' own `decode` elsewhere: without a module they try to fetch their `.wasm`.
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
  const decodePng = createPngDecoder(modules.png);
  let lastJpegMessage = "";
  let jpegMemory: WebAssembly.Memory | undefined;
  const startJpegDecoder = () =>
    // The .d.ts of @jsquash/jpeg declares init(options) only; its code takes (module, options) as well.
    (initMozjpeg as unknown as (module: WebAssembly.Module, options: object) => Promise<void>)(modules.jpeg, {
      // libjpeg prints its error ("Quantization table 0x00 was not defined") before exiting: keep it as the cause.
      printErr: (line: string) => (lastJpegMessage = line),
      print: () => {},
      // What @jsquash/jpeg does with a module (utils.js), keeping the instance's memory to report its size.
      instantiateWasm(imports: WebAssembly.Imports, callback: (instance: WebAssembly.Instance) => void) {
        const instance = new WebAssembly.Instance(modules.jpeg, imports);
        jpegMemory = Object.values(instance.exports).find((value): value is WebAssembly.Memory => value instanceof WebAssembly.Memory);
        callback(instance);
        return instance.exports;
      },
    });
  await startJpegDecoder();

  const resample = modules.resample ? createResampleKernels(modules.resample) : undefined;
  return {
    resample,
    async decodeJpeg(bytes) {
      lastJpegMessage = "";
      try {
        // preserveOrientation: false keeps the stored layout; decode.ts applies the orientation for both formats.
        const image = await decodeWithMozjpeg(bytes as unknown as ArrayBuffer, { preserveOrientation: false });
        if (image.width * image.height > JPEG_RESET_PIXELS) await startJpegDecoder();
        return { data: image.data, width: image.width, height: image.height };
      } catch (error) {
        await startJpegDecoder();
        throw new Error(`mozjpeg could not decode the image${lastJpegMessage ? `: ${lastJpegMessage}` : ""}`, {
          cause: error,
        });
      }
    },
    async decodePng(bytes) {
      return decodePng(bytes);
    },
    jpegDecoderBytes: () => jpegMemory?.buffer.byteLength ?? 0,
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
