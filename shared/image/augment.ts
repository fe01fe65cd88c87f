/**
 * Deterministic transformed views of an image, for training-time augmentation (`augmentation: {"views": K}`) and
 * test-time flip averaging (`tta: "flip"`). A view is a number:
 * - view 0: the image as served (no transform);
 * - view 1: its horizontal mirror, exactly the plain input tensor with its columns reversed (`mirrorInputTensor`),
 *   so the edge's flip averaging and the runner's cached view-1 embeddings come from the same floats;
 * - view k ≥ 2: a crop (60 to 100% of the area, aspect 3:4 to 4:3, anywhere in the frame), mirrored half the time,
 *   with small colour changes (brightness ±0.08, contrast ×0.9 to 1.1, each channel's gain ×0.95 to 1.05).
 * The parameters of view k depend on k alone (a seeded stream, integer arithmetic and IEEE + − × ÷ √ only), so the
 * same bytes give the same view tensor in Node and in workerd, and an image's view k is cached like any embedding,
 * keyed by (backbone, image sha256, view, `AUGMENT_VERSION`, preprocessing version).
 */
import { createRandom, deriveSeed } from "../random";

/** Keys cached view embeddings: bump it whenever a view's parameters or how they are applied change. */
export const AUGMENT_VERSION = "aug-1";

/** The view that is the image's horizontal mirror (what test-time flip averaging embeds). */
export const MIRROR_VIEW = 1;

/** Most views a job may ask for (each costs one backbone run per training image, once). */
export const MAX_VIEWS = 16;

/** What a view does, in the order it is applied: crop (fractions of the resize box), resize, colour, mirror. */
export interface ViewTransform {
  /** Fractions of the resize box ([0, 1] each; x0 < x1, y0 < y1). */
  crop: { x0: number; y0: number; x1: number; y1: number };
  /** Added to pixel values in [0, 1] after the contrast change. */
  brightness: number;
  /** Pixel values in [0, 1] are scaled by this around 0.5. */
  contrast: number;
  /** Per-channel multiplier (R, G, B) applied last, then clamped to [0, 1]. */
  gains: [number, number, number];
  mirror: boolean;
}

const IDENTITY: ViewTransform = { crop: { x0: 0, y0: 0, x1: 1, y1: 1 }, brightness: 0, contrast: 1, gains: [1, 1, 1], mirror: false };
/** Seeds view parameters ("aug1" in ASCII): fixed, so view k is the same transform everywhere and forever. */
const VIEW_SEED = 0x61756731;

/** The transform of view `view` (see the file comment). */
export function viewTransform(view: number): ViewTransform {
  if (!Number.isInteger(view) || view < 0 || view > MAX_VIEWS) throw new RangeError(`view must be an integer in [0, ${MAX_VIEWS}], got ${view}`);
  if (view === 0) return IDENTITY;
  if (view === MIRROR_VIEW) return { ...IDENTITY, mirror: true };
  const random = createRandom(deriveSeed(VIEW_SEED, view));
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * random.nextFloat();
  const area = uniform(0.6, 1);
  const aspect = uniform(0.75, 4 / 3);
  const width = Math.min(1, Math.sqrt(area * aspect));
  const height = Math.min(1, Math.sqrt(area / aspect));
  const x0 = uniform(0, 1 - width);
  const y0 = uniform(0, 1 - height);
  return {
    crop: { x0, y0, x1: x0 + width, y1: y0 + height },
    brightness: uniform(-0.08, 0.08),
    contrast: uniform(0.9, 1.1),
    gains: [uniform(0.95, 1.05), uniform(0.95, 1.05), uniform(0.95, 1.05)],
    mirror: random.nextFloat() < 0.5,
  };
}

/** True when the transform changes colours (the normalisation table must then be built per view). */
export function changesColour(transform: ViewTransform): boolean {
  return transform.brightness !== 0 || transform.contrast !== 1 || transform.gains.some((gain) => gain !== 1);
}

/**
 * The per-channel lookup table of a view: byte value v → `(colour(v / 255) - mean) / std` rounded once to float32,
 * where colour applies the transform's contrast, brightness and gain and clamps to [0, 1].
 */
export function viewNormalizationTable(transform: ViewTransform, mean: readonly number[], std: readonly number[]): Float32Array {
  const table = new Float32Array(768);
  for (let c = 0; c < 3; c++) {
    for (let v = 0; v < 256; v++) {
      const value = ((v / 255 - 0.5) * transform.contrast + 0.5 + transform.brightness) * transform.gains[c]!;
      table[c * 256 + v] = (Math.min(1, Math.max(0, value)) - mean[c]!) / std[c]!;
    }
  }
  return table;
}

/**
 * The input tensor with its columns reversed (a horizontal mirror).
 * @param tensor shape [height, width, 3] (one image) or [n, height, width, 3] when `count` > 1, NHWC.
 * @returns a new Float32Array of the same shape.
 */
export function mirrorInputTensor(tensor: Float32Array, height: number, width: number, count = 1): Float32Array {
  if (tensor.length !== count * height * width * 3) throw new RangeError(`tensor holds ${tensor.length} floats, not ${count}x${height}x${width}x3`);
  const out = new Float32Array(tensor.length);
  for (let row = 0; row < count * height; row++) {
    const base = row * width * 3;
    for (let x = 0; x < width; x++) {
      const from = base + x * 3;
      const to = base + (width - 1 - x) * 3;
      out[to] = tensor[from]!;
      out[to + 1] = tensor[from + 1]!;
      out[to + 2] = tensor[from + 2]!;
    }
  }
  return out;
}

/**
 * `mirrorInputTensor` of each input size's part of a multi-size input tensor (shared/image/preprocess.ts inputSizes):
 * what `preprocessImage` gives for view 1.
 */
export function mirrorInputSizes(tensor: Float32Array, sizes: readonly [number, number][]): Float32Array {
  if (sizes.length === 1) return mirrorInputTensor(tensor, sizes[0]![0], sizes[0]![1]);
  const out = new Float32Array(tensor.length);
  let offset = 0;
  for (const [height, width] of sizes) {
    const length = height * width * 3;
    out.set(mirrorInputTensor(tensor.subarray(offset, offset + length), height, width), offset);
    offset += length;
  }
  if (offset !== tensor.length) throw new RangeError(`tensor holds ${tensor.length} floats, not ${offset}`);
  return out;
}

/**
 * Mean of embeddings of the same length, in float32 (`(a + b) / 2` per value for two, rounded once): how flip
 * averaging combines an image's and its mirror's embedding, and how a backbone with several input sizes combines
 * each size's, on the runner and at the edge alike.
 */
export function averageEmbeddings(...parts: Float32Array[]): Float32Array {
  const [first, ...rest] = parts;
  if (!first) throw new RangeError("averageEmbeddings needs at least one embedding");
  for (const part of rest) if (part.length !== first.length) throw new RangeError(`embeddings differ in length: ${first.length} and ${part.length}`);
  const out = new Float32Array(first.length);
  for (let i = 0; i < first.length; i++) {
    let sum = first[i]!;
    for (const part of rest) sum += part[i]!;
    out[i] = sum / parts.length;
  }
  return out;
}
