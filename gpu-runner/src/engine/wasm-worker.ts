/**
 * One tfjs WASM instance in a worker thread (tfjs disables WASM threads in Node, so parallelism comes from one
 * instance per core). Protocol: workerData `{bundle, feature, maxBatch}`; posts `{type: "ready", dim}` or
 * `{type: "error", message}`; answers `{id, batch, n}` with `{id, embeddings}` or `{id, error}`.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { buildAnyFeatureExtractor } from "../../../shared/backbone/any-feature-extractor";
import type { BackboneBundle, FeatureSpec } from "../../../shared/backbone/types";
import { embedWithExtractor } from "./tfjs-engine";

interface Job {
  id: number;
  batch: Float32Array;
  n: number;
}

const { bundle, feature, maxBatch } = workerData as { bundle: BackboneBundle; feature: FeatureSpec; maxBatch: number };
const port = parentPort!;

try {
  if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed to initialise");
  const extractor = await buildAnyFeatureExtractor(tf, bundle, feature);
  port.on("message", (job: Job) => {
    embedWithExtractor(tf, extractor, job.batch, job.n, maxBatch).then(
      (embeddings) => port.postMessage({ id: job.id, embeddings }, [embeddings.buffer as ArrayBuffer]),
      (error: Error) => port.postMessage({ id: job.id, error: error.message }),
    );
  });
  port.postMessage({ type: "ready", dim: extractor.dim });
} catch (error) {
  port.postMessage({ type: "error", message: (error as Error).message });
}
