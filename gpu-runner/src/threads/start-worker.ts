/**
 * Starts a worker thread from a module next to the caller, whether the runner runs from TypeScript sources (tsx,
 * vitest) or from compiled JavaScript. Node 20 does not apply the parent's `--import tsx` hooks inside worker
 * threads, so a TypeScript worker is loaded by a one-line bootstrap through tsx's `tsImport`. Every worker is a
 * `GatedWorker`: its `terminate()` never lands inside an onnxruntime call (native-gate.ts).
 */
import type { Worker, WorkerOptions } from "node:worker_threads";
import { GatedWorker } from "./native-gate";

/** `./name.ts` or `./name.js` next to `callerUrl`, matching how the caller itself was loaded. */
export function siblingModule(callerUrl: string, name: string): URL {
  return new URL(`./${name}${callerUrl.endsWith(".ts") ? ".ts" : ".js"}`, callerUrl);
}

export function startWorker(moduleUrl: URL, options: Omit<WorkerOptions, "eval"> = {}): Worker {
  if (!moduleUrl.pathname.endsWith(".ts")) return new GatedWorker(moduleUrl, options);
  const api = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(moduleUrl.href)}, ${JSON.stringify(import.meta.url)}))`;
  return new GatedWorker(bootstrap, { ...options, eval: true });
}
