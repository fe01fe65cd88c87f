/**
 * Terminating a worker thread while it is inside onnxruntime-node aborts the whole process: the binding's
 * synchronous `loadModel` or `run` comes back to a terminating isolate, its next N-API call fails, and the C++
 * `Napi::Error` it throws ends in `std::terminate` ("terminate called after throwing an instance of 'Napi::Error'",
 * exit 134). Measured with onnxruntime-node 1.30: closing the training thread while it built its sessions, or
 * aborting `auto`'s cross-validation while a fold ran, killed the runner (and once the test runner's fork in CI).
 *
 * The gate: one Int32 on a SharedArrayBuffer per worker, shared with its parent. The worker counts its native calls
 * in flight on it (`nativeCall`). To terminate, the parent first sets its CLOSING bit, from which on a new call
 * throws `WorkerClosingError` instead of entering onnxruntime, then waits for the count to reach 0: a termination
 * never lands inside a native call, and a worker issuing call after call cannot starve it. The parent waits at most as long as the calls in flight run (our graphs: milliseconds to seconds);
 * JavaScript running in the worker (an L-BFGS step) does not hold the gate, so termination stays prompt.
 *
 * The gate travels as environment data (`worker_threads.setEnvironmentData`), which a worker receives when it is
 * constructed: every worker from `startWorker` gets a gate of its own without touching its `workerData`.
 */
import { getEnvironmentData, isMainThread, setEnvironmentData, Worker } from "node:worker_threads";

const GATE_KEY = "edgetune.nativeGate";
/** Set by the parent when it starts terminating; the low bits count the calls in flight. */
const CLOSING = 1 << 30;

export class WorkerClosingError extends Error {
  override name = "WorkerClosingError";
}

/** This thread's gate: null on the main thread, or in a worker not started by `startWorker`. */
let ownGate: Int32Array | null | undefined;

function gate(): Int32Array | null {
  if (ownGate === undefined) {
    const value = isMainThread ? undefined : getEnvironmentData(GATE_KEY);
    ownGate = value instanceof SharedArrayBuffer ? new Int32Array(value) : null;
  }
  return ownGate;
}

/**
 * Runs `call` (which enters native code, synchronously or through the promise it returns) while holding this
 * thread's gate, so the parent cannot terminate this worker until it settles.
 */
export async function nativeCall<T>(call: () => T | Promise<T>): Promise<T> {
  const shared = gate();
  if (!shared) return call();
  for (;;) {
    const state = Atomics.load(shared, 0);
    if (state & CLOSING) throw new WorkerClosingError("this worker is being terminated");
    if (Atomics.compareExchange(shared, 0, state, state + 1) === state) break;
  }
  try {
    return await call();
  } finally {
    Atomics.sub(shared, 0, 1);
    Atomics.notify(shared, 0);
  }
}

/** `Atomics.waitAsync` (Node 16+, ES2024; the project's TypeScript lib is older). */
const waitAsync = (Atomics as unknown as { waitAsync(array: Int32Array, index: number, value: number, timeoutMs: number): { value: Promise<string> | string } }).waitAsync;

/** A worker whose `terminate()` waits until no native call runs in it (see above). */
export class GatedWorker extends Worker {
  private readonly gate: Int32Array;

  constructor(filename: string | URL, options: ConstructorParameters<typeof Worker>[1] = {}) {
    const buffer = new SharedArrayBuffer(4);
    const previous = getEnvironmentData(GATE_KEY);
    setEnvironmentData(GATE_KEY, buffer);
    try {
      super(filename, options);
    } finally {
      // Environment data is read at construction: restore this thread's own for the next worker and for nesting.
      setEnvironmentData(GATE_KEY, previous as SharedArrayBuffer | undefined);
    }
    this.gate = new Int32Array(buffer);
  }

  override async terminate(): Promise<number> {
    let state = Atomics.or(this.gate, 0, CLOSING) | CLOSING;
    // threadId is -1 once the worker has exited (it may have died holding the gate: an out-of-memory stop).
    while (state !== CLOSING && this.threadId !== -1) {
      await waitAsync(this.gate, 0, state, 1000).value;
      state = Atomics.load(this.gate, 0);
    }
    return super.terminate();
  }
}
