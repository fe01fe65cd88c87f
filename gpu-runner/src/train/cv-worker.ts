/**
 * A cross-validation worker thread. Protocol: workerData is a `FoldData`; the parent posts `{id, task}` and gets
 * `{id, result}` (a `FoldResult`) or `{id, error}` back.
 */
import { parentPort, workerData } from "node:worker_threads";
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
