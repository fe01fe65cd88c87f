/**
 * tfjs WASM on every core: one worker thread per core, each with its own tfjs WASM instance and copy of the
 * model (MobileNetV2: about 10 MB of float32 weights and ~60 MB of WASM heap per worker). A batch is split into
 * contiguous slices, one per worker. This is the same backend the Worker uses in workerd, so its features are the
 * reference the ONNX engine is checked against.
 */
import { Worker } from "node:worker_threads";
import { getInputShape } from "../../../shared/backbone/model-json";
import { checkBatch, type BackboneBundle, type EmbeddingEngine, type FeatureSpec } from "./types";

const WORKER_URL = new URL(`./wasm-worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

/**
 * Starts the worker module. When we run from TypeScript sources (tsx), the worker is TypeScript too, and Node 20
 * does not apply the parent's `--import tsx` hooks inside worker threads, so a one-line bootstrap loads it with
 * tsx's `tsImport`.
 */
function startWorker(workerData: unknown): Worker {
  if (!WORKER_URL.pathname.endsWith(".ts")) return new Worker(WORKER_URL, { workerData });
  const api = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(WORKER_URL.href)}, ${JSON.stringify(import.meta.url)}))`;
  return new Worker(bootstrap, { eval: true, workerData });
}

interface Pending {
  resolve: (value: Float32Array) => void;
  reject: (error: Error) => void;
}

class PoolWorker {
  readonly worker: Worker;
  private nextId = 0;
  private pending = new Map<number, Pending>();
  readonly ready: Promise<number>;

  constructor(bundle: BackboneBundle, feature: FeatureSpec, maxBatch: number) {
    this.worker = startWorker({ bundle, feature, maxBatch });
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (message: { type?: string; dim?: number; message?: string }) => {
        if (message.type === "ready") resolve(message.dim!);
        else if (message.type === "error") reject(new Error(`tfjs-wasm worker: ${message.message}`));
        else return;
        this.worker.off("message", onMessage);
      };
      this.worker.on("message", onMessage);
      this.worker.once("error", reject);
    });
    this.worker.on("message", (message: { id?: number; embeddings?: Float32Array; error?: string }) => {
      if (message.id === undefined) return;
      const pending = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error !== undefined) pending?.reject(new Error(`tfjs-wasm worker: ${message.error}`));
      else pending?.resolve(message.embeddings!);
    });
    this.worker.on("error", (error) => this.failAll(error));
    this.worker.on("exit", (code) => this.failAll(new Error(`tfjs-wasm worker exited with code ${code}`)));
  }

  private failAll(error: Error): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }

  run(batch: Float32Array, n: number): Promise<Float32Array> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Copy the slice so it can be transferred without detaching the caller's buffer.
      const copy = batch.slice();
      this.worker.postMessage({ id, batch: copy, n }, [copy.buffer]);
    });
  }
}

export async function createWasmPoolEngine(
  bundle: BackboneBundle,
  feature: FeatureSpec,
  options: { threads: number; maxBatch: number; log: (msg: string) => void },
): Promise<EmbeddingEngine> {
  const started = Date.now();
  const workers = Array.from({ length: Math.max(1, options.threads) }, () => new PoolWorker(bundle, feature, options.maxBatch));
  let dim: number;
  try {
    const dims = await Promise.all(workers.map((w) => w.ready));
    dim = dims[0]!;
  } catch (error) {
    await Promise.all(workers.map((w) => w.worker.terminate()));
    throw error;
  }
  options.log(`tfjs-wasm: ${workers.length} workers ready in ${Date.now() - started} ms (dim ${dim})`);
  const inputShape = getInputShape(bundle.modelJson, feature.input_size);
  const perImage = inputShape[0] * inputShape[1] * inputShape[2];

  return {
    name: `tfjs-wasm (${workers.length} workers)`,
    dim,
    async embed(batch, n) {
      checkBatch(batch, n, inputShape);
      const out = new Float32Array(n * dim);
      const per = Math.ceil(n / workers.length);
      const jobs: Promise<void>[] = [];
      for (let w = 0; w < workers.length && w * per < n; w++) {
        const start = w * per;
        const count = Math.min(per, n - start);
        const slice = batch.subarray(start * perImage, (start + count) * perImage);
        jobs.push(workers[w]!.run(slice, count).then((embeddings) => out.set(embeddings, start * dim)));
      }
      await Promise.all(jobs);
      return out;
    },
    async close() {
      await Promise.all(workers.map((w) => w.worker.terminate()));
    },
  };
}
