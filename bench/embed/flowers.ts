/**
 * flowers5 loader for the embedding benchmarks: ../shared/datasets/flowers5 (400 JPEGs, 5 class folders), fixed
 * split (per class, sorted file names, every 4th file held out → 60 train / 20 val per class), decoded and resized
 * exactly as the platform does it (shared/image: mozjpeg via @jsquash, Pillow-style antialiased bilinear "squash"
 * of the whole image), mapped to the model's input range.
 */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { initCodecs, type ImageCodecs } from "../../shared/image/codecs";
import { preprocessImage, type PreprocessSpec } from "../../shared/image/preprocess";

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

let codecs: Promise<ImageCodecs> | undefined;
async function compile(specifier: string): Promise<WebAssembly.Module> {
  return WebAssembly.compile(await readFile(fileURLToPath(import.meta.resolve(specifier))));
}
function getCodecs(): Promise<ImageCodecs> {
  codecs ??= (async () =>
    initCodecs({
      jpeg: await compile("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm"),
      png: await compile("@jsquash/png/codec/pkg/squoosh_png_bg.wasm"),
    }))();
  return codecs;
}

/** The platform's preprocess spec for a square input mapped to `range` (`(x/255 - mean) / std`). */
export function preprocessSpecFor(size: number, range: [number, number]): PreprocessSpec {
  const [lo, hi] = range;
  const mean = -lo / (hi - lo);
  const std = 1 / (hi - lo);
  return { input_size: [size, size], mean: [mean, mean, mean], std: [std, std, std], resize: "squash" };
}

/** One photo of flowers5's fixed split: per class, sorted file names, every 4th held out. */
export interface FlowerFile {
  path: string;
  label: number;
  train: boolean;
}

/** The fixed split as file paths and labels (the recipe probes decode and embed them themselves). */
/**
 * flowers5's fixed split: within each class, files sorted by name, every 4th (index 3, 7, ...) is held out. Every
 * benchmark uses it, bench/scale's uploads included (as the dataset's own train/ and val/ folders).
 */
export const isHeldOut = (indexInClass: number): boolean => indexInClass % 4 === 3;

export async function listFlowersSplit(): Promise<{ classes: string[]; files: FlowerFile[]; labels: Int32Array; train: number[]; held: number[] }> {
  const classes = (await readdir(FLOWERS_DIR, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const files: FlowerFile[] = [];
  for (const [label, name] of classes.entries()) {
    const names = (await readdir(path.join(FLOWERS_DIR, name))).filter((f) => /\.jpe?g$/i.test(f)).sort();
    names.forEach((file, index) => files.push({ path: path.join(FLOWERS_DIR, name, file), label, train: !isHeldOut(index) }));
  }
  return {
    classes,
    files,
    labels: Int32Array.from(files, (f) => f.label),
    train: files.flatMap((f, i) => (f.train ? [i] : [])),
    held: files.flatMap((f, i) => (f.train ? [] : [i])),
  };
}

/** Top-1 accuracy of `probs` ([rows.length, classCount]) against `labels[rows[k]]`. */
export function topOneAccuracy(probs: Float32Array, rows: readonly number[], labels: Int32Array, classCount: number): number {
  let correct = 0;
  rows.forEach((row, k) => {
    let best = 0;
    for (let c = 1; c < classCount; c++) if (probs[k * classCount + c]! > probs[k * classCount + best]!) best = c;
    if (best === labels[row]) correct++;
  });
  return correct / rows.length;
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
  const spec = preprocessSpecFor(size, range);
  const pieces: tf.Tensor4D[] = [];
  const labels: number[] = [];
  const isTrain: boolean[] = [];
  const files: string[] = [];
  for (const [label, name] of classes.entries()) {
    const names = (await readdir(path.join(FLOWERS_DIR, name))).filter((f) => /\.jpe?g$/i.test(f)).sort();
    for (const [index, file] of names.entries()) {
      const bytes = await readFile(path.join(FLOWERS_DIR, name, file));
      const rgba = await (await getCodecs()).decodeJpeg(new Uint8Array(bytes));
      pieces.push(tf.tensor4d(preprocessImage(rgba, spec), [1, size, size, 3]));
      labels.push(label);
      isTrain.push(index % 4 !== 3);
      files.push(path.join(name, file));
    }
  }
  const images = tf.concat(pieces, 0) as tf.Tensor4D;
  tf.dispose(pieces);
  return { classes, images, labels: Int32Array.from(labels), isTrain, files };
}
