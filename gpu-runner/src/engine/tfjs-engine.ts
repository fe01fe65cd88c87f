/**
 * In-process tfjs engines: tfjs-node-gpu, tfjs-node, WebGPU (Dawn via the `webgpu` npm package) and the pure-JS
 * cpu backend. The optional modules are loaded with dynamic `import()` so a missing one is an
 * EngineUnavailableError that `auto` logs and skips. tfjs backends are process-global: use one in-process tfjs
 * engine at a time (the tfjs-wasm engine runs in worker threads and does not count).
 */
import { buildAnyFeatureExtractor } from "../../../shared/backbone/any-feature-extractor";
import type { BaseFeatureExtractor, Tf } from "../../../shared/backbone/feature-extractor";
import { checkBatch, EngineUnavailableError, type BackboneBundle, type EmbeddingEngine, type EngineKind, type FeatureSpec } from "./types";

// Dynamically imported modules are typed `any`: they are not installed in every checkout.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyModule = any;

async function optionalImport(engine: EngineKind, moduleName: string): Promise<AnyModule> {
  try {
    return await import(moduleName);
  } catch (error) {
    const message = (error as Error).message.split("\n")[0];
    throw new EngineUnavailableError(engine, `cannot load ${moduleName} (${message})`);
  }
}

/** Returns the tfjs namespace with the engine's backend active. */
async function prepareBackend(engine: EngineKind, log: (msg: string) => void): Promise<Tf> {
  switch (engine) {
    case "tfjs-node-gpu":
    case "tfjs-node": {
      const tf = (await optionalImport(engine, engine === "tfjs-node-gpu" ? "@tensorflow/tfjs-node-gpu" : "@tensorflow/tfjs-node")) as AnyModule;
      const ns = tf.default?.setBackend ? tf.default : tf;
      if (!(await ns.setBackend("tensorflow"))) throw new EngineUnavailableError(engine, "backend 'tensorflow' failed to initialise");
      if (engine === "tfjs-node-gpu") {
        // libtensorflow with CUDA quietly runs on the CPU when no GPU is visible; ask it.
        const devices = ns.backend()?.binding?.TF_ListDevices?.() ?? undefined;
        if (Array.isArray(devices) && !devices.some((d: string) => /GPU/i.test(d))) {
          throw new EngineUnavailableError(engine, "libtensorflow sees no GPU device");
        }
      }
      return ns as Tf;
    }
    case "webgpu": {
      const webgpu = (await optionalImport(engine, "webgpu")) as AnyModule;
      const create = webgpu.create ?? webgpu.default?.create;
      const globals = webgpu.globals ?? webgpu.default?.globals;
      if (typeof create !== "function") throw new EngineUnavailableError(engine, "the webgpu module has no create()");
      if (globals) Object.assign(globalThis, globals);
      const gpu = create([]);
      const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
      if (!adapter) throw new EngineUnavailableError(engine, "no GPU adapter");
      const info = adapter.info ?? (await adapter.requestAdapterInfo?.()) ?? {};
      if (adapter.isFallbackAdapter || info.isFallbackAdapter) {
        throw new EngineUnavailableError(engine, `only a software adapter (${info.description ?? info.device ?? "fallback"})`);
      }
      const g = globalThis as AnyModule;
      if (!g.navigator) Object.defineProperty(g, "navigator", { value: { gpu }, configurable: true, writable: true });
      else if (!g.navigator.gpu) Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true });
      const tf = (await import("@tensorflow/tfjs")) as AnyModule;
      await optionalImport(engine, "@tensorflow/tfjs-backend-webgpu");
      if (!(await tf.setBackend("webgpu"))) throw new EngineUnavailableError(engine, "tfjs backend 'webgpu' failed to initialise");
      log(`webgpu: adapter ${info.vendor ?? "?"} ${info.architecture ?? ""} ${info.description ?? ""}`.trim());
      return tf as Tf;
    }
    case "tfjs-cpu": {
      const tf = await import("@tensorflow/tfjs");
      await tf.setBackend("cpu");
      return tf;
    }
    default:
      throw new Error(`prepareBackend: ${engine} is not an in-process tfjs engine`);
  }
}

/** Runs `extractor` (layers or graph) on `batch` in chunks of `maxBatch` images. */
export async function embedWithExtractor(tf: Tf, extractor: BaseFeatureExtractor, batch: Float32Array, n: number, maxBatch: number): Promise<Float32Array> {
  const [h, w, c] = extractor.inputShape;
  const perImage = h * w * c;
  const out = new Float32Array(n * extractor.dim);
  for (let start = 0; start < n; start += maxBatch) {
    const count = Math.min(maxBatch, n - start);
    const images = tf.tensor4d(batch.subarray(start * perImage, (start + count) * perImage), [count, h, w, c]);
    const features = await extractor.embedAsync(images);
    out.set((await features.data()) as Float32Array, start * extractor.dim);
    tf.dispose([images, features]);
  }
  return out;
}

export async function createTfjsEngine(
  engine: Exclude<EngineKind, "onnx" | "tfjs-wasm">,
  bundle: BackboneBundle,
  feature: FeatureSpec,
  options: { maxBatch: number; log: (msg: string) => void },
): Promise<EmbeddingEngine> {
  const tf = await prepareBackend(engine, options.log);
  const extractor = await buildAnyFeatureExtractor(tf, bundle, feature);
  let queue: Promise<unknown> = Promise.resolve();
  return {
    name: `${engine} (backend ${tf.getBackend()})`,
    dim: extractor.dim,
    embed(batch, n) {
      checkBatch(batch, n, extractor.inputShape);
      const result = queue.then(() => embedWithExtractor(tf, extractor, batch, n, options.maxBatch));
      queue = result.catch(() => undefined);
      return result;
    },
    async close() {
      await queue;
      extractor.dispose();
    },
  };
}
