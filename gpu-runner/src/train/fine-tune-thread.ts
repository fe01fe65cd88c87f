/**
 * Runs `fineTuneBlocks` in a worker thread (fine-tune-worker.ts) and returns the result with the fine-tuned
 * embeddings of every item. Aborting `signal` terminates the thread. Training a block for minutes on the main thread
 * would starve the lease heartbeat (FACTS.md: a head trained there once let the lease lapse).
 */
import { siblingModule } from "../threads/start-worker";
import { ThreadPool } from "../threads/pool";
import type { FineTuneInput, FineTuneResult } from "./fine-tune";

/** Past this a stuck or runaway fine-tune fails the attempt (15 epochs of 2 blocks on a loaded 2-core box stay well under). */
const FINE_TUNE_TIMEOUT_MS = 60 * 60 * 1000;

export async function fineTuneOffThread(input: FineTuneInput & { itemCount: number }, options: { signal?: AbortSignal; log?(msg: string): void } = {}): Promise<FineTuneResult & { embeddings: Float32Array }> {
  const pool = new ThreadPool<FineTuneInput & { itemCount: number }, FineTuneResult & { embeddings: Float32Array }>(siblingModule(import.meta.url, "fine-tune-worker"), {
    name: "fine-tune thread",
    size: 1,
    taskTimeoutMs: FINE_TUNE_TIMEOUT_MS,
    maxStartFailures: 1,
    log: options.log,
  });
  const onAbort = () => void pool.close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    options.signal?.throwIfAborted();
    await pool.ready;
    return await pool.run(input);
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    await pool.close();
  }
}
