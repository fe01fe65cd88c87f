/**
 * Which feature layers (and pooling, flip averaging, input size) give the best linear probe on flowers5?
 *
 *   npx tsx bench/embed/probe-layers.ts [--quick] [--cv] [--cv-only] [--engine onnx|tfjs-wasm] [--backbone mobilenet_v1_025|mobilenet_v1_075|nsfwjs_v2]
 *
 * For each backbone and each variant (input size, flip) we run the images once through an extractor whose outputs
 * are every candidate layer, avg- and max-pooled, cache those features under bench/out/, then fit a standardised
 * softmax linear probe (L2 1e-3, full-batch gradient descent to convergence) on the 300 training images of each combination and report accuracy on
 * the 100 held-out ones. The probe's L2 strength is fixed up front (1e-3); `--cv` also reports 5-fold CV accuracy on
 * the training images so a choice need not rest on the 100 held-out images alone (±5 points at n=100).
 * `--cv-only` reports the CV accuracy alone and never scores the held-out images: how the builtin default's
 * feature layers were chosen (shared/catalog.ts), so the held-out split stays untouched by that choice.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { buildFeatureExtractor } from "../../shared/backbone/feature-extractor";
import type { BackboneBundle, LayersModelJson } from "../../shared/backbone/types";
import { loadNsfwjsBundle } from "../../gpu-runner/src/backbones/builtin-nsfwjs";
import { loadBundleFromDir } from "../../gpu-runner/src/backbones/load-bundle";
import { createEngine, type EngineKind } from "../../gpu-runner/src/engine/index";
import { VENDORED_MOBILENET_V1_075_DIR } from "../../gpu-runner/src/backbones/builtin-vendored";
import { flowersAvailable, loadFlowers, MOBILENET_V1_DIR, type FlowerSet } from "./flowers";

const OUT_DIR = path.resolve(import.meta.dirname, "../out/probe");
/** Engine that computes features: onnx by default (matches tfjs-wasm within ~1e-5, about 10x faster here). */
const ENGINE = (process.argv.includes("--engine") ? process.argv[process.argv.indexOf("--engine") + 1] : "onnx") as EngineKind;

interface Candidate {
  backbone: "nsfwjs_v2" | "mobilenet_v1_025" | "mobilenet_v1_075";
  layers: string[];
}

const V2_LAYERS = ["block_10_project_BN", "block_11_add", "block_12_add", "block_13_expand_relu", "block_14_add", "block_15_add", "block_16_project_BN", "out_relu"];
const V1_LAYERS = ["conv_pw_9_relu", "conv_pw_10_relu", "conv_pw_11_relu", "conv_pw_12_relu", "conv_pw_13_relu"];

/** A copy of the bundle whose InputLayer takes `size`x`size` (the conv trunk is size-agnostic). */
function withInputSize(bundle: BackboneBundle, size: number): BackboneBundle {
  const modelJson = structuredClone(bundle.modelJson) as LayersModelJson;
  const layers = (modelJson.modelTopology.model_config?.config ?? modelJson.modelTopology.config)!.layers;
  for (const layer of layers) if (layer.class_name === "InputLayer") layer.config.batch_input_shape = [null, size, size, 3];
  return { ...bundle, modelJson };
}

interface FeatureTable {
  /** per layer: [n, c] average-pooled and max-pooled features */
  avg: Map<string, Float32Array>;
  max: Map<string, Float32Array>;
  channels: Map<string, number>;
}

async function computeFeatures(bundle: BackboneBundle, layers: string[], images: tf.Tensor4D, flip: boolean, key: string): Promise<FeatureTable> {
  const cachePath = path.join(OUT_DIR, `${key}.bin`);
  const metaPath = path.join(OUT_DIR, `${key}.json`);
  const n = images.shape[0];
  let data: Float32Array;
  let channels: number[];
  try {
    channels = JSON.parse(await readFile(metaPath, "utf8")).channels;
    const bytes = await readFile(cachePath);
    data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  } catch {
    const feature = { feature_layers: layers, pooling: "avg+max" as const, flip_average: flip };
    // Channel counts come from a tfjs build of the same spec (cheap: no inference).
    const reference = await buildFeatureExtractor(tf, bundle, feature);
    channels = reference.layerChannels;
    reference.dispose();
    const engine = await createEngine(bundle, feature, { engine: ENGINE });
    const started = Date.now();
    data = await engine.embed((await images.data()) as Float32Array, n);
    console.log(`  ${key}: ${n} images in ${((Date.now() - started) / 1000).toFixed(1)} s with ${engine.name}`);
    await engine.close();
    await mkdir(OUT_DIR, { recursive: true });
    await writeFile(cachePath, new Uint8Array(data.buffer));
    await writeFile(metaPath, JSON.stringify({ layers, channels }));
  }
  const dim = channels.reduce((a, c) => a + 2 * c, 0);
  const table: FeatureTable = { avg: new Map(), max: new Map(), channels: new Map() };
  let offset = 0;
  layers.forEach((layer, index) => {
    const c = channels[index]!;
    const avg = new Float32Array(n * c);
    const max = new Float32Array(n * c);
    for (let i = 0; i < n; i++) {
      avg.set(data.subarray(i * dim + offset, i * dim + offset + c), i * c);
      max.set(data.subarray(i * dim + offset + c, i * dim + offset + 2 * c), i * c);
    }
    table.avg.set(layer, avg);
    table.max.set(layer, max);
    table.channels.set(layer, c);
    offset += 2 * c;
  });
  return table;
}

function assemble(table: FeatureTable, layers: string[], pooling: "avg" | "avg+max", n: number): { x: Float32Array; dim: number } {
  const parts: { data: Float32Array; c: number }[] = [];
  for (const layer of layers) {
    const c = table.channels.get(layer)!;
    parts.push({ data: table.avg.get(layer)!, c });
    if (pooling === "avg+max") parts.push({ data: table.max.get(layer)!, c });
  }
  const dim = parts.reduce((a, p) => a + p.c, 0);
  const x = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    let offset = 0;
    for (const p of parts) {
      x.set(p.data.subarray(i * p.c, (i + 1) * p.c), i * dim + offset);
      offset += p.c;
    }
  }
  return { x, dim };
}

/**
 * L2-regularised softmax regression on standardised features, run to convergence, returns held-out accuracy.
 * Solved in the span of the training samples (W = Zᵀ A, representer theorem), which is exactly primal gradient
 * descent on W but costs O(n² k) per step instead of O(n d k): milliseconds per fit instead of seconds.
 */
function probeAccuracy(x: Float32Array, dim: number, labels: Int32Array, trainIdx: number[], testIdx: number[], classes: number, l2 = 1e-3, steps = 600): number {
  const nTrain = trainIdx.length;
  // Standardise with training statistics.
  const mean = new Float64Array(dim);
  const std = new Float64Array(dim);
  for (const i of trainIdx) for (let d = 0; d < dim; d++) mean[d]! += x[i * dim + d]! / nTrain;
  for (const i of trainIdx) for (let d = 0; d < dim; d++) std[d]! += (x[i * dim + d]! - mean[d]!) ** 2 / nTrain;
  for (let d = 0; d < dim; d++) std[d] = Math.sqrt(std[d]!) + 1e-6;
  const rows = [...trainIdx, ...testIdx];
  const z = rows.map((i) => {
    const row = new Float64Array(dim);
    for (let d = 0; d < dim; d++) row[d] = (x[i * dim + d]! - mean[d]!) / std[d]!;
    return row;
  });
  // Gram matrix rows for train (against train) and test (against train).
  const gram = rows.map((_, r) => {
    const out = new Float64Array(nTrain);
    const zr = z[r]!;
    for (let t = 0; t < nTrain; t++) {
      const zt = z[t]!;
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += zr[d]! * zt[d]!;
      out[t] = dot;
    }
    return out;
  });
  // Step size from the largest eigenvalue of K / n (power iteration): the CE Hessian is at most K / (2n) + 2 l2.
  let v = new Float64Array(nTrain).fill(1);
  let eig = 0;
  for (let it = 0; it < 30; it++) {
    const w = new Float64Array(nTrain);
    for (let r = 0; r < nTrain; r++) {
      let dot = 0;
      for (let t = 0; t < nTrain; t++) dot += gram[r]![t]! * v[t]!;
      w[r] = dot;
    }
    eig = Math.hypot(...w);
    v = w.map((value) => value / eig);
  }
  const lr = 1 / (eig / (2 * nTrain) + 2 * l2);
  const a = new Float64Array(nTrain * classes);
  const bias = new Float64Array(classes);
  const velocityA = new Float64Array(nTrain * classes);
  const velocityB = new Float64Array(classes);
  const logits = new Float64Array(classes);
  const momentum = 0.9;
  for (let step = 0; step < steps; step++) {
    const gradA = new Float64Array(nTrain * classes);
    const gradB = new Float64Array(classes);
    for (let r = 0; r < nTrain; r++) {
      const k = gram[r]!;
      for (let c = 0; c < classes; c++) {
        let sum = bias[c]!;
        for (let t = 0; t < nTrain; t++) sum += k[t]! * a[t * classes + c]!;
        logits[c] = sum;
      }
      const max = Math.max(...logits);
      let total = 0;
      for (let c = 0; c < classes; c++) total += (logits[c] = Math.exp(logits[c]! - max));
      const label = labels[trainIdx[r]!]!;
      for (let c = 0; c < classes; c++) {
        const g = (logits[c]! / total - (c === label ? 1 : 0)) / nTrain;
        gradA[r * classes + c]! += g;
        gradB[c]! += g;
      }
    }
    for (let i = 0; i < a.length; i++) {
      velocityA[i] = momentum * velocityA[i]! - lr * (gradA[i]! + 2 * l2 * a[i]!);
      a[i]! += velocityA[i]!;
    }
    for (let c = 0; c < classes; c++) {
      velocityB[c] = momentum * velocityB[c]! - lr * gradB[c]!;
      bias[c]! += velocityB[c]!;
    }
  }
  let correct = 0;
  testIdx.forEach((i, k) => {
    const row = gram[nTrain + k]!;
    let best = -Infinity;
    let arg = -1;
    for (let c = 0; c < classes; c++) {
      let sum = bias[c]!;
      for (let t = 0; t < nTrain; t++) sum += row[t]! * a[t * classes + c]!;
      if (sum > best) [best, arg] = [sum, c];
    }
    correct += arg === labels[i] ? 1 : 0;
  });
  return correct / testIdx.length;
}

function crossValidated(x: Float32Array, dim: number, labels: Int32Array, trainIdx: number[], classes: number, folds = 5): number {
  let total = 0;
  for (let f = 0; f < folds; f++) {
    const fit = trainIdx.filter((_, k) => k % folds !== f);
    const held = trainIdx.filter((_, k) => k % folds === f);
    total += probeAccuracy(x, dim, labels, fit, held, classes);
  }
  return total / folds;
}

function combos(layers: string[]): string[][] {
  const single = layers.map((l) => [l]);
  const pairs: string[][] = [];
  for (let i = 0; i < layers.length; i++) for (let j = i + 1; j < layers.length; j++) pairs.push([layers[i]!, layers[j]!]);
  const triples: string[][] = [];
  for (let i = 0; i + 2 < layers.length; i++) triples.push(layers.slice(i, i + 3));
  return [...single, ...pairs, ...triples];
}

async function main(): Promise<void> {
  if (!flowersAvailable()) {
    console.log("skip: ../shared/datasets/flowers5 not found (set EDGETUNE_SHARED_DIR)");
    return;
  }
  const quick = process.argv.includes("--quick");
  const cvOnly = process.argv.includes("--cv-only");
  const withCv = cvOnly || process.argv.includes("--cv");
  await tf.setBackend("wasm");
  const rows: string[] = ["| backbone | input | flip | layers | pooling | dim | val acc | cv acc (train, 5-fold) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"];
  const backbones: Array<{ id: Candidate["backbone"]; bundle: BackboneBundle; layers: string[]; sizes: number[] }> = [
    { id: "mobilenet_v1_025", bundle: await loadBundleFromDir(MOBILENET_V1_DIR, { inputRange: [-1, 1] }), layers: V1_LAYERS, sizes: quick ? [224] : [224, 288, 320] },
    { id: "mobilenet_v1_075", bundle: await loadBundleFromDir(VENDORED_MOBILENET_V1_075_DIR, { inputRange: [-1, 1] }), layers: V1_LAYERS, sizes: [224] },
    { id: "nsfwjs_v2", bundle: await loadNsfwjsBundle(), layers: V2_LAYERS, sizes: [224] },
  ];
  const only = process.argv.includes("--backbone") ? process.argv[process.argv.indexOf("--backbone") + 1] : undefined;
  for (const { id, bundle, layers, sizes } of backbones.filter((b) => !only || b.id === only)) {
    for (const size of sizes) {
      const flowers: FlowerSet = await loadFlowers(size, bundle.inputRange);
      const trainIdx = flowers.isTrain.flatMap((t, i) => (t ? [i] : []));
      const testIdx = flowers.isTrain.flatMap((t, i) => (t ? [] : [i]));
      for (const flip of quick ? [false] : [false, true]) {
        const table = await computeFeatures(withInputSize(bundle, size), layers, flowers.images, flip, `${id}-${size}-${flip ? "flip" : "plain"}`);
        for (const combo of combos(layers)) {
          for (const pooling of ["avg", "avg+max"] as const) {
            const { x, dim } = assemble(table, combo, pooling, flowers.labels.length);
            const acc = cvOnly ? NaN : probeAccuracy(x, dim, flowers.labels, trainIdx, testIdx, flowers.classes.length);
            const cv = !withCv ? NaN : crossValidated(x, dim, flowers.labels, trainIdx, flowers.classes.length);
            const row = `| ${id} | ${size} | ${flip ? "yes" : "no"} | ${combo.join(" + ")} | ${pooling} | ${dim} | ${(acc * 100).toFixed(0)}% | ${(cv * 100).toFixed(1)}% |`;
            console.log(row);
            rows.push(row);
          }
        }
      }
      flowers.images.dispose();
    }
  }
  await mkdir(OUT_DIR, { recursive: true });
  await writeFile(path.join(OUT_DIR, "results.md"), rows.join("\n") + "\n");
  console.log(`\nwrote ${path.join(OUT_DIR, "results.md")}`);
}

await main();
