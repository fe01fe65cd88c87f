/**
 * Runs the cross-validation fits of `auto` in worker threads: one per core (at most `maxWorkers`), each holding a
 * copy of the embeddings (300 × 768 floats for flowers5: 0.9 MB; 20,000 × 1280: 100 MB per worker, hence the cap),
 * taking the next task when it finishes one. The main thread only waits, so lease heartbeats keep flowing (a head
 * trained on the main thread once starved them and the lease lapsed: ../shared/notes/FACTS.md).
 */
import { availableParallelism } from "node:os";
import type { Worker } from "node:worker_threads";
import { siblingModule, startWorker } from "../threads/start-worker";
import type { FoldTask } from "./select-head";
import type { FoldData, FoldResult } from "./fit-fold";

const WORKER_URL = siblingModule(import.meta.url, "cv-worker");

export interface FoldPoolOptions {
  /** Default: the machine's cores, at most 4. */
  maxWorkers?: number;
  /** Aborting terminates the workers and rejects. */
  signal?: AbortSignal;
}

/** A `FoldRunner` over worker threads; workers start per call and are terminated when it settles. */
export function workerFoldRunner(data: FoldData, options: FoldPoolOptions = {}) {
  return async (tasks: FoldTask[], onDone?: (done: number) => void): Promise<FoldResult[]> => {
    const count = Math.max(1, Math.min(options.maxWorkers ?? Math.min(availableParallelism(), 4), tasks.length));
    const workers = Array.from({ length: count }, () => startWorker(WORKER_URL, { workerData: data }));
    const results = new Array<FoldResult>(tasks.length);
    // Longest first (an MLP fit costs several linear ones), so no worker is left with a long task at the end.
    const order = tasks.map((_, index) => index).sort((a, b) => taskWeight(tasks[b]!) - taskWeight(tasks[a]!) || a - b);
    let next = 0;
    let done = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(options.signal!.reason ?? new Error("aborted"));
        options.signal?.addEventListener("abort", onAbort, { once: true });
        if (options.signal?.aborted) return onAbort();
        const feed = (worker: Worker) => {
          if (next >= tasks.length) return;
          const id = order[next++]!;
          worker.postMessage({ id, task: tasks[id] });
        };
        for (const worker of workers) {
          worker.on("message", (message: { ready?: boolean; id?: number; result?: FoldResult; error?: string }) => {
            if (message.ready) return feed(worker);
            if (message.error !== undefined) return reject(new Error(`cross-validation worker: ${message.error}`));
            results[message.id!] = message.result!;
            done++;
            onDone?.(done);
            if (done === tasks.length) resolve();
            else feed(worker);
          });
          worker.once("error", reject);
          worker.once("exit", (code) => { if (done < tasks.length) reject(new Error(`cross-validation worker exited with code ${code}`)); });
        }
      });
    } finally {
      await Promise.all(workers.map((worker) => worker.terminate()));
    }
    return results;
  };
}

/** Relative cost of a fit: the units its first layer feeds (a linear head's are the classes; about 1 per class). */
function taskWeight(task: FoldTask): number {
  return task.candidate.head.type === "mlp" ? task.candidate.head.hidden[0] ?? 1 : 1;
}
