/**
 * One tfjs WASM instance in a worker thread of the WASM pool engine (tfjs disables WASM threads in Node, so
 * parallelism comes from one instance per core). Served through threads/pool.ts: workerData `{bundle, feature,
 * maxBatch}`; each task `{batch, n}` (batch transferred) is answered with the `[n, dim]` embeddings (transferred).
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { buildAnyFeatureExtractor } from "../../../shared/backbone/any-feature-extractor";
import type { BackboneBundle, FeatureSpec } from "../../../shared/backbone/types";
import { serveTasks } from "../threads/pool";
import { embedWithExtractor } from "./tfjs-engine";

interface WasmWorkerData {
  bundle: BackboneBundle;
  feature: FeatureSpec;
  maxBatch: number;
  /** Test hook: a batch of exactly this many images crashes the worker (process.exit inside the thread). */
  crashOnBatchOf?: number;
  /** Test hook: a batch of exactly this many images never finishes (a stuck WASM call). */
  hangOnBatchOf?: number;
}

await serveTasks(
  async (data) => {
    const { bundle, feature, maxBatch, crashOnBatchOf, hangOnBatchOf } = data as WasmWorkerData;
    if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed to initialise");
    const extractor = await buildAnyFeatureExtractor(tf, bundle, feature);
    return { extractor, maxBatch, crashOnBatchOf, hangOnBatchOf, dim: extractor.dim };
  },
  async ({ batch, n }: { batch: Float32Array; n: number }, state) => {
    if (n === state.crashOnBatchOf) process.exit(70);
    if (n === state.hangOnBatchOf) await new Promise(() => {});
    const embeddings = await embedWithExtractor(tf, state.extractor, batch, n, state.maxBatch);
    return { result: embeddings, transfer: [embeddings.buffer as ArrayBuffer] };
  },
);
