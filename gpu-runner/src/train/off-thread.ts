/**
 * `trainHead` in a worker thread, so the runner's event loop stays free for lease heartbeats whatever training
 * costs (on 20,000 images, training on the main thread starved the heartbeat and the lease lapsed three times).
 *
 * `TrainingThread` keeps one thread for the runner's life (a retrain then costs no thread start: ~2 s measured on
 * this loaded box); a thread that crashes rejects the running training and is replaced at the next one.
 * `trainHeadOffThread` is the one-shot form (a thread per call) for callers without a runner.
 *
 * The embeddings are handed over without a copy when they sit on a SharedArrayBuffer (run-job allocates them so);
 * otherwise structured clone copies them once (80 MB for 20,000 × 1024 floats, ~50 ms). Epoch metrics come back as
 * they happen and reach `hooks.onEpoch` in order; stopping is a shared flag the trainer reads after every epoch.
 */
import type { Worker } from "node:worker_threads";
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

type ThreadMessage = { type: "ready" } | { id: number; type: "epoch"; metrics: EpochMetrics } | { id: number; type: "done"; result: TrainHeadResult } | { id: number; type: "error"; name: string; message: string; stack?: string };

interface Running {
  id: number;
  onMessage(message: ThreadMessage): void;
  onCrash(error: Error): void;
}

export class TrainingThread {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private running: Running | null = null;
  private nextId = 0;
  private queue: Promise<unknown> = Promise.resolve();

  /** Starts the thread now (it loads its modules while the runner does other work). */
  warmUp(): Promise<void> {
    if (this.ready) return this.ready;
    const worker = startWorker(TRAIN_THREAD_URL);
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.on("message", (message: ThreadMessage) => {
        if (message.type === "ready") resolve();
        else if (this.running && message.id === this.running.id) this.running.onMessage(message);
      });
      const crashed = (error: Error) => {
        if (this.worker !== worker) return;
        this.worker = null;
        this.ready = null; // the next training starts a fresh thread
        reject(error);
        this.running?.onCrash(error);
      };
      worker.on("error", (error) => crashed(new TrainingThreadError(`the training thread crashed: ${error.message}`)));
      worker.on("exit", (code) => crashed(new TrainingThreadError(`the training thread exited with code ${code}`)));
    });
    this.ready.catch(() => undefined);
    return this.ready;
  }

  /** Trains one head; calls are served one after another. */
  train(input: HeadTrainingInput, config: HeadTrainingConfig, hooks: TrainHeadHooks = {}, options: OffThreadOptions = {}): Promise<TrainHeadResult> {
    const result = this.queue.then(() => this.trainNow(input, config, hooks, options));
    this.queue = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    this.ready = null;
    await worker?.terminate();
  }

  private async trainNow(input: HeadTrainingInput, config: HeadTrainingConfig, hooks: TrainHeadHooks, options: OffThreadOptions): Promise<TrainHeadResult> {
    await this.warmUp();
    const worker = this.worker!;
    const id = this.nextId++;
    const stopFlag = new Int32Array(new SharedArrayBuffer(4));
    const stallMs = options.stallMs ?? Number(process.env.EDGETUNE_TEST_TRAIN_STALL_MS ?? 0);
    const stop = () => Atomics.store(stopFlag, 0, 1);
    options.signal?.addEventListener("abort", stop, { once: true });
    if (options.signal?.aborted) stop();
    try {
      return await new Promise<TrainHeadResult>((resolve, reject) => {
        // Epoch hooks run one after another, in order; the result waits for the last of them.
        let hookChain: Promise<void> = Promise.resolve();
        let settled = false;
        const finish = (outcome: () => void) => {
          if (settled) return;
          settled = true;
          this.running = null;
          outcome();
        };
        this.running = {
          id,
          onCrash: (error) => finish(() => reject(error)),
          onMessage: (message) => {
            if (message.type === "epoch") {
              hookChain = hookChain.then(async () => {
                await hooks.onEpoch?.(message.metrics);
                if (hooks.shouldStop?.()) stop();
              });
              hookChain.catch((error) => {
                stop();
                finish(() => reject(error));
              });
            } else if (message.type === "done") {
              hookChain.then(() => finish(() => resolve(message.result)), () => {});
            } else if (message.type === "error") {
              // RangeErrors are input validation failures: keep their type so callers can tell bad input from a crash.
              const error = message.name === "RangeError" ? new RangeError(message.message) : new TrainingThreadError(message.message);
              error.stack = message.stack ?? error.stack;
              finish(() => reject(error));
            }
          },
        };
        worker.postMessage({ type: "train", id, input, config, stopFlag, stallMs });
      });
    } finally {
      options.signal?.removeEventListener("abort", stop);
    }
  }
}

/** One training in a thread of its own, closed afterwards. */
export async function trainHeadOffThread(input: HeadTrainingInput, config: HeadTrainingConfig, hooks: TrainHeadHooks = {}, options: OffThreadOptions = {}): Promise<TrainHeadResult> {
  const thread = new TrainingThread();
  try {
    return await thread.train(input, config, hooks, options);
  } finally {
    await thread.close();
  }
}
