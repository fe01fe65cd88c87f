/**
 * A cross-validation worker thread. Protocol: workerData is a `FoldData`; the parent posts `{id, task}` and gets
 * `{id, result}` (a `FoldResult`) or `{id, error}` back.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
// As on the main thread (run-job.ts): no "install tfjs-node" banner, no debug checks on small head tensors.
tf.env().set("PROD", true);
import type { FoldTask } from "./select-head";
import { fitFold, type FoldData } from "./fit-fold";

const data = workerData as FoldData;
const port = parentPort!;
port.on("message", async ({ id, task }: { id: number; task: FoldTask }) => {
  try {
    const result = await fitFold(data, task);
    port.postMessage({ id, result });
  } catch (error) {
    port.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
});
port.postMessage({ ready: true });
