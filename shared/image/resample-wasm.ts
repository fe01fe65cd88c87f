/**
 * preprocess.ts's two resampling passes in WebAssembly SIMD (resample.wat, assembled into the committed
 * resample.wasm by `npm run build:wasm`): the same integer sums and table lookups, so the same floats as the
 * TypeScript passes, 2 to 3 times faster. The runner's decode threads use them (gpu-runner/src/codecs-node.ts);
 * the Worker, which preprocesses one image per request, keeps the TypeScript passes.
 *
 * Why: on a CPU-only runner the decode threads share the cores with the embedding engine, and resampling a
 * 500x375 photo to 288x288 and 352x352 in TypeScript (4.7 ms) cost more than decoding it (2.0 ms).
 *
 * Memory: one instance per thread; its memory grows to the largest image it has held and never shrinks, so images
 * above `MAX_PIXEL_BYTES` of RGBA (12 megapixels) are left to the TypeScript passes.
 */
import type { ResampleKernels, ResampleWeights } from "./preprocess";

/** RGBA bytes above which `load` declines (the TypeScript passes run instead): a 12-megapixel photo fits. */
export const MAX_PIXEL_BYTES = 48 * 1024 * 1024;
const PAGE = 65536;
const SCRATCH = 0; // 48 bytes: one vector per channel for the vertical pass's table lookups
const TABLE = 64; // 768 float32
const PIXELS = 4096;
/** The vertical pass reads up to three words past its last row (resample.wat). */
const SLACK = 16;

interface Exports {
  memory: WebAssembly.Memory;
  rows(pixels: number, width: number, firstRow: number, rows: number, bounds: number, weights: number, taps: number, outWidth: number, between: number): void;
  columns(between: number, outWidth: number, firstRow: number, bounds: number, weights: number, taps: number, outHeight: number, table: number, output: number, scratch: number): void;
}

const align = (offset: number) => (offset + 15) & ~15;

/** Kernels over one instance of `module` (resample.wasm, compiled by the caller: workerd cannot compile bytes). */
export function createResampleKernels(module: WebAssembly.Module): ResampleKernels {
  const exports = new WebAssembly.Instance(module, {}).exports as unknown as Exports;
  const { memory } = exports;
  let pixelBytes = 0;

  const ensure = (bytes: number) => {
    const missing = bytes - memory.buffer.byteLength;
    if (missing > 0) memory.grow(Math.ceil(missing / PAGE));
  };
  const put = (at: number, values: Int32Array | Float32Array) => new Uint8Array(memory.buffer, at, values.byteLength).set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));

  return {
    load(pixels) {
      if (pixels.length > MAX_PIXEL_BYTES) return false;
      ensure(PIXELS + pixels.length);
      new Uint8Array(memory.buffer, PIXELS, pixels.length).set(pixels);
      pixelBytes = pixels.length;
      return true;
    },
    resample(width, firstRow, rows, horizontal: ResampleWeights, vertical: ResampleWeights, table, output) {
      const outWidth = horizontal.bounds.length / 2;
      const outHeight = vertical.bounds.length / 2;
      if (output.length !== outWidth * outHeight * 3) throw new RangeError(`output holds ${output.length} floats, not ${outHeight}x${outWidth}x3`);
      const hBounds = align(PIXELS + pixelBytes);
      const hWeights = align(hBounds + horizontal.bounds.byteLength);
      const vBounds = align(hWeights + horizontal.weights.byteLength);
      const vWeights = align(vBounds + vertical.bounds.byteLength);
      const between = align(vWeights + vertical.weights.byteLength);
      const out = align(between + rows * outWidth * 4 + SLACK);
      ensure(out + output.byteLength);
      put(TABLE, table);
      put(hBounds, horizontal.bounds);
      put(hWeights, horizontal.weights);
      put(vBounds, vertical.bounds);
      put(vWeights, vertical.weights);
      exports.rows(PIXELS, width, firstRow, rows, hBounds, hWeights, horizontal.taps, outWidth, between);
      exports.columns(between, outWidth, firstRow, vBounds, vWeights, vertical.taps, outHeight, TABLE, out, SCRATCH);
      output.set(new Float32Array(memory.buffer, out, output.length));
    },
  };
}
