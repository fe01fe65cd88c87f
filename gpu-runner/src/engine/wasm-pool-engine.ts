/**
 * tfjs WASM on every core: one worker thread per core, each with its own tfjs WASM instance and copy of the
 * model (MobileNetV2: about 10 MB of float32 weights and ~60 MB of WASM heap per worker). A batch is split into
 * contiguous slices, one per worker. This is the same backend the Worker uses in workerd, so its features are the
 * reference the ONNX engine is checked against.
 *
 * Faults (threads/pool.ts): a worker that crashes rejects its slice (so `embed` rejects instead of hanging) and is
 * replaced by a fresh one; a slice that runs past `sliceTimeoutMs` is rejected and its worker replaced.
 */
import { siblingModule } from "../threads/start-worker";
import { PoolTaskTimeoutError, PoolWorkerCrashedError, ThreadPool } from "../threads/pool";
import { SandboxCrashError, SandboxTimeoutError, sandboxWorkerOptions, type SandboxLimits } from "./sandbox";
import { getInputShape } from "../../../shared/backbone/model-json";
import { checkBatch, type BackboneBundle, type EmbeddingEngine, type FeatureSpec } from "./types";

/**
 * A slice of at most 32 images takes 3 to 4 s on one WASM thread (8 to 11 img/s, FACTS.md); 120 s is far beyond
 * any honest run and short against a lease that the heartbeat would otherwise keep alive forever.
 */
export const WASM_SLICE_TIMEOUT_MS = 120_000;

export interface WasmPoolOptions {
  threads: number;
  maxBatch: number;
  log: (msg: string) => void;
  sliceTimeoutMs?: number;
  /** Run as the sandbox for a user model (engine/sandbox.ts): empty environment, memory and time limits. */
  sandbox?: SandboxLimits;
  /** Test hooks, passed to every worker (see wasm-worker.ts). */
  testHooks?: { crashOnBatchOf?: number; hangOnBatchOf?: number; probeEnvOnBatchOf?: number };
}

/** A sandbox's pool errors, restated for the job's failure message (what happened, what to do). */
function sandboxError(error: unknown, limits: SandboxLimits, n: number): unknown {
  if (error instanceof PoolTaskTimeoutError) {
    return new SandboxTimeoutError(`the user model ran past the sandbox's time limit (${limits.sliceTimeoutMs / 1000} s for ${n} images) and was stopped: it is too slow for this runner or never finishes; use a smaller model or input size`);
  }
  const limitsText = `${limits.wasmHeapMb} MB of WASM heap, ${limits.maxOldGenerationSizeMb} MB of JS heap`;
  if (error instanceof PoolWorkerCrashedError) return new SandboxCrashError(`the user model was stopped by the sandbox (${limitsText}) or crashed it: ${error.message}`);
  // Anything the model's run threw (tfjs's allocator failing at the WASM cap traps as a RuntimeError, for one).
  const failed = error as Error & { data?: unknown };
  return Object.assign(new SandboxCrashError(`the user model failed in the sandbox (${limitsText}): ${failed.message}`), { data: failed.data });
}

export async function createWasmPoolEngine(bundle: BackboneBundle, feature: FeatureSpec, options: WasmPoolOptions): Promise<EmbeddingEngine & { readonly respawns: number }> {
  const started = Date.now();
  const sandbox = options.sandbox;
  const pool = new ThreadPool<{ batch: Float32Array; n: number }, Float32Array>(siblingModule(import.meta.url, "wasm-worker"), {
    name: sandbox ? "tfjs-wasm sandbox" : "tfjs-wasm pool",
    size: Math.max(1, options.threads),
    workerData: { bundle, feature, maxBatch: options.maxBatch, ...(sandbox ? { wasmHeapBytes: sandbox.wasmHeapMb * 1024 * 1024 } : {}), ...options.testHooks },
    taskTimeoutMs: sandbox?.sliceTimeoutMs ?? options.sliceTimeoutMs ?? WASM_SLICE_TIMEOUT_MS,
    ...(sandbox ? { workerOptions: sandboxWorkerOptions(sandbox) } : {}),
    log: options.log,
  });
  try {
    await pool.ready;
  } catch (error) {
    await pool.close();
    throw sandbox ? new SandboxCrashError(`the user model could not be loaded in the sandbox: ${(error as Error).message}`) : error;
  }
  const inputShape = getInputShape(bundle.modelJson, feature.input_size);
  const perImage = inputShape[0] * inputShape[1] * inputShape[2];
  // The output width, from one tiny run (the workers know it; asking once keeps the protocol to one message type).
  const run = (slice: Float32Array, n: number) => {
    const answer = pool.run({ batch: slice, n }, [slice.buffer as ArrayBuffer]);
    return sandbox ? answer.catch((error: unknown) => Promise.reject(sandboxError(error, sandbox, n))) : answer;
  };
  let dim: number;
  try {
    dim = (await run(new Float32Array(perImage), 1)).length;
  } catch (error) {
    await pool.close();
    throw error;
  }
  options.log(`tfjs-wasm${sandbox ? " sandbox" : ""}: ${pool.size} workers ready in ${Date.now() - started} ms (dim ${dim})`);

  return {
    name: `tfjs-wasm${sandbox ? " sandbox" : ""} (${pool.size} workers)`,
    dim,
    get respawns() {
      return pool.respawns;
    },
    async embed(batch, n) {
      checkBatch(batch, n, inputShape);
      const out = new Float32Array(n * dim);
      const per = Math.ceil(n / pool.size);
      const slices: Promise<void>[] = [];
      for (let start = 0; start < n; start += per) {
        const count = Math.min(per, n - start);
        // A copy of the slice, transferred: the caller's batch stays intact.
        const slice = batch.slice(start * perImage, (start + count) * perImage);
        slices.push(run(slice, count).then((embeddings) => out.set(embeddings, start * dim)));
      }
      await Promise.all(slices);
      return out;
    },
    async close() {
      await pool.close();
    },
  };
}
