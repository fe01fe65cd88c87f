/**
 * One tfjs WASM instance in a worker thread of the WASM pool engine (tfjs disables WASM threads in Node, so
 * parallelism comes from one instance per core). Served through threads/pool.ts: workerData `{bundle, feature,
 * maxBatch}`; each task `{batch, n}` (batch transferred) is answered with the `[n, dim]` embeddings (transferred).
 */
import { resourceLimits } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { buildAnyFeatureExtractor } from "../../../shared/backbone/any-feature-extractor";
import type { BackboneBundle, FeatureSpec } from "../../../shared/backbone/types";
import { serveTasks } from "../threads/pool";
import { capWasmMemory } from "./sandbox";
import { embedWithExtractor } from "./tfjs-engine";

interface WasmWorkerData {
  bundle: BackboneBundle;
  feature: FeatureSpec;
  maxBatch: number;
  /** Test hook: a batch of exactly this many images crashes the worker (process.exit inside the thread). */
  crashOnBatchOf?: number;
  /** Test hook: a batch of exactly this many images never finishes (a stuck WASM call). */
  hangOnBatchOf?: number;
  /** Test hook: a batch of exactly this many images rejects with what the thread can see (`data.env`, its heap limit). */
  probeEnvOnBatchOf?: number;
  /** Set for a sandbox (engine/sandbox.ts): the WASM heap may not grow past this. */
  wasmHeapBytes?: number;
}

await serveTasks(
  async (data) => {
    const { bundle, feature, maxBatch, crashOnBatchOf, hangOnBatchOf, probeEnvOnBatchOf, wasmHeapBytes } = data as WasmWorkerData;
    // Before tfjs creates its WASM memory: the cap must be in place for every grow.
    if (wasmHeapBytes !== undefined) capWasmMemory(wasmHeapBytes);
    if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed to initialise");
    const extractor = await buildAnyFeatureExtractor(tf, bundle, feature);
    return { extractor, maxBatch, crashOnBatchOf, hangOnBatchOf, probeEnvOnBatchOf, dim: extractor.dim };
  },
  async ({ batch, n }: { batch: Float32Array; n: number }, state) => {
    if (n === state.crashOnBatchOf) process.exit(70);
    if (n === state.hangOnBatchOf) await new Promise(() => {});
    if (n === state.probeEnvOnBatchOf) throw Object.assign(new Error("env probe"), { data: { env: { ...process.env }, resourceLimits } });
    const embeddings = await embedWithExtractor(tf, state.extractor, batch, n, state.maxBatch);
    return { result: embeddings, transfer: [embeddings.buffer as ArrayBuffer] };
  },
);
