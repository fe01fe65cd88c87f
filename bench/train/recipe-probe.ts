/**
 * Which training recipe for the default backbone: feature layers, L2, augmentation views, flip averaging? Scored by
 * 5-fold CV on flowers5's 300 TRAINING images only (folds over source images: an image's views stay with it); the
 * held-out accuracy of each recipe refit on all training images is printed beside it for information and never
 * used to choose.
 *
 *   npx tsx bench/train/recipe-probe.ts [--views K]
 *   env: LAYER_SETS="13;9,13" (conv_pw_ numbers), L2S="0.3,1", VIEW_COUNTS="0,4,8", TTAS="0,1",
 *        FEAT=none|sqrt|l2 (a feature transform before standardisation)
 *
 * Embeds every image in views 0..K once with the vendored MobileNet v1 0.75 at conv_pw_9..13 (avg), cached under
 * bench/out/recipe/, then fits linear heads with the runner's L-BFGS trainer (50 iterations, keep last).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import path from "node:path";
import { loadVendoredBundle } from "../../gpu-runner/src/backbones/builtin-vendored";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { createEngine } from "../../gpu-runner/src/engine/index";
import { trainHeadLbfgs } from "../../gpu-runner/src/train/lbfgs-head";
import { applyHead } from "../../shared/head";
import { averageEmbeddings } from "../../shared/image/augment";
import { decodeImage } from "../../shared/image/decode";
import { preprocessImage } from "../../shared/image/preprocess";
import { DEFAULT_BACKBONE, preprocessSpecOf, singleSizeSpec } from "../../shared/catalog";
import { hyperparametersSchema } from "../../shared/schemas";
import { flowersAvailable, listFlowersSplit, topOneAccuracy } from "../embed/flowers";

if (!flowersAvailable()) {
  console.log("skipped: ../shared/datasets/flowers5 not found (set EDGETUNE_SHARED_DIR)");
  process.exit(0);
}
const VIEWS = process.argv.includes("--views") ? Number(process.argv[process.argv.indexOf("--views") + 1]) : 8;
const LAYERS = ["conv_pw_9_relu", "conv_pw_10_relu", "conv_pw_11_relu", "conv_pw_12_relu", "conv_pw_13_relu"];
const CHANNELS = [384, 384, 384, 768, 768];
const OUT = path.resolve(import.meta.dirname, "../out/recipe");

const { classes, files, labels, train, held } = await listFlowersSplit();
const n = files.length;
const fullDim = CHANNELS.reduce((a, b) => a + b, 0);

async function embedView(view: number): Promise<Float32Array> {
  const file = path.join(OUT, `view-${view}.bin`);
  try {
    const bytes = await readFile(file);
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  } catch {}
  const codecs = await getNodeCodecs();
  // The published 224x224, one size (this probe predates the default's CV-chosen sizes: bench/train/input-probe.ts).
  const spec = { ...preprocessSpecOf(singleSizeSpec(DEFAULT_BACKBONE.spec)), input_size: [224, 224] as [number, number], view };
  const engine = await createEngine(await loadVendoredBundle(DEFAULT_BACKBONE), { feature_layers: LAYERS, pooling: "avg", input_size: [224, 224] }, { engine: "onnx" });
  if (engine.dim !== fullDim) throw new Error(`engine dim ${engine.dim}, expected ${fullDim}`);
  const out = new Float32Array(n * fullDim);
  for (let start = 0; start < n; start += 32) {
    const count = Math.min(32, n - start);
    const batch = new Float32Array(count * 224 * 224 * 3);
    for (let i = 0; i < count; i++) preprocessImage(await decodeImage(new Uint8Array(await readFile(files[start + i]!.path)), codecs), spec, batch.subarray(i * 224 * 224 * 3, (i + 1) * 224 * 224 * 3));
    out.set(await engine.embed(batch, count), start * fullDim);
  }
  await engine.close();
  await mkdir(OUT, { recursive: true });
  await writeFile(file, new Uint8Array(out.buffer));
  return out;
}

const started = Date.now();
const views: Float32Array[] = [];
for (let v = 0; v <= VIEWS; v++) views.push(await embedView(v));
console.log(`embeddings ready in ${((Date.now() - started) / 1000).toFixed(1)} s; load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

/** Columns of the chosen layers. */
function columns(layers: string[]): number[] {
  const cols: number[] = [];
  let offset = 0;
  LAYERS.forEach((layer, i) => {
    if (layers.includes(layer)) for (let c = 0; c < CHANNELS[i]!; c++) cols.push(offset + c);
    offset += CHANNELS[i]!;
  });
  return cols;
}
const FEAT = process.env.FEAT ?? "none";
function select(source: Float32Array, cols: number[]): Float32Array {
  const out = new Float32Array(n * cols.length);
  for (let i = 0; i < n; i++) for (let c = 0; c < cols.length; c++) out[i * cols.length + c] = source[i * fullDim + cols[c]!]!;
  if (FEAT === "sqrt") for (let k = 0; k < out.length; k++) out[k] = Math.sqrt(Math.max(0, out[k]!));
  if (FEAT === "l2") for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < cols.length; c++) s += out[i * cols.length + c]! ** 2;
    for (let c = 0; c < cols.length; c++) out[i * cols.length + c]! /= Math.sqrt(s) + 1e-9;
  }
  return out;
}

interface Recipe { layers: string[]; l2: number; smoothing: number; views: number; tta: boolean }

/** Fit on `fitRows` (plus their views 1..views), score on `scoreRows` (flip-averaged when tta). */
async function fitScore(r: Recipe, fitRows: number[], scoreRows: number[]): Promise<number> {
  const cols = columns(r.layers);
  const dim = cols.length;
  const perView = views.slice(0, r.views + 1).map((v) => select(v, cols));
  const base = r.tta ? averageEmbeddings(perView[0]!, select(views[1]!, cols)) : perView[0]!;
  // Rows: the (possibly flip-averaged) originals, then each view of the fit rows.
  const rows = fitRows.length * (r.views + 1) + scoreRows.length;
  const x = new Float32Array(rows * dim);
  const y = new Int32Array(rows);
  let at = 0;
  for (const i of fitRows) (x.set(base.subarray(i * dim, (i + 1) * dim), at * dim), (y[at++] = labels[i]!));
  for (let v = 1; v <= r.views; v++) for (const i of fitRows) (x.set(perView[v]!.subarray(i * dim, (i + 1) * dim), at * dim), (y[at++] = labels[i]!));
  const fitCount = at;
  for (const i of scoreRows) (x.set(base.subarray(i * dim, (i + 1) * dim), at * dim), (y[at++] = labels[i]!));
  const trainIndex = Array.from({ length: fitCount }, (_, k) => k);
  const valIndex = Array.from({ length: scoreRows.length }, (_, k) => fitCount + k);
  const hyperparameters = { ...hyperparametersSchema.parse({ label_smoothing: r.smoothing, epochs: 50, early_stopping_patience: 0 }), weight_decay: r.l2 };
  const trained = await trainHeadLbfgs({ embeddings: x, dim, labels: y, classCount: classes.length, trainIndex, valIndex }, { head: { type: "linear" }, hyperparameters, keep: "last" });
  const probs = applyHead(trained.head, x.subarray(fitCount * dim), scoreRows.length);
  return topOneAccuracy(probs, scoreRows, labels, classes.length);
}

const FOLDS = 5;
const foldOf = new Map<number, number>();
for (let c = 0; c < classes.length; c++) train.filter((i) => labels[i] === c).forEach((i, k) => foldOf.set(i, (k + c) % FOLDS));
async function cv(r: Recipe): Promise<number> {
  let total = 0;
  for (let f = 0; f < FOLDS; f++) total += await fitScore(r, train.filter((i) => foldOf.get(i) !== f), train.filter((i) => foldOf.get(i) === f));
  return total / FOLDS;
}

const grid: Recipe[] = [];
const layerSets = (process.env.LAYER_SETS ?? "13;9,13;11,13;12,13;11,12,13;9,11,13").split(";").map((s) => s.split(",").map((k) => `conv_pw_${k}_relu`));
const l2s = (process.env.L2S ?? "0.3,1,3,10").split(",").map(Number);
const viewCounts = (process.env.VIEW_COUNTS ?? "0").split(",").map(Number);
const ttas = (process.env.TTAS ?? "0").split(",").map((v) => v === "1");
for (const layers of layerSets) for (const l2 of l2s) for (const v of viewCounts) for (const tta of ttas) grid.push({ layers, l2, smoothing: 0.1, views: v, tta });
console.log("| layers | L2 | views | tta | CV (train, 5-fold) | held-out (not used to choose) | s |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const r of grid) {
  const t = Date.now();
  const c = await cv(r);
  const h = await fitScore(r, train, held);
  console.log(`| ${FEAT} ${r.layers.map((l) => l.replace("conv_pw_", "").replace("_relu", "")).join("+")} | ${r.l2} | ${r.views} | ${r.tta ? "flip" : "-"} | ${(c * 100).toFixed(1)}% | ${(h * 100).toFixed(1)}% | ${((Date.now() - t) / 1000).toFixed(1)} |`);
}
console.log(`load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
