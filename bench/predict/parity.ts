/**
 * bench/predict/parity: do the edge's class probabilities equal the runner's? On real photos, in Node.
 *
 *   npx tsx bench/predict/parity.ts [--per-class 16]
 *
 * Embeds `--per-class` flowers5 photos per class (../shared/datasets/flowers5; every 4th held out) with the three
 * engines that compute the builtin MobileNetV2 embedding: onnxruntime-node (the runner's default engine), tfjs WASM
 * through tfjs-layers (the runner's tfjs path, shared/backbone/feature-extractor.ts) and the fused tfjs WASM backbone
 * the Worker runs (workers/inference/fused-backbone.ts; the workerd test shows workerd and Node WASM agree). Trains a
 * head the way the runner does (gpu-runner trainHead, default hyperparameters, linear and MLP) on the onnx
 * embeddings, then applies it with applyHead to each engine's embeddings of the held-out photos and prints the largest
 * difference of any class probability. Same decoder and preprocessing (shared/image) for all.
 */
import fs from "node:fs";
import path from "node:path";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { loadNsfwjsBundle } from "../../gpu-runner/src/backbones/builtin-nsfwjs";
import { createOnnxEngine } from "../../gpu-runner/src/engine/onnx-engine";
import { DEFAULT_HYPERPARAMETERS, DEFAULT_MLP_HEAD_SPEC } from "../../gpu-runner/src/train/defaults";
import { trainHead } from "../../gpu-runner/src/train/train-head";
import { buildFeatureExtractor } from "../../shared/backbone/feature-extractor";
import { NSFWJS_MOBILENET_V2, featureLayers, preprocessSpecOf } from "../../shared/catalog";
import { applyHead } from "../../shared/head";
import { imageToTensorInput } from "../../shared/image/preprocess";
import { compileFusedBackbone } from "../../workers/inference/fused-backbone";

const args = process.argv.slice(2);
const at = args.indexOf("--per-class");
const PER_CLASS = at >= 0 ? Number(args[at + 1]) || 16 : 16;
const FLOWERS = path.resolve(import.meta.dirname, "../../../shared/datasets/flowers5");
if (!fs.existsSync(FLOWERS)) {
  console.log(`skipped: ${FLOWERS} not found (it is the shared benchmark data, not part of the repository)`);
  process.exit(0);
}

const builtin = NSFWJS_MOBILENET_V2;
const labels = fs.readdirSync(FLOWERS).sort();
const files = labels.flatMap((label, classIndex) => fs.readdirSync(path.join(FLOWERS, label)).sort().slice(0, PER_CLASS).map((name, i) => ({ file: path.join(FLOWERS, label, name), classIndex, heldOut: i % 4 === 3 })));
const codecs = await getNodeCodecs();
const inputs = await Promise.all(files.map(async (f) => imageToTensorInput(new Uint8Array(fs.readFileSync(f.file)), preprocessSpecOf(builtin.spec), codecs)));

const bundle = await loadNsfwjsBundle();
const feature = { feature_layers: featureLayers(builtin.spec), pooling: builtin.spec.pooling, input_size: builtin.spec.input_size };
const core = await import("@tensorflow/tfjs-core");
const layers = await import("@tensorflow/tfjs-layers");
await import("@tensorflow/tfjs-backend-wasm");
await core.setBackend("wasm");

const embedAll = async (embed: (x: Float32Array) => Float32Array | Promise<Float32Array>, dim: number) => {
  const out = new Float32Array(inputs.length * dim);
  for (const [i, x] of inputs.entries()) out.set(await embed(x), i * dim);
  return out;
};
const onnx = await createOnnxEngine(bundle, feature, { threads: 2, maxBatch: 1, log: () => {} });
const dim = onnx.dim;
const byOnnx = await embedAll((x) => onnx.embed(x, 1), dim);
await onnx.close();
const extractor = await buildFeatureExtractor({ ...core, ...layers } as never, bundle, feature);
const byLayers = await embedAll((x) => {
  const y = core.tidy(() => extractor.embed(core.tensor4d(x, [1, 224, 224, 3])));
  const data = new Float32Array(y.dataSync() as Float32Array);
  y.dispose();
  return data;
}, dim);
extractor.dispose();
const fused = compileFusedBackbone(core, bundle.modelJson, bundle.weightData, feature);
const byFused = await embedAll((x) => fused.embed(x), dim);
fused.dispose();

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
console.log(`${files.length} photos (${labels.length} classes), ${dim}-d embeddings (max |value| ${maxAbs(byOnnx).toFixed(3)})`);
console.log(`embedding max |difference|: fused vs tfjs-layers ${maxDiff(byFused, byLayers).toExponential(2)}, onnx vs tfjs-layers ${maxDiff(byOnnx, byLayers).toExponential(2)}, fused vs onnx ${maxDiff(byFused, byOnnx).toExponential(2)}`);

const trainIndex = files.flatMap((f, i) => (f.heldOut ? [] : [i]));
const valIndex = files.flatMap((f, i) => (f.heldOut ? [i] : []));
const rows = (embeddings: Float32Array) => {
  const out = new Float32Array(valIndex.length * dim);
  valIndex.forEach((row, i) => out.set(embeddings.subarray(row * dim, (row + 1) * dim), i * dim));
  return out;
};
for (const head of [{ type: "linear" as const }, DEFAULT_MLP_HEAD_SPEC]) {
  const trained = await trainHead(
    { embeddings: byOnnx, dim, labels: Int32Array.from(files.map((f) => f.classIndex)), classCount: labels.length, trainIndex, valIndex, labelNames: labels },
    { head, hyperparameters: DEFAULT_HYPERPARAMETERS },
    {},
    { ...core, ...layers } as never,
  );
  const p = (embeddings: Float32Array) => applyHead(trained.head, rows(embeddings), valIndex.length);
  const [pOnnx, pLayers, pFused] = [p(byOnnx), p(byLayers), p(byFused)];
  console.log(
    `${head.type} head (best epoch ${trained.bestEpoch}), ${valIndex.length} held-out photos: max |probability difference| fused vs tfjs-layers ${maxDiff(pFused, pLayers).toExponential(2)}, ` +
      `fused vs onnx ${maxDiff(pFused, pOnnx).toExponential(2)}, tfjs-layers vs onnx ${maxDiff(pLayers, pOnnx).toExponential(2)}`,
  );
}
process.exit(0);
