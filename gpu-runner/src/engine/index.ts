/**
 * Embedding engines: the frozen backbone as fast as this machine allows. `createEngine(bundle, feature)` with
 * `engine: "auto"` tries, in order, tfjs-node-gpu → webgpu → onnx → tfjs-node → tfjs-wasm → tfjs-cpu and logs why
 * each faster one was skipped. Measured on the 2-core dev box (MobileNetV2 224, batch 32): onnx ≈ 20x tfjs-wasm;
 * see bench/embed/throughput.ts.
 */
import { availableParallelism } from "node:os";
import { averageEmbeddings } from "../../../shared/image/augment";
import { inputSizes } from "../../../shared/image/preprocess";
import { createOnnxEngine } from "./onnx-engine";
import { createTfjsEngine } from "./tfjs-engine";
import { EngineUnavailableError, type BackboneBundle, type EmbeddingEngine, type EngineKind, type EngineOptions, type FeatureSpec } from "./types";
import { DEFAULT_SANDBOX_LIMITS } from "./sandbox";
import { createWasmPoolEngine } from "./wasm-pool-engine";

export { EngineUnavailableError } from "./types";
export type { EmbeddingEngine, EngineKind, EngineOptions } from "./types";

/** Fastest first. GPU paths lead; onnx beats tfjs-node on CPU for MobileNets (oneDNN-free libtensorflow). */
export const AUTO_ORDER: EngineKind[] = ["tfjs-node-gpu", "webgpu", "onnx", "tfjs-node", "tfjs-wasm", "tfjs-cpu"];

const DEFAULT_MAX_BATCH = 32;

async function createOne(kind: EngineKind, bundle: BackboneBundle, feature: FeatureSpec, options: Required<Pick<EngineOptions, "threads" | "maxBatch" | "log">>): Promise<EmbeddingEngine> {
  switch (kind) {
    case "onnx":
      return createOnnxEngine(bundle, feature, options);
    case "tfjs-wasm":
      return createWasmPoolEngine(bundle, feature, options);
    default:
      return createTfjsEngine(kind, bundle, feature, options);
  }
}

/**
 * Builds an engine mapping `[n, H, W, C]` normalised images (flat Float32Array, NHWC) to `[n, dim]` embeddings
 * for `bundle` at `feature`. With an explicit `engine`, failures propagate; with `auto`, unavailable engines are
 * logged and skipped, and any other failure of a faster engine is logged and skipped too.
 */
export async function createEngine(bundle: BackboneBundle, feature: FeatureSpec, options: EngineOptions = {}): Promise<EmbeddingEngine> {
  if (feature.extra_input_sizes?.length) return createMultiSizeEngine(bundle, feature, options);
  const resolved = {
    threads: options.threads ?? availableParallelism(),
    maxBatch: options.maxBatch ?? DEFAULT_MAX_BATCH,
    log: options.log ?? (() => {}),
  };
  const requested = options.engine ?? "auto";
  if (options.trust === "user") {
    // Native engines serve vetted builtin models only (engine/sandbox.ts says why).
    if (requested !== "auto" && requested !== "tfjs-wasm") resolved.log(`engine ${requested} is for builtin backbones; the user backbone ${bundle.name} runs in the tfjs-wasm sandbox`);
    return createWasmPoolEngine(bundle, feature, { ...resolved, sandbox: options.sandboxLimits ?? DEFAULT_SANDBOX_LIMITS });
  }
  if (requested !== "auto") return createOne(requested, bundle, feature, resolved);
  const failures: string[] = [];
  for (const kind of AUTO_ORDER) {
    try {
      const engine = await createOne(kind, bundle, feature, resolved);
      resolved.log(`engine auto: using ${engine.name}`);
      return engine;
    } catch (error) {
      const reason = error instanceof EngineUnavailableError ? error.message : `${kind} failed: ${(error as Error).message}`;
      resolved.log(`engine auto: skip ${reason}`);
      failures.push(reason);
    }
  }
  throw new Error(`no embedding engine could start: ${failures.join("; ")}`);
}

/**
 * A backbone fed at several input sizes (`feature.extra_input_sizes`): one engine per size, each image's tensor
 * split into its sizes' parts (shared/image/preprocess.ts lays them out one after the other), and the embedding the
 * mean of each size's, as the edge computes it (workers/inference/embedder.ts). `embedParts` takes a batch already
 * split by size, as embed-dataset.ts builds it: the split cost the runner's main thread ~1.6 ms per image at
 * 288 + 352 (a 2.5 MB copy into freshly allocated arrays).
 */
async function createMultiSizeEngine(bundle: BackboneBundle, feature: FeatureSpec, options: EngineOptions): Promise<EmbeddingEngine> {
  const sizes = inputSizes({ input_size: feature.input_size!, extra_input_sizes: feature.extra_input_sizes });
  const engines: EmbeddingEngine[] = [];
  try {
    for (const input_size of sizes) engines.push(await createEngine(bundle, { ...feature, input_size, extra_input_sizes: undefined }, options));
  } catch (error) {
    await Promise.all(engines.map((engine) => engine.close()));
    throw error;
  }
  const lengths = sizes.map(([h, w]) => h * w * 3);
  const perImage = lengths.reduce((a, b) => a + b, 0);
  const embedParts = async (parts: Float32Array[], n: number): Promise<Float32Array> => {
    if (parts.length !== engines.length) throw new Error(`embedParts: expected ${engines.length} parts (one per input size), got ${parts.length}`);
    const embeddings: Float32Array[] = [];
    for (const [k, engine] of engines.entries()) embeddings.push(await engine.embed(parts[k]!, n));
    return averageEmbeddings(...embeddings);
  };
  return {
    name: `${engines[0]!.name} at ${sizes.map((size) => size.join("x")).join(" + ")}`,
    dim: engines[0]!.dim,
    async embed(batch, n) {
      if (!Number.isInteger(n) || n < 0 || batch.length !== n * perImage) throw new Error(`embed: expected ${n} x ${perImage} floats, got ${batch.length}`);
      let offset = 0;
      const parts = lengths.map((length) => {
        const part = new Float32Array(n * length);
        for (let i = 0; i < n; i++) part.set(batch.subarray(i * perImage + offset, i * perImage + offset + length), i * length);
        offset += length;
        return part;
      });
      return embedParts(parts, n);
    },
    embedParts,
    async close() {
      await Promise.all(engines.map((engine) => engine.close()));
    },
  };
}
