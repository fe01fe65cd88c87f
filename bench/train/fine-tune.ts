/**
 * Partial fine-tuning against head-only on flowers5's fixed split (per class, sorted file names, every 4th file held
 * out → 300 train / 100 val), the default backbone (builtin MobileNet v1 0.75), without the platform: the runner's
 * own code (onnx trunk to the cut, gpu-runner/src/train/fine-tune.ts, L-BFGS linear heads). Side by side in one run:
 *   - head-only, the backbone's feature spec (conv_pw_9 + conv_pw_13 avg), linear head on all 300 training images;
 *   - head-only on conv_pw_13 alone (what the fine-tuned blocks start from);
 *   - fine_tune blocks 1 (and 2 with --blocks 2): blocks trained on 240 fit images with early stopping on 60 holdout
 *     images, then a linear head on the 300 training images' fine-tuned embeddings.
 * Held-out accuracy on the 100 val images, wall time of each step, os.loadavg().
 *
 *   npx tsx bench/train/fine-tune.ts [--blocks 1|2|both]
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { extractBlocks } from "../../shared/backbone/separable-blocks";
import type { FeatureSpec } from "../../shared/backbone/types";
import { featureSpecOf, preprocessSpecOf, singleSizeSpec, DEFAULT_BACKBONE } from "../../shared/catalog";
import { applyHead } from "../../shared/head";
import { imageToTensorInput, inputTensorLength } from "../../shared/image/preprocess";
import { loadVendoredBundle } from "../../gpu-runner/src/backbones/builtin-vendored";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { createEngine } from "../../gpu-runner/src/engine";
import { embedWithBlocks, fineTuneBlocks } from "../../gpu-runner/src/train/fine-tune";
import { trainHeadLbfgs } from "../../gpu-runner/src/train/lbfgs-head";
import { hyperparametersSchema } from "../../shared/schemas";

const here = path.dirname(fileURLToPath(import.meta.url));
const FLOWERS = path.join(process.env.EDGETUNE_SHARED_DIR ?? path.resolve(here, "../../../shared"), "datasets", "flowers5");
if (!existsSync(FLOWERS)) {
  console.log(`skipped: ${FLOWERS} not found (set EDGETUNE_SHARED_DIR)`);
  process.exit(0);
}
const which = process.argv.includes("--blocks") ? process.argv[process.argv.indexOf("--blocks") + 1]! : "1";
const blockCounts = which === "both" ? [1, 2] : [Number(which)];
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
const timed = async <T>(what: string, fn: () => Promise<T> | T): Promise<T> => {
  const t = performance.now();
  const value = await fn();
  console.log(`${what}: ${((performance.now() - t) / 1000).toFixed(1)} s (load ${load()})`);
  return value;
};

await tf.setBackend("wasm");
tf.env().set("PROD", true);
const entry = DEFAULT_BACKBONE;
const bundle = await loadVendoredBundle(entry);
const codecs = await getNodeCodecs();
const items: { file: string; label: number; val: boolean }[] = [];
const labelNames = readdirSync(FLOWERS).sort();
labelNames.forEach((label, labelIndex) => {
  readdirSync(path.join(FLOWERS, label)).filter((f) => /\.jpe?g$/i.test(f)).sort().forEach((file, index) => items.push({ file: path.join(FLOWERS, label, file), label: labelIndex, val: index % 4 === 3 }));
});
const labels = Int32Array.from(items, (item) => item.label);
const trainIndex = items.flatMap((item, i) => (item.val ? [] : [i]));
const valIndex = items.flatMap((item, i) => (item.val ? [i] : []));
// Fine-tuning feeds one input size (shared/catalog.ts singleSizeSpec), as the runner does.
const singleSize = singleSizeSpec(entry.spec);
const perImage = inputTensorLength(preprocessSpecOf(singleSize));
const pixels = await timed(`decode ${items.length} images`, async () => {
  const out = new Float32Array(items.length * perImage);
  for (const [i, item] of items.entries()) out.set(await imageToTensorInput(readFileSync(item.file), preprocessSpecOf(singleSize), codecs), i * perImage);
  return out;
});
const runEngine = async (feature: FeatureSpec) => {
  const engine = await createEngine(bundle, feature, { engine: "onnx", threads: 2 });
  try {
    return { values: await engine.embed(pixels, items.length), dim: engine.dim };
  } finally {
    await engine.close();
  }
};
const params = hyperparametersSchema.parse({});
const linearAccuracy = async (embeddings: Float32Array, dim: number) => {
  const { head } = await trainHeadLbfgs({ embeddings, dim, labels, classCount: labelNames.length, trainIndex, valIndex }, { head: { type: "linear" }, hyperparameters: params, keep: "best_val" });
  const val = new Float32Array(valIndex.length * dim);
  valIndex.forEach((row, i) => val.set(embeddings.subarray(row * dim, (row + 1) * dim), i * dim));
  const probs = applyHead(head, val, valIndex.length);
  let correct = 0;
  valIndex.forEach((row, i) => {
    const p = probs.subarray(i * labelNames.length, (i + 1) * labelNames.length);
    correct += p.indexOf(Math.max(...p)) === labels[row] ? 1 : 0;
  });
  return correct / valIndex.length;
};

const spec = featureSpecOf(singleSize);
const headOnly = await timed("head-only (spec features): embed + linear head", async () => {
  const { values, dim } = await runEngine(spec);
  return linearAccuracy(values, dim);
});
console.log(`  held-out accuracy ${(headOnly * 100).toFixed(1)}% (${spec.feature_layers.join(" + ")}, ${spec.pooling})`);
const last = await timed("head-only (conv_pw_13_relu avg): embed + linear head", async () => {
  const { values, dim } = await runEngine({ ...spec, feature_layers: ["conv_pw_13_relu"], pooling: "avg" });
  return linearAccuracy(values, dim);
});
console.log(`  held-out accuracy ${(last * 100).toFixed(1)}%`);

for (const count of blockCounts) {
  const stack = extractBlocks(bundle.modelJson, bundle.weightData, count, entry.spec.input_size);
  const cut = await timed(`fine_tune ${count}: trunk to ${stack.cutLayer} (${stack.blocks[0]!.inputShape.join("x")})`, () => runEngine({ ...spec, feature_layers: [stack.cutLayer], pooling: "none" }));
  const result = await timed(`fine_tune ${count}: train blocks`, () => fineTuneBlocks(tf, { stack, activations: cut.values, labels, classCount: labelNames.length, trainIndex, seed: params.seed, labelSmoothing: params.label_smoothing }, { onEpoch: (e) => console.log(`  epoch ${e.epoch}: train loss ${e.train_loss.toFixed(4)} holdout loss ${e.holdout_loss.toFixed(4)} acc ${(e.holdout_accuracy * 100).toFixed(1)}% (load ${load()})`) }));
  console.log(`  best epoch ${result.bestEpoch}; holdout accuracy head-only ${(result.holdoutAccuracyHeadOnly * 100).toFixed(1)}% → fine-tuned ${(result.holdoutAccuracyFineTuned * 100).toFixed(1)}% (${result.fitCount} fit / ${result.holdoutCount} holdout)`);
  const k = stack.blocks[stack.blocks.length - 1]!.outputShape[2];
  const accuracy = await timed(`fine_tune ${count}: embed with blocks + linear head`, () => linearAccuracy(embedWithBlocks(tf, result.stack, cut.values, items.map((_, i) => i)), k));
  console.log(`  held-out accuracy ${(accuracy * 100).toFixed(1)}%`);
}
