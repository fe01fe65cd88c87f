/**
 * Head training time on synthetic embeddings (400 x 1024, 5 classes, 40 epochs, no early stopping), per trainer:
 * tfjs on the cpu backend and on the wasm backend (the runner trains on wasm unless a native or GPU backend is up).
 * A plain-JS trainer was tried and dropped: 1.3x faster than wasm for a linear head, 2x slower for an MLP.
 *   npx tsx bench/train/head-speed.ts
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { trainHead, type HeadTrainingInput } from "../../gpu-runner/src/train/train-head";
import { hyperparametersSchema, type HeadSpec } from "../../shared/schemas";

tf.env().set("PROD", true);
const n = 400, dim = 1024, k = 5;
const embeddings = new Float32Array(n * dim);
const labels = new Int32Array(n);
for (let i = 0; i < n; i++) {
  labels[i] = i % k;
  for (let j = 0; j < dim; j++) embeddings[i * dim + j] = Math.sin(i * 7 + j) + (j % k === labels[i] ? 1 : 0);
}
const input: HeadTrainingInput = { embeddings, dim, labels, classCount: k, trainIndex: [...Array(n).keys()].filter((i) => i % 4 !== 3), valIndex: [...Array(n).keys()].filter((i) => i % 4 === 3) };
const hyperparameters = { ...hyperparametersSchema.parse({}), epochs: 40, early_stopping_patience: 0 };
const heads: HeadSpec[] = [{ type: "linear" }, { type: "mlp", hidden: [256], dropout: 0.2 }];
console.log("| trainer | head | ms (40 epochs) | final val acc |");
console.log("| --- | --- | --- | --- |");
for (const head of heads) {
  for (const trainer of ["tfjs-wasm", "tfjs-cpu"]) {
    await tf.setBackend(trainer.slice(5));
    const t = performance.now();
    const result = await trainHead(input, { head, hyperparameters }, {}, tf);
    const ms = performance.now() - t;
    console.log(`| ${trainer} | ${head.type} | ${ms.toFixed(0)} | ${(result.epochs.at(-1)!.val_accuracy * 100).toFixed(1)}% |`);
    if (trainer === "tfjs-cpu" && head.type === "mlp") break;
  }
}
