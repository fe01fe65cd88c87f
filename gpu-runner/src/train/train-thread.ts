/**
 * Worker-thread side of the training thread (off-thread.ts): trains heads, one at a time, for as long as the runner
 * lives, so a retrain does not pay for a thread start and module loading (~2 s on a loaded 2-core box). Protocol:
 * - posts `{type: "ready"}` once its modules are loaded;
 * - takes `{type: "train", id, input, config, stopFlag, stallMs}` (`input.embeddings` may sit on a SharedArrayBuffer:
 *   no copy), posts `{id, type: "epoch", metrics}` after every epoch, then `{id, type: "done", result}` or
 *   `{id, type: "error", name, message, stack}`;
 * - reads `stopFlag[0]` (Int32Array on a SharedArrayBuffer) after every epoch: 1 means stop (returns the best so far).
 */
import { availableParallelism } from "node:os";
import { parentPort } from "node:worker_threads";
import { trainHeadLbfgs } from "./lbfgs-head";
import { warmUpHeadSessions } from "./onnx-objective";
import { validateInput } from "./train-head-common";
import type { HeadTrainingConfig, HeadTrainingInput, TrainHeadResult } from "./train-head";

interface TrainMessage {
  type: "train";
  id: number;
  input: HeadTrainingInput;
  config: HeadTrainingConfig;
  stopFlag: Int32Array;
  /** Test hook: block this thread this long before training, as a pathological training step would. */
  stallMs: number;
}

const port = parentPort!;

async function train({ id, input, config, stopFlag, stallMs }: TrainMessage): Promise<void> {
  try {
    if (stallMs > 0) {
      // A synchronous stall (no awaits): exactly what starved heartbeats when training ran on the main thread.
      const until = Date.now() + stallMs;
      while (Date.now() < until);
    }
    const hooks = {
      onEpoch: (metrics: unknown) => port.postMessage({ id, type: "epoch", metrics }),
      shouldStop: () => Atomics.load(stopFlag, 0) === 1,
    };
    let result: TrainHeadResult;
    if ((config.solver ?? "lbfgs") === "lbfgs") {
      validateInput(input);
      result = await trainHeadLbfgs(input, config, hooks, { threads: config.threads });
    } else {
      // The mini-batch trainer needs tfjs (about 0.5 s to load): only when asked for.
      const { trainHead } = await import("./train-head");
      result = await trainHead(input, config, hooks);
    }
    port.postMessage({ id, type: "done", result });
  } catch (error) {
    const err = error as Error;
    port.postMessage({ id, type: "error", name: err.name, message: err.message, stack: err.stack });
  }
}

// One job at a time: the runner trains one head at a time, and a queue keeps it so if it ever sends two.
let queue: Promise<void> = Promise.resolve();
port.on("message", (message: TrainMessage) => {
  if (message.type === "train") queue = queue.then(() => train(message));
});
port.postMessage({ type: "ready" });
// The solver's onnxruntime sessions, built while the runner waits for its first job (the runner trains with
// `--threads`, by default one per core); a fit that comes first simply waits for the same sessions.
void warmUpHeadSessions(availableParallelism()).catch(() => false);
