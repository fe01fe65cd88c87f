/**
 * TensorFlow.js on its WASM SIMD backend, inside workerd.
 *
 * Why this module exists: workerd refuses to compile WebAssembly from bytes at run time ("Wasm code generation
 * disallowed by embedder"); a Worker may only instantiate modules that were uploaded with it. tfjs-backend-wasm always
 * fetches its `.wasm` and compiles the bytes, and has no API to accept a precompiled `WebAssembly.Module`
 * (tensorflow/tfjs#8157, open). The alternatives are poor: the pure-JS cpu backend takes about 2 s per MobileNetV2
 * image in workerd, the WASM SIMD backend 75 to 81 ms (see shared/notes/FACTS.md, "TensorFlow.js").
 *
 * So we ship `tfjs-backend-wasm-simd.wasm` as a module (wrangler's CompiledWasm rule) and, while `setBackend('wasm')`
 * runs, bend the three places where tfjs would do something workerd forbids:
 *   1. `setWasmPaths(prefix, usePlatformFetch = true)` makes tfjs hand Emscripten an `instantiateWasm` hook that
 *      fetches the binary through `env().platform.fetch` and calls `WebAssembly.instantiate(bytes, imports)`.
 *      We answer that one URL with the precompiled module instead of bytes (tfjs' platform object, not the global
 *      `fetch`), and make `WebAssembly.instantiate` turn exactly that module into `{ instance, module }`. Every other
 *      caller (the image codecs, say) still reaches the real `WebAssembly.instantiate`.
 *   2. Emscripten takes its Node path when it sees `process.versions.node` and then fails on `__dirname`. Production
 *      has no `nodejs_compat`, but the vitest pool turns it on, so `globalThis.process` is hidden during init.
 *   3. The multithreaded binary needs workers and SharedArrayBuffer; its flag is forced off and only SIMD is shipped.
 * Every patch is undone in a `finally`, also when init fails or times out.
 *
 * Failure mode: an exception inside Emscripten's hook becomes an unhandled rejection that leaves init pending forever
 * (the request hangs rather than fails). Hence the deadline: after `timeoutMs` the caller gets an
 * `InferenceUnavailableError` (the API answers 503) and the next call starts a fresh attempt.
 *
 * Nothing runs at module load: the tfjs packages are imported dynamically on the first call (wrangler's esbuild inlines
 * them but evaluates them only then), so this module adds nothing to workerd's 1 s startup budget unless some other
 * module imports tfjs statically. Measured first call, bundled, in a bare workerd: about 30 ms on an idle machine,
 * 80 to 170 ms on our loaded 2-vCPU machines (bench/workerd/device-run.sh).
 */
import { InferenceUnavailableError } from "./errors";
import simdWasmModule from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm";

type TfjsCore = typeof import("@tensorflow/tfjs-core");
type TfjsLayers = typeof import("@tensorflow/tfjs-layers");
type TfjsWasmBackend = typeof import("@tensorflow/tfjs-backend-wasm");

/** The tfjs namespace this module hands out: tfjs-core (ops, `io`, `fused`) plus tfjs-layers (`layers`, `loadLayersModel`, ...). */
export type Tfjs = TfjsCore & TfjsLayers;

export { InferenceUnavailableError } from "./errors";

export interface EnsureTfjsWasmOptions {
  /**
   * How long the backend init (after the tfjs imports) may take before callers get `InferenceUnavailableError`.
   * Only the call that starts an attempt sets it; later callers share that attempt. Measured init: 20 to 170 ms.
   */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Any URL would do: it never reaches the network, the platform fetch below answers it. */
const WASM_URL_PREFIX = "https://tfjs-wasm.edgetune.invalid/";
const SIMD_BINARY_NAME = "tfjs-backend-wasm-simd.wasm";
/** Priority tfjs-backend-wasm registers itself with (base.js); kept when the registration is renewed for a retry. */
const WASM_BACKEND_PRIORITY = 2;

let ready: Promise<Tfjs> | null = null;
/** Set once `setBackend('wasm')` has been called: a retry must then renew tfjs' registration (see renewRegistration). */
let backendInitStarted = false;
let wasmPathsConfigured = false;
let wasmBackendFactory: ReturnType<TfjsCore["findBackendFactory"]> | null = null;

/**
 * Returns tfjs with the WASM SIMD backend active, initialising it on the first call in this isolate.
 * Concurrent first calls share one init. On failure every caller of that attempt gets an
 * `InferenceUnavailableError` within `timeoutMs`, and the next call tries again.
 */
export function ensureTfjsWasm(options: EnsureTfjsWasmOptions = {}): Promise<Tfjs> {
  ready ??= initialise(options.timeoutMs ?? DEFAULT_TIMEOUT_MS).catch((error: unknown) => {
    ready = null;
    throw error instanceof InferenceUnavailableError
      ? error
      : new InferenceUnavailableError("TensorFlow.js WASM backend failed to initialise", { cause: error });
  });
  return ready;
}

async function initialise(timeoutMs: number): Promise<Tfjs> {
  // Imports fail or finish; they cannot hang, so they stay outside the deadline (in the vitest pool, where Vite
  // transforms each tfjs file on first use, they take several seconds; bundled by wrangler, milliseconds).
  const [core, layers, wasmBackend] = await Promise.all([
    import("@tensorflow/tfjs-core"),
    import("@tensorflow/tfjs-layers"),
    import("@tensorflow/tfjs-backend-wasm"),
  ]);
  const tf: Tfjs = { ...core, ...layers };
  if (core.engine().registry.wasm == null) await initialiseWasmBackend(core, wasmBackend, timeoutMs);
  else await core.setBackend("wasm"); // a timed-out earlier attempt finished after all
  return tf;
}

async function initialiseWasmBackend(core: TfjsCore, wasmBackend: TfjsWasmBackend, timeoutMs: number): Promise<void> {
  if (!wasmPathsConfigured) {
    // Throws once an attempt has aborted inside Emscripten, hence only once per isolate.
    wasmBackend.setWasmPaths(WASM_URL_PREFIX, /* usePlatformFetch */ true);
    wasmPathsConfigured = true;
  }
  core.env().set("WASM_HAS_SIMD_SUPPORT", true);
  core.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  if (backendInitStarted) renewRegistration(core);
  wasmBackendFactory ??= core.findBackendFactory("wasm");

  // Each of these only ever rejects: one if something fails inside Emscripten's hook (where a throw would leave init
  // pending forever), the other when the deadline passes.
  let reportHookFailure: (error: unknown) => void = () => {};
  const hookFailed = new Promise<never>((_, reject) => (reportHookFailure = reject));
  let timer = undefined as ReturnType<typeof setTimeout> | undefined;
  const deadlinePassed = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new InferenceUnavailableError(`TensorFlow.js WASM backend did not initialise within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });

  const restoreGlobals = patchGlobalsForInit(core, reportHookFailure);
  try {
    backendInitStarted = true;
    const succeeded = await Promise.race([core.setBackend("wasm"), hookFailed, deadlinePassed]);
    if (!succeeded) throw new InferenceUnavailableError("tfjs reported that the WASM backend failed to initialise");
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    restoreGlobals();
  }
}

/**
 * Installs the three init-time patches described at the top of this file and returns the function that undoes them.
 * Only the precompiled SIMD module is ever instantiated through the patch.
 */
function patchGlobalsForInit(core: TfjsCore, reportHookFailure: (error: unknown) => void): () => void {
  const platform = core.env().platform;
  const hadOwnFetch = Object.prototype.hasOwnProperty.call(platform, "fetch");
  const originalPlatformFetch = platform.fetch;
  const originalInstantiate = WebAssembly.instantiate;
  const processDescriptor = Object.getOwnPropertyDescriptor(globalThis, "process");

  // tfjs only reads `ok` and `arrayBuffer()` from this response (createInstantiateWasmFunc in backend_wasm.js).
  platform.fetch = ((url: string, init?: RequestInit) => {
    if (url === WASM_URL_PREFIX + SIMD_BINARY_NAME) {
      return Promise.resolve({ ok: true, arrayBuffer: async () => simdWasmModule });
    }
    if (url.startsWith(WASM_URL_PREFIX)) {
      reportHookFailure(new Error(`tfjs asked for ${url}; only ${SIMD_BINARY_NAME} is bundled`));
      return new Promise(() => {});
    }
    return originalPlatformFetch.call(platform, url, init);
  }) as typeof platform.fetch;

  WebAssembly.instantiate = ((source: unknown, imports?: WebAssembly.Imports) => {
    if (source !== simdWasmModule) return (originalInstantiate as (...args: unknown[]) => unknown)(source, imports);
    return originalInstantiate(simdWasmModule, imports).then(
      (instance) => ({ instance, module: simdWasmModule }),
      (error: unknown) => {
        // Rethrowing would become an unhandled rejection inside tfjs and leave init pending: report and park instead.
        reportHookFailure(error);
        return new Promise(() => {});
      },
    );
  }) as typeof WebAssembly.instantiate;

  if (processDescriptor?.configurable) delete (globalThis as { process?: unknown }).process;

  return () => {
    WebAssembly.instantiate = originalInstantiate;
    if (hadOwnFetch) platform.fetch = originalPlatformFetch;
    else delete (platform as { fetch?: unknown }).fetch;
    if (processDescriptor?.configurable) Object.defineProperty(globalThis, "process", processDescriptor);
  };
}

/**
 * After a timed-out attempt tfjs still holds the pending init promise of that attempt and would hand it to the next
 * `setBackend('wasm')`, which would then hang too. Removing and re-registering the backend makes that promise stale.
 */
function renewRegistration(core: TfjsCore): void {
  if (wasmBackendFactory == null) return;
  core.removeBackend("wasm");
  core.registerBackend("wasm", wasmBackendFactory, WASM_BACKEND_PRIORITY);
}

