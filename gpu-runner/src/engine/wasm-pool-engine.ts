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
import { ThreadPool } from "../threads/pool";
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
  /** Test hooks, passed to every worker (see wasm-worker.ts). */
  testHooks?: { crashOnBatchOf?: number; hangOnBatchOf?: number };
}

export async function createWasmPoolEngine(bundle: BackboneBundle, feature: FeatureSpec, options: WasmPoolOptions): Promise<EmbeddingEngine & { readonly respawns: number }> {
  const started = Date.now();
  const pool = new ThreadPool<{ batch: Float32Array; n: number }, Float32Array>(siblingModule(import.meta.url, "wasm-worker"), {
    name: "tfjs-wasm pool",
    size: Math.max(1, options.threads),
    workerData: { bundle, feature, maxBatch: options.maxBatch, ...options.testHooks },
    taskTimeoutMs: options.sliceTimeoutMs ?? WASM_SLICE_TIMEOUT_MS,
    log: options.log,
  });
  try {
    await pool.ready;
  } catch (error) {
    await pool.close();
    throw error;
  }
  const inputShape = getInputShape(bundle.modelJson, feature.input_size);
  const perImage = inputShape[0] * inputShape[1] * inputShape[2];
  // The output width, from one tiny run (the workers know it; asking once keeps the protocol to one message type).
  const probe = await pool.run({ batch: new Float32Array(perImage), n: 1 });
  const dim = probe.length;
  options.log(`tfjs-wasm: ${pool.size} workers ready in ${Date.now() - started} ms (dim ${dim})`);

  return {
    name: `tfjs-wasm (${pool.size} workers)`,
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
        slices.push(pool.run({ batch: slice, n: count }, [slice.buffer]).then((embeddings) => out.set(embeddings, start * dim)));
      }
      await Promise.all(slices);
      return out;
    },
    async close() {
      await pool.close();
    },
  };
}
