import type { BackboneBundle, FeatureSpec } from "../../../shared/backbone/types";
import type { SandboxLimits } from "./sandbox";

export type { BackboneBundle, FeatureSpec };

/** A frozen backbone + feature spec, ready to turn normalised images into embeddings. */
export interface EmbeddingEngine {
  /** Which engine runs, e.g. `onnx (2 threads)`. */
  readonly name: string;
  /** Length of one embedding. */
  readonly dim: number;
  /**
   * `batch`: `n * H * W * C` float32, NHWC, already in the bundle's `inputRange` → `n * dim` float32 embeddings.
   * Calls may overlap; each engine serialises or splits them as it needs. The batch is neither kept nor detached:
   * the caller may refill it once the promise settles.
   */
  embed(batch: Float32Array, n: number): Promise<Float32Array>;
  /**
   * Backbones fed at several input sizes only (`feature.extra_input_sizes`): the same batch as one array per input
   * size, `parts[k]` holding the `n` images at size k one after the other, so the engine runs each size's part as it
   * is instead of gathering it from `embed`'s image-by-image layout (bench/embed/pipeline.ts measured that copy).
   */
  embedParts?(parts: Float32Array[], n: number): Promise<Float32Array>;
  /** Frees native sessions, workers and tensors. The engine must not be used afterwards. */
  close(): Promise<void>;
}

export type EngineKind = "onnx" | "tfjs-node-gpu" | "tfjs-node" | "webgpu" | "tfjs-wasm" | "tfjs-cpu";

export interface EngineOptions {
  /** `auto` (default) tries the fastest engine first and falls back, logging why each faster one was skipped. */
  engine?: "auto" | EngineKind;
  /** CPU threads to use (onnx intra-op threads, tfjs-wasm workers). Default: all cores. */
  threads?: number;
  /** Images per inner run; bounds memory (tfjs at batch 32 held 808 MB of live tensors for MobileNetV2). */
  maxBatch?: number;
  log?: (msg: string) => void;
  /**
   * Where the model comes from. `user` (any non-builtin backbone) runs only in the sandbox (engine/sandbox.ts:
   * tfjs-wasm worker threads without the token, with memory and time limits), whatever `engine` asks for; `builtin`
   * (the catalog's vetted models, the default for benchmarks and tests) may use every engine. The runner always
   * passes it from the lease.
   */
  trust?: "builtin" | "user";
  /** Limits of the sandbox for `trust: "user"`; default DEFAULT_SANDBOX_LIMITS. */
  sandboxLimits?: SandboxLimits;
}

/** Raised when an engine cannot run here (module missing, no GPU adapter): `auto` logs it and moves on. */
export class EngineUnavailableError extends Error {
  constructor(
    readonly engine: EngineKind,
    reason: string,
  ) {
    super(`${engine} unavailable: ${reason}`);
    this.name = "EngineUnavailableError";
  }
}

/** Checks `batch` holds `n` images of `inputShape`; throws with both sizes otherwise. */
export function checkBatch(batch: Float32Array, n: number, inputShape: [number, number, number]): void {
  const perImage = inputShape[0] * inputShape[1] * inputShape[2];
  if (!Number.isInteger(n) || n < 0 || batch.length !== n * perImage) {
    throw new Error(`embed: expected ${n} x ${inputShape.join("x")} = ${n * perImage} floats, got ${batch.length}`);
  }
}
