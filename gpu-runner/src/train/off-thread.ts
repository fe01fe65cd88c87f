/**
 * `trainHead` in a worker thread, so the runner's event loop stays free for lease heartbeats whatever training
 * costs (on 20,000 images, training on the main thread starved the heartbeat and the lease lapsed three times).
 *
 * The embeddings are handed over without a copy when they sit on a SharedArrayBuffer (run-job allocates them so);
 * otherwise structured clone copies them once (80 MB for 20,000 × 1024 floats, ~50 ms). Epoch metrics come back as
 * they happen and reach `hooks.onEpoch` in order; stopping is a shared flag the trainer reads after every epoch.
 */
import type { EpochMetrics, HeadTrainingConfig, HeadTrainingInput, TrainHeadHooks, TrainHeadResult } from "./train-head";
import { siblingModule, startWorker } from "../threads/start-worker";

export interface OffThreadOptions {
  /** Aborting it stops training after the current epoch; the best head so far is returned (`stopped_by_caller`). */
  signal?: AbortSignal;
  /**
   * Test hook: the training thread blocks synchronously this long before it starts, like a pathological training
   * step. Default: the `EDGETUNE_TEST_TRAIN_STALL_MS` environment variable, else 0.
   */
  stallMs?: number;
}

const TRAIN_THREAD_URL = siblingModule(import.meta.url, "train-thread");

export class TrainingThreadError extends Error {
  override name = "TrainingThreadError";
}

export function trainHeadOffThread(input: HeadTrainingInput, config: HeadTrainingConfig, hooks: TrainHeadHooks = {}, options: OffThreadOptions = {}): Promise<TrainHeadResult> {
  const stopFlag = new Int32Array(new SharedArrayBuffer(4));
  const stallMs = options.stallMs ?? Number(process.env.EDGETUNE_TEST_TRAIN_STALL_MS ?? 0);
  const worker = startWorker(TRAIN_THREAD_URL, { workerData: { input, config, stopFlag, stallMs } });
  const stop = () => Atomics.store(stopFlag, 0, 1);
  options.signal?.addEventListener("abort", stop, { once: true });
  if (options.signal?.aborted) stop();

  return new Promise<TrainHeadResult>((resolve, reject) => {
    // Epoch hooks run one after another, in order; the result waits for the last of them.
    let hookChain: Promise<void> = Promise.resolve();
    let settled = false;
    let done = false;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener("abort", stop);
      void worker.terminate();
      outcome();
    };
    worker.on("message", (message: { type: string; metrics?: EpochMetrics; result?: TrainHeadResult; name?: string; message?: string; stack?: string }) => {
      if (message.type === "epoch") {
        hookChain = hookChain.then(async () => {
          await hooks.onEpoch?.(message.metrics!);
          if (hooks.shouldStop?.()) stop();
        });
        hookChain.catch((error) => {
          stop();
          finish(() => reject(error));
        });
      } else if (message.type === "done") {
        done = true;
        hookChain.then(() => finish(() => resolve(message.result!)), () => {});
      } else if (message.type === "error") {
        // RangeErrors are input validation failures: keep their type so callers can tell bad input from a crash.
        const error = message.name === "RangeError" ? new RangeError(message.message) : new TrainingThreadError(message.message ?? "training failed");
        error.stack = message.stack ?? error.stack;
        finish(() => reject(error));
      }
    });
    worker.on("error", (error) => finish(() => reject(new TrainingThreadError(`the training thread crashed: ${error.message}`))));
    worker.on("exit", (code) => done || finish(() => reject(new TrainingThreadError(`the training thread exited with code ${code} before it finished`))));
  });
}
