/**
 * Upright RGBA pixels to the backbone's input tensor, in plain deterministic TypeScript so that the runner (training)
 * and the Worker (serving) compute bit-identical floats from the same pixels: integer fixed-point resampling, then a
 * 256-entry lookup table per channel for `(x / 255 - mean) / std` rounded once to float32.
 *
 * Resampling follows Pillow's `Image.resize(size, BILINEAR, box)` (libImaging/Resample.c): a separable triangle
 * filter whose support widens with the downscale factor, so a 4000x3000 photo is area-averaged instead of aliased,
 * while upscaling is plain bilinear interpolation with half-pixel centres. Horizontal pass first into a uint8
 * buffer, then vertical; 22-bit fixed-point weights. Measured: see the report in tests/node/image-preprocess.test.ts.
 */
import type { ImageCodecs, RgbaImage } from "./codecs";
import { decodeImage, type DecodeOptions } from "./decode";
import { changesColour, viewNormalizationTable, viewTransform } from "./augment";

/**
 * Identifies everything that determines the output for given bytes and spec: the decoders (@jsquash/jpeg 1.6.0,
 * @jsquash/png 3.1.1), EXIF orientation, alpha flattened onto white, the resampling, the float conversion. It keys
 * the embedding cache: bump it whenever any of these could change a single output value.
 */
export const PREPROCESS_VERSION = "img-1";

export interface PreprocessSpec {
  /** [height, width] of the model input. */
  input_size: [number, number];
  /** Per-channel mean and std applied to pixels scaled to [0, 1]: `(x / 255 - mean) / std`. */
  mean: [number, number, number];
  std: [number, number, number];
  /** "squash": the whole image scaled to height x width; "center_crop": scaled to cover it, the centre kept. */
  resize: "squash" | "center_crop";
  /**
   * More [height, width] sizes the image is also fed at (a backbone spec's `extra_input_sizes`): the tensor holds
   * the image at `input_size`, then at each of these, one after the other, and the embedding is the mean of each
   * size's (shared/image/augment.ts averageEmbeddings).
   */
  extra_input_sizes?: [number, number][];
  /**
   * A deterministic transformed view (shared/image/augment.ts): 0 or absent is the image as served, 1 its mirror,
   * 2 and up a crop with small colour changes. Only training-time augmentation and flip averaging set it.
   */
  view?: number;
}

/** Every [height, width] an image is fed at: `input_size`, then `extra_input_sizes`. */
export function inputSizes(spec: Pick<PreprocessSpec, "input_size" | "extra_input_sizes">): [number, number][] {
  return [spec.input_size, ...(spec.extra_input_sizes ?? [])];
}

/** Floats in one image's input tensor: height x width x 3, summed over its input sizes. */
export function inputTensorLength(spec: Pick<PreprocessSpec, "input_size" | "extra_input_sizes">): number {
  return inputSizes(spec).reduce((sum, [h, w]) => sum + h * w * 3, 0);
}

const PRECISION_BITS = 22; // as Pillow's 8-bit path: 255 * 2^22 * (1 + rounding) stays below 2^31
const HALF = 1 << (PRECISION_BITS - 1);

/**
 * The two resampling passes done elsewhere with the same integers (shared/image/resample-wasm.ts: WebAssembly SIMD,
 * which the runner's decode threads use). Without them, or when `load` declines an image, the TypeScript passes
 * below run; both give the same floats (tests/node/resample-wasm.test.ts).
 */
export interface ResampleKernels {
  /** Takes the image's RGBA bytes for the `resample` calls that follow; false when it cannot hold them. */
  load(pixels: Uint8ClampedArray | Uint8Array): boolean;
  /** One input size over the loaded image: what resampleRows then resampleColumnsToFloats compute, into `output`. */
  resample(width: number, firstRow: number, rows: number, horizontal: ResampleWeights, vertical: ResampleWeights, table: Float32Array, output: Float32Array): void;
}

/**
 * Resizes and normalises one image.
 * @param image upright RGBA pixels (`decodeImage`'s output)
 * @param target optional destination of length h*w*3 (for instance a view into a batch tensor)
 * @param kernels optional faster resampling passes (same output)
 * @returns Float32Array of shape [h, w, 3] (NHWC for one image, RGB order)
 */
export function preprocessImage(image: RgbaImage, spec: PreprocessSpec, target?: Float32Array, kernels?: ResampleKernels): Float32Array {
  checkSpec(spec);
  const { width, height } = image;
  if (!(width > 0 && height > 0) || image.data.length !== width * height * 4) {
    throw new RangeError(`image data holds ${image.data.length} bytes, not ${width}x${height}x4`);
  }
  const sizes = inputSizes(spec);
  const length = inputTensorLength(spec);
  const output = target ?? new Float32Array(length);
  if (output.length !== length) {
    throw new RangeError(`target holds ${output.length} floats, not ${sizes.map(([h, w]) => `${h}x${w}x3`).join(" + ")}`);
  }
  const pixels = !image.opaque && hasTransparency(image.data) ? flattenOntoWhite(image.data) : image.data;
  const transform = viewTransform(spec.view ?? 0);
  const table = changesColour(transform) ? viewNormalizationTable(transform, spec.mean, spec.std) : normalizationTable(spec.mean, spec.std);
  const loaded = kernels?.load(pixels) ? kernels : undefined;
  let offset = 0;
  for (const [outHeight, outWidth] of sizes) {
    const part = output.subarray(offset, offset + outHeight * outWidth * 3);
    resampleInto(pixels, width, height, outHeight, outWidth, spec.resize, transform, table, part, loaded);
    offset += part.length;
  }
  return output;
}

/** One input size of `preprocessImage`: the source box, both resampling passes, the mirror of the view. */
function resampleInto(
  pixels: Uint8ClampedArray | Uint8Array,
  width: number,
  height: number,
  outHeight: number,
  outWidth: number,
  resize: PreprocessSpec["resize"],
  transform: ReturnType<typeof viewTransform>,
  table: Float32Array,
  output: Float32Array,
  kernels: ResampleKernels | undefined,
): void {
  // The source box (fractional pixels) that maps onto the output.
  let left = 0;
  let top = 0;
  let right = width;
  let bottom = height;
  if (resize === "center_crop") {
    const scale = Math.max(outWidth / width, outHeight / height);
    const boxWidth = outWidth / scale;
    const boxHeight = outHeight / scale;
    left = (width - boxWidth) / 2;
    top = (height - boxHeight) / 2;
    right = left + boxWidth;
    bottom = top + boxHeight;
  }
  const { crop } = transform;
  if (crop.x0 !== 0 || crop.y0 !== 0 || crop.x1 !== 1 || crop.y1 !== 1) {
    const boxWidth = right - left;
    const boxHeight = bottom - top;
    [left, right] = [left + crop.x0 * boxWidth, left + crop.x1 * boxWidth];
    [top, bottom] = [top + crop.y0 * boxHeight, top + crop.y1 * boxHeight];
  }
  const horizontal = computeWeights(width, left, right, outWidth);
  const vertical = computeWeights(height, top, bottom, outHeight);

  // Horizontal pass over only the source rows that the vertical pass reads, then vertical pass into floats.
  const firstRow = vertical.bounds[0]!;
  const lastRow = vertical.bounds[2 * (outHeight - 1)]! + vertical.bounds[2 * (outHeight - 1) + 1]!;
  if (kernels) kernels.resample(width, firstRow, lastRow - firstRow, horizontal, vertical, table, output);
  else resampleColumnsToFloats(resampleRows(pixels, width, firstRow, lastRow - firstRow, horizontal), outWidth, firstRow, vertical, table, output);
  if (transform.mirror) mirrorRowsInPlace(output, outHeight, outWidth);
}

/**
 * Bytes to model input in one call: `decodeImage` (validation, decode, EXIF orientation) then `preprocessImage`.
 * @returns Float32Array of shape [h, w, 3]
 */
export async function imageToTensorInput(
  bytes: Uint8Array,
  spec: PreprocessSpec,
  codecs: ImageCodecs,
  options?: DecodeOptions,
): Promise<Float32Array> {
  return preprocessImage(await decodeImage(bytes, codecs, options), spec, undefined, codecs.resample);
}

/**
 * Horizontal pass: `rows` source rows from `firstRow` to rows of `weights.bounds.length / 2` pixels, packed as
 * R | G << 8 | B << 16. No clamping is needed: the weights are non-negative and sum to at most 2^22 + taps / 2, so
 * a channel sum stays below 256 << 22.
 */
function resampleRows(
  pixels: Uint8ClampedArray | Uint8Array,
  width: number,
  firstRow: number,
  rows: number,
  { bounds, weights, taps }: ResampleWeights,
): Uint32Array {
  // One 32-bit load per RGBA pixel (R in the low byte on the little-endian hosts that Node and workerd run on)
  // instead of three byte loads; the same packing between the passes.
  const words = pixelWords(pixels);
  const outWidth = bounds.length / 2;
  const between = new Uint32Array(rows * outWidth);
  let out = 0;
  for (let row = 0; row < rows; row++) {
    const rowStart = (firstRow + row) * width;
    for (let x = 0; x < outWidth; x++) {
      const count = bounds[2 * x + 1]!;
      let at = rowStart + bounds[2 * x]!;
      let k = x * taps;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0; i < count; i++) {
        const weight = weights[k++]!;
        const pixel = words[at++]!;
        r += (pixel & 255) * weight;
        g += ((pixel >>> 8) & 255) * weight;
        b += ((pixel >>> 16) & 255) * weight;
      }
      between[out++] = (r >> PRECISION_BITS) | ((g >> PRECISION_BITS) << 8) | ((b >> PRECISION_BITS) << 16);
    }
  }
  return between;
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** The RGBA bytes as one 32-bit word per pixel, R in the low byte. */
function pixelWords(pixels: Uint8ClampedArray | Uint8Array): Uint32Array {
  if (!LITTLE_ENDIAN) throw new Error("preprocessImage assumes a little-endian host (x86-64, arm64)");
  const aligned = pixels.byteOffset % 4 === 0 ? pixels : pixels.slice();
  return new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.length >> 2);
}

/** Vertical pass over the packed rows of `resampleRows`, written as floats through the normalisation table. */
function resampleColumnsToFloats(
  between: Uint32Array,
  outWidth: number,
  firstRow: number,
  { bounds, weights, taps }: ResampleWeights,
  table: Float32Array,
  output: Float32Array,
): void {
  const outHeight = bounds.length / 2;
  let out = 0;
  for (let y = 0; y < outHeight; y++) {
    const first = (bounds[2 * y]! - firstRow) * outWidth;
    const count = bounds[2 * y + 1]!;
    const k0 = y * taps;
    for (let x = 0; x < outWidth; x++) {
      let at = first + x;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let i = 0; i < count; i++, at += outWidth) {
        const weight = weights[k0 + i]!;
        const pixel = between[at]!;
        r += (pixel & 255) * weight;
        g += ((pixel >>> 8) & 255) * weight;
        b += (pixel >>> 16) * weight;
      }
      // Below 256 for the same reason as in resampleRows.
      output[out++] = table[r >> PRECISION_BITS]!;
      output[out++] = table[256 + (g >> PRECISION_BITS)]!;
      output[out++] = table[512 + (b >> PRECISION_BITS)]!;
    }
  }
}

export interface ResampleWeights {
  /** Per output index: first source index, number of taps. */
  bounds: Int32Array;
  /** Per output index: `taps` fixed-point weights, of which the first `count` are used. */
  weights: Int32Array;
  taps: number;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle, support 1) filter. */
function computeWeights(inSize: number, in0: number, in1: number, outSize: number): ResampleWeights {
  const scale = (in1 - in0) / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = filterScale; // triangle support 1, widened when downscaling
  const taps = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * taps);
  const raw = new Float64Array(taps);
  const inverseScale = 1 / filterScale;
  for (let out = 0; out < outSize; out++) {
    const center = in0 + (out + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    let total = 0;
    for (let i = 0; i < count; i++) {
      const distance = Math.abs((i + first - center + 0.5) * inverseScale);
      raw[i] = distance < 1 ? 1 - distance : 0;
      total += raw[i]!;
    }
    for (let i = 0; i < count; i++) {
      const weight = total !== 0 ? raw[i]! / total : raw[i]!;
      weights[out * taps + i] = Math.trunc(0.5 + weight * (1 << PRECISION_BITS));
    }
    bounds[2 * out] = first;
    bounds[2 * out + 1] = count;
  }
  return { bounds, weights, taps };
}

/** Reverses the columns of a [height, width, 3] tensor in place (the same values as augment.ts mirrorInputTensor). */
function mirrorRowsInPlace(tensor: Float32Array, height: number, width: number): void {
  for (let y = 0; y < height; y++) {
    const base = y * width * 3;
    for (let x = 0, mirrored = width - 1; x < mirrored; x++, mirrored--) {
      for (let c = 0; c < 3; c++) {
        const a = base + x * 3 + c;
        const b = base + mirrored * 3 + c;
        const value = tensor[a]!;
        tensor[a] = tensor[b]!;
        tensor[b] = value;
      }
    }
  }
}

/** `(v / 255 - mean[c]) / std[c]` for every byte value v and channel c, rounded once to float32. */
function normalizationTable(mean: readonly number[], std: readonly number[]): Float32Array {
  const table = new Float32Array(768);
  for (let c = 0; c < 3; c++) {
    for (let v = 0; v < 256; v++) table[c * 256 + v] = (v / 255 - mean[c]!) / std[c]!;
  }
  return table;
}

function hasTransparency(data: Uint8ClampedArray | Uint8Array): boolean {
  const words = pixelWords(data);
  for (let i = 0; i < words.length; i++) if (words[i]! < 0xff000000) return true;
  return false;
}

/** Composites onto white (what a viewer shows for a transparent PNG), in integers: round(c*a/255 + 255 - a). */
function flattenOntoWhite(data: Uint8ClampedArray | Uint8Array): Uint8ClampedArray {
  const flat = new Uint8ClampedArray(data.length);
  for (let i = 0; i < data.length; i += 4) {
    const alpha = data[i + 3]!;
    const background = 255 * (255 - alpha) + 127;
    flat[i] = ((data[i]! * alpha + background) / 255) | 0;
    flat[i + 1] = ((data[i + 1]! * alpha + background) / 255) | 0;
    flat[i + 2] = ((data[i + 2]! * alpha + background) / 255) | 0;
    flat[i + 3] = 255;
  }
  return flat;
}

function checkSpec(spec: PreprocessSpec): void {
  for (const [h, w] of inputSizes(spec)) {
    if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
      throw new RangeError(`input sizes must be two positive integers each, got [${h}, ${w}]`);
    }
  }
  if (spec.mean.length !== 3 || spec.std.length !== 3 || spec.std.some((s) => !(Math.abs(s) > 0))) {
    throw new RangeError("mean and std must hold 3 numbers each, and std no zero");
  }
  if (spec.resize !== "squash" && spec.resize !== "center_crop") {
    throw new RangeError(`resize must be "squash" or "center_crop", got ${JSON.stringify(spec.resize)}`);
  }
}
