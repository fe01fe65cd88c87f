/**
 * flowers5 loader for the embedding benchmarks: ../shared/datasets/flowers5 (400 JPEGs, 5 class folders), fixed
 * split (per class, sorted file names, every 4th file held out → 60 train / 20 val per class), decoded with
 * @jsquash/jpeg (mozjpeg, the decoder the Worker uses), resized bilinearly (whole image, half-pixel centres) to the
 * model's size and mapped to the model's input range.
 */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import decodeJpeg, { init as initJpeg } from "@jsquash/jpeg/decode.js";

export const SHARED_DIR = process.env.EDGETUNE_SHARED_DIR ?? path.resolve(fileURLToPath(import.meta.url), "../../../../shared");
export const FLOWERS_DIR = path.join(SHARED_DIR, "datasets", "flowers5");
export const MOBILENET_V1_DIR = path.join(SHARED_DIR, "backbones", "mobilenet_v1_025_224");

export interface FlowerSet {
  classes: string[];
  /** `[n, size, size, 3]` float32 in `range`. */
  images: tf.Tensor4D;
  labels: Int32Array;
  isTrain: boolean[];
  files: string[];
}

let jpegReady: Promise<void> | undefined;
function ensureJpegDecoder(): Promise<void> {
  jpegReady ??= (async () => {
    const wasmPath = fileURLToPath(import.meta.resolve("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm"));
    const module = await WebAssembly.compile(await readFile(wasmPath));
    await (initJpeg as unknown as (m: WebAssembly.Module) => Promise<void>)(module);
  })();
  return jpegReady;
}

/** Decodes one JPEG to `[h, w, 3]` uint8 RGB (alpha dropped). */
export async function decodeJpegToTensor(bytes: ArrayBuffer): Promise<tf.Tensor3D> {
  await ensureJpegDecoder();
  const image = await decodeJpeg(bytes);
  const rgba = image.data as Uint8ClampedArray;
  const rgb = new Uint8Array(image.width * image.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]!;
    rgb[j + 1] = rgba[i + 1]!;
    rgb[j + 2] = rgba[i + 2]!;
  }
  return tf.tensor3d(rgb, [image.height, image.width, 3], "int32");
}

export function flowersAvailable(): boolean {
  return existsSync(FLOWERS_DIR);
}

/** Loads all of flowers5 at `size`x`size`, values mapped from [0, 255] to `range`. */
export async function loadFlowers(size: number, range: [number, number]): Promise<FlowerSet> {
  const classes = (await readdir(FLOWERS_DIR, { withFileTypes: true }))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const pieces: tf.Tensor4D[] = [];
  const labels: number[] = [];
  const isTrain: boolean[] = [];
  const files: string[] = [];
  for (const [label, name] of classes.entries()) {
    const names = (await readdir(path.join(FLOWERS_DIR, name))).filter((f) => /\.jpe?g$/i.test(f)).sort();
    for (const [index, file] of names.entries()) {
      const bytes = await readFile(path.join(FLOWERS_DIR, name, file));
      const decoded = await decodeJpegToTensor(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      pieces.push(
        tf.tidy(() => {
          const resized = tf.image.resizeBilinear(decoded.toFloat(), [size, size], false, true);
          const scaled = resized.mul((range[1] - range[0]) / 255).add(range[0]);
          return scaled.expandDims(0) as tf.Tensor4D;
        }),
      );
      decoded.dispose();
      labels.push(label);
      isTrain.push(index % 4 !== 3);
      files.push(path.join(name, file));
    }
  }
  const images = tf.concat(pieces, 0) as tf.Tensor4D;
  tf.dispose(pieces);
  return { classes, images, labels: Int32Array.from(labels), isTrain, files };
}
