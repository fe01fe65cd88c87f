/**
 * Embedding engines: the frozen backbone as fast as this machine allows. `createEngine(bundle, feature)` with
 * `engine: "auto"` tries, in order, tfjs-node-gpu → webgpu → onnx → tfjs-node → tfjs-wasm → tfjs-cpu and logs why
 * each faster one was skipped. Measured on the 2-core dev box (MobileNetV2 224, batch 32): onnx ≈ 20x tfjs-wasm;
 * see bench/embed/throughput.ts.
 */
import { availableParallelism } from "node:os";
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
