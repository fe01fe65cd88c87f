/**
 * The sandbox user models run in on a runner. A user's model.json and weights are untrusted input to whatever engine
 * runs them: they choose tensor shapes, op parameters and weight bytes. So a user (non-builtin) backbone runs only in
 * worker threads that
 * - hold no secret: the thread's `process.env` is empty (the runner token lives in the parent's environment and
 *   heap; a worker thread has its own V8 isolate and cannot reach the parent's objects), and what it is given is the
 *   model bundle and image tensors; it answers embeddings and nothing else travels back;
 * - have memory limits: V8 heap limits (`resourceLimits`; past them the thread is killed with
 *   ERR_WORKER_OUT_OF_MEMORY) and a cap on the tfjs WASM heap (WASM memory lives outside the V8 heap, so the
 *   worker refuses `WebAssembly.Memory.prototype.grow` past `wasmHeapMb`: tfjs's allocator then fails and the batch
 *   rejects);
 * - have a time limit: a slice of images that runs past `sliceTimeoutMs` has its thread terminated (a stuck WASM
 *   call cannot be interrupted any other way) and the batch rejects with `SandboxTimeoutError`; the job then fails
 *   for good (another attempt would run the same model on the same images).
 *
 * Native engines (onnxruntime, tfjs-node) run in the runner's own process, next to its token; a crafted shape or
 * weight that reaches a bug in native kernel code could read or corrupt that memory. Their converters check which
 * layers they accept, but not every parameter a native kernel trusts, so they serve vetted builtin models only and a
 * user model never reaches them, whatever `--engine` says. The price: user models embed at tfjs-wasm speed (about
 * 10 img/s per core for MobileNetV2 against about 120 with onnxruntime, FACTS.md).
 */
import type { WorkerOptions } from "node:worker_threads";

export interface SandboxLimits {
  /** V8 old-generation heap per worker: the model's topology, its weight copy's wrappers, tfjs bookkeeping. */
  maxOldGenerationSizeMb: number;
  maxYoungGenerationSizeMb: number;
  /** tfjs WASM heap per worker: weights (float32, at most 100 MB per import plus dequantisation) and activations. */
  wasmHeapMb: number;
  /** One slice of at most `maxBatch` images; past it the worker is killed. */
  sliceTimeoutMs: number;
}

/**
 * MobileNetV2 at batch 32 peaks near 60 MB of WASM heap plus its weights (FACTS.md); imports allow 100 MB of weights
 * (uint8 ones become 4x larger as float32 in the heap) and their activations: 1 GB leaves room for any model the API
 * accepts, while a model that allocates without bound is stopped long before the machine swaps. 120 s per slice is
 * about 30x what 32 MobileNetV2 images take on one WASM thread (3 to 4 s).
 */
export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 64, wasmHeapMb: 1024, sliceTimeoutMs: 120_000 };

/** The worker options of a sandbox thread: an empty environment and the V8 heap limits. */
export function sandboxWorkerOptions(limits: SandboxLimits): Pick<WorkerOptions, "env" | "resourceLimits"> {
  return { env: {}, resourceLimits: { maxOldGenerationSizeMb: limits.maxOldGenerationSizeMb, maxYoungGenerationSizeMb: limits.maxYoungGenerationSizeMb, stackSizeMb: 4 } };
}

/** A user model ran past the sandbox's time limit: the job fails with this message instead of hanging. */
export class SandboxTimeoutError extends Error {
  override name = "SandboxTimeoutError";
}

/** A user model was stopped by the sandbox's memory limits or crashed its thread. */
export class SandboxCrashError extends Error {
  override name = "SandboxCrashError";
}

/**
 * Inside a sandbox thread, before tfjs starts: `WebAssembly.Memory.prototype.grow` refuses to take any memory past
 * `maxBytes` (Emscripten grows its heap through this JS call and treats a throw as "out of memory").
 */
export function capWasmMemory(maxBytes: number): void {
  const grow = WebAssembly.Memory.prototype.grow;
  WebAssembly.Memory.prototype.grow = function (this: WebAssembly.Memory, deltaPages: number): number {
    if (this.buffer.byteLength + deltaPages * 65536 > maxBytes) throw new RangeError(`sandbox: the WASM heap may not grow past ${maxBytes} bytes`);
    return grow.call(this, deltaPages);
  };
}
