/** Head training time per tfjs backend on synthetic embeddings (400 x 1024, 5 classes, 40 epochs): npx tsx bench/train/head-speed.ts cpu|wasm */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { trainHead } from "../../gpu-runner/src/train/train-head";
import { hyperparametersSchema } from "../../shared/schemas";
tf.env().set("PROD", true);
const backend = process.argv[2] ?? "cpu";
await tf.setBackend(backend); await tf.ready();
const n = 400, dim = 1024, k = 5;
const emb = new Float32Array(n * dim); const labels = new Int32Array(n);
for (let i = 0; i < n; i++) { labels[i] = i % k; for (let j = 0; j < dim; j++) emb[i * dim + j] = Math.sin(i * 7 + j) + (j % k === labels[i] ? 1 : 0); }
const trainIndex = [...Array(n).keys()].filter((i) => i % 4 !== 3), valIndex = [...Array(n).keys()].filter((i) => i % 4 === 3);
for (const head of [{ type: "linear" }, { type: "mlp", hidden: [256], dropout: 0.2 }] as const) {
  const t = performance.now();
  const r = await trainHead({ embeddings: emb, dim, labels, classCount: k, trainIndex, valIndex }, { head: head as any, hyperparameters: { ...hyperparametersSchema.parse({}), epochs: 40, early_stopping_patience: 0 } }, {}, tf);
  console.log(backend, head.type, `${(performance.now() - t).toFixed(0)} ms for ${r.epochs.length} epochs`);
}
