/**
 * A small pool of worker threads running one task at a time each, that survives its workers' faults:
 * - a worker that crashes (uncaught error, WASM trap, exit) rejects its task with `PoolWorkerCrashedError` and is
 *   replaced by a fresh one; tasks waiting in the queue go to the others;
 * - a task that runs past `taskTimeoutMs` is rejected with `PoolTaskTimeoutError` and its worker terminated and
 *   replaced (a stuck WASM call cannot be interrupted any other way);
 * - a worker that fails to start rejects `ready` (and every task) rather than leaving callers pending.
 *
 * Worker modules call `serveTasks(init, handle)` (below). Messages: the worker posts `{type: "ready"}` or
 * `{type: "init_error", message}`; tasks `{id, request}` are answered `{id, result}` or `{id, error}`. Results and
 * requests move by transfer where the caller lists buffers, so big arrays are not copied.
 */
import { parentPort, workerData, type Transferable, type Worker, type WorkerOptions } from "node:worker_threads";
import { startWorker } from "./start-worker";

export class PoolWorkerCrashedError extends Error {
  override name = "PoolWorkerCrashedError";
}
export class PoolTaskTimeoutError extends Error {
  override name = "PoolTaskTimeoutError";
}

export interface ThreadPoolOptions {
  name: string;
  size: number;
  workerData?: unknown;
  /** Per task; 0 disables. */
  taskTimeoutMs?: number;
  /** Consecutive start failures before the pool gives up and rejects everything. */
  maxStartFailures?: number;
  /** The workers' environment and V8 heap limits (the sandbox for user models: engine/sandbox.ts). */
  workerOptions?: Pick<WorkerOptions, "env" | "resourceLimits">;
  log?(msg: string): void;
}

interface Task {
  request: unknown;
  transfer: Transferable[];
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  task: (Task & { id: number; timer?: NodeJS.Timeout }) | null;
}

export class ThreadPool<Request, Result> {
  /** Resolves when every worker has started (rejects if they cannot). */
  readonly ready: Promise<void>;
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 0;
  private closed = false;
  private startFailures = 0;
  private fatal: Error | null = null;
  private readyWaiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  /** Workers replaced after a crash or a timeout, for logs and tests. */
  respawns = 0;

  constructor(
    private readonly moduleUrl: URL,
    private readonly options: ThreadPoolOptions,
  ) {
    for (let i = 0; i < Math.max(1, options.size); i++) this.slots.push(this.spawn());
    this.ready = new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    this.ready.catch(() => undefined);
  }

  get size(): number {
    return this.slots.length;
  }

  run(request: Request, transfer: Transferable[] = []): Promise<Result> {
    if (this.closed) return Promise.reject(new Error(`${this.options.name}: the pool is closed`));
    if (this.fatal) return Promise.reject(this.fatal);
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ request, transfer, resolve: resolve as (value: unknown) => void, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.queue.splice(0)) task.reject(new Error(`${this.options.name}: the pool closed`));
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private spawn(): Slot {
    const worker = startWorker(this.moduleUrl, { ...this.options.workerOptions, workerData: this.options.workerData });
    const slot: Slot = { worker, ready: false, task: null };
    worker.on("message", (message: { type?: string; id?: number; result?: unknown; error?: { name: string; message: string; data?: unknown }; message?: string }) => {
      if (message.type === "ready") {
        slot.ready = true;
        this.startFailures = 0;
        if (this.slots.every((s) => s.ready)) for (const waiter of this.readyWaiters.splice(0)) waiter.resolve();
        this.dispatch();
        return;
      }
      if (message.type === "init_error") {
        this.replace(slot, new Error(`${this.options.name}: a worker failed to start: ${message.message}`), true);
        return;
      }
      const task = slot.task;
      if (!task || message.id !== task.id) return;
      clearTimeout(task.timer);
      slot.task = null;
      if (message.error) {
        const error = Object.assign(new Error(message.error.message), { name: message.error.name, data: message.error.data });
        task.reject(error);
      } else task.resolve(message.result);
      this.dispatch();
    });
    worker.on("error", (error) => this.replace(slot, new PoolWorkerCrashedError(`${this.options.name}: a worker crashed: ${error.message}`), !slot.ready));
    worker.on("exit", (code) => this.replace(slot, new PoolWorkerCrashedError(`${this.options.name}: a worker exited with code ${code}`), !slot.ready));
    return slot;
  }

  /** Rejects the slot's task, drops the worker and starts a replacement (unless closed or failing to start). */
  private replace(slot: Slot, error: Error, duringStart: boolean): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return; // already replaced
    if (slot.task) {
      clearTimeout(slot.task.timer);
      slot.task.reject(error);
      slot.task = null;
    }
    void slot.worker.terminate();
    if (this.closed) {
      this.slots.splice(index, 1);
      return;
    }
    if (duringStart && ++this.startFailures >= (this.options.maxStartFailures ?? 3)) {
      this.fatal = error;
      this.slots.splice(index, 1);
      for (const waiter of this.readyWaiters.splice(0)) waiter.reject(error);
      for (const task of this.queue.splice(0)) task.reject(error);
      void this.close();
      return;
    }
    this.respawns++;
    this.options.log?.(`${error.message}; starting a replacement`);
    this.slots[index] = this.spawn();
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.ready || slot.task) continue;
      const task = this.queue.shift()!;
      const id = this.nextId++;
      const timeoutMs = this.options.taskTimeoutMs ?? 0;
      const running = { ...task, id, timer: undefined as NodeJS.Timeout | undefined };
      slot.task = running;
      if (timeoutMs > 0) {
        running.timer = setTimeout(() => {
          this.replace(slot, new PoolTaskTimeoutError(`${this.options.name}: a task ran past ${timeoutMs} ms; its worker was restarted`), false);
          this.dispatch();
        }, timeoutMs);
      }
      try {
        slot.worker.postMessage({ id, request: task.request }, task.transfer);
      } catch (error) {
        clearTimeout(running.timer);
        slot.task = null;
        task.reject(error as Error);
      }
    }
  }
}

/** Answer of a task handler: the result and the buffers to transfer back with it. */
export interface TaskAnswer<Result> {
  result: Result;
  transfer?: Transferable[];
}

/**
 * Worker side: runs `init(workerData)` once, then answers tasks with `handle(request, state)` one at a time. An
 * error thrown by `handle` rejects that task only (its `name`, `message` and an optional `data` field travel back).
 */
export async function serveTasks<State, Request, Result>(init: (data: unknown) => Promise<State>, handle: (request: Request, state: State) => Promise<TaskAnswer<Result>>): Promise<void> {
  const port = parentPort!;
  let state: State;
  try {
    state = await init(workerData);
  } catch (error) {
    port.postMessage({ type: "init_error", message: (error as Error).message });
    return;
  }
  port.on("message", async ({ id, request }: { id: number; request: Request }) => {
    try {
      const { result, transfer } = await handle(request, state);
      port.postMessage({ id, result }, transfer ?? []);
    } catch (error) {
      const err = error as Error & { data?: unknown };
      port.postMessage({ id, error: { name: err.name, message: err.message, data: err.data } });
    }
  });
  port.postMessage({ type: "ready" });
}
