/**
 * Worker-thread side of `trainHeadOffThread` (off-thread.ts): trains one head and exits. Protocol:
 * - workerData: `{ input, config, stopFlag, stallMs }` (`input.embeddings` may sit on a SharedArrayBuffer: no copy);
 * - posts `{ type: "epoch", metrics }` after every epoch, then `{ type: "done", result }` or `{ type: "error", message, stack }`;
 * - reads `stopFlag[0]` (Int32Array on a SharedArrayBuffer) after every epoch: 1 means stop (returns the best so far).
 */
import { parentPort, workerData } from "node:worker_threads";
import type { HeadTrainingConfig, HeadTrainingInput, TrainHeadResult } from "./train-head";

interface TrainThreadData {
  input: HeadTrainingInput;
  config: HeadTrainingConfig;
  stopFlag: Int32Array;
  /** Test hook: block this thread this long before training, as a pathological training step would. */
  stallMs: number;
}

const { input, config, stopFlag, stallMs } = workerData as TrainThreadData;
const port = parentPort!;

try {
  if (stallMs > 0) {
    // A synchronous stall (no awaits): exactly what starved heartbeats when training ran on the main thread.
    const until = Date.now() + stallMs;
    while (Date.now() < until);
  }
  const hooks = {
    onEpoch: (metrics: unknown) => port.postMessage({ type: "epoch", metrics }),
    shouldStop: () => Atomics.load(stopFlag, 0) === 1,
  };
  let result: TrainHeadResult;
  if ((config.solver ?? "lbfgs") === "lbfgs") {
    // The L-BFGS path never loads tfjs (about 0.5 s of startup in a fresh thread).
    const { trainHeadLbfgs } = await import("./lbfgs-head");
    const { validateInput } = await import("./train-head-common");
    validateInput(input);
    result = await trainHeadLbfgs(input, config, hooks, { threads: config.threads });
  } else {
    const { trainHead } = await import("./train-head");
    result = await trainHead(input, config, hooks);
  }
  port.postMessage({ type: "done", result });
} catch (error) {
  const err = error as Error;
  port.postMessage({ type: "error", name: err.name, message: err.message, stack: err.stack });
}
