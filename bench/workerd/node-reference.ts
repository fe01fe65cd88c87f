/**
 * Node counterpart of forward.test.ts: same model, same image, tfjs WASM SIMD backend in Node.
 * Prints the reference numbers the workerd test pins (FACTS: Node WASM and workerd WASM agree bit for bit) and the
 * Node latencies of the plain and the fused graph. Run: npx tsx bench/workerd/node-reference.ts
 */
import { createRequire } from "node:module";
import * as core from "@tensorflow/tfjs-core";
import * as layers from "@tensorflow/tfjs-layers";
import "@tensorflow/tfjs-backend-wasm";
import type { Tfjs } from "../../workers/inference/tfjs-wasm";
import { buildFusedExecutor } from "./fused-executor";
import { syntheticImage, toModelArtifacts, type NsfwjsModelJson } from "./mobilenet-fixture";

const require = createRequire(import.meta.url);
const modelDir = "../../node_modules/nsfwjs/dist/models/mobilenet_v2/";
const modelJson = require(modelDir + "model.min.js") as NsfwjsModelJson;
const weightsBase64 = require(modelDir + "group1-shard1of1.min.js") as string;

const tf = { ...core, ...layers } as Tfjs;
await tf.setBackend("wasm");
const model = await tf.loadLayersModel(tf.io.fromMemory(toModelArtifacts(modelJson, weightsBase64)));
const image = syntheticImage(tf);

function p50(run: () => core.Tensor, iterations = 30): number {
  for (let i = 0; i < 3; i++) run().dispose();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const y = run();
    y.dataSync();
    times.push(performance.now() - t0);
    y.dispose();
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

const probabilities = (model.predict(image) as core.Tensor).dataSync();
console.log("dense_3 probabilities", JSON.stringify(Array.from(probabilities)));
const backbone = tf.model({ inputs: model.inputs, outputs: model.getLayer("flatten_1").output });
const embedding = (backbone.predict(image) as core.Tensor).dataSync();
console.log("flatten_1 first 8", JSON.stringify(Array.from(embedding.slice(0, 8))), "sum", Array.from(embedding).reduce((a, b) => a + b, 0));

for (const output of ["flatten_1", "dense_3"]) {
  const fused = buildFusedExecutor(tf, model, output);
  const plain = output === "dense_3" ? model : backbone;
  const a = (plain.predict(image) as core.Tensor).dataSync();
  const b = fused.run(image).dataSync();
  let maxDiff = 0, maxAbs = 0;
  for (let i = 0; i < a.length; i++) { maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!)); maxAbs = Math.max(maxAbs, Math.abs(a[i]!)); }
  console.log(`${output}: plain p50 ${p50(() => plain.predict(image) as core.Tensor).toFixed(1)} ms, fused p50 ${p50(() => fused.run(image)).toFixed(1)} ms, fused steps ${fused.stepCount}, max |diff| ${maxDiff.toExponential(2)} (max |value| ${maxAbs.toFixed(3)})`);
}
