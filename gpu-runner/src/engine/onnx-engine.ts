/**
 * onnxruntime-node (CPU execution provider) running our own conversion of the backbone (onnx/convert.ts).
 * Measured on the 2-core dev machine: about 20x the tfjs WASM backend for MobileNetV2 (see bench/embed).
 */
import { getInputShape, isGraphModel } from "../../../shared/backbone/model-json";
import { convertToOnnx, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME } from "./onnx/convert";
import { checkBatch, EngineUnavailableError, type BackboneBundle, type EmbeddingEngine, type FeatureSpec } from "./types";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type OrtModule = any;

async function importOrt(): Promise<OrtModule> {
  const moduleName = "onnxruntime-node";
  try {
    const ort = await import(moduleName);
    return ort.default?.InferenceSession ? ort.default : ort;
  } catch (error) {
    throw new EngineUnavailableError("onnx", `cannot load ${moduleName} (${(error as Error).message.split("\n")[0]})`);
  }
}

export async function createOnnxEngine(
  bundle: BackboneBundle,
  feature: FeatureSpec,
  options: { threads: number; maxBatch: number; log: (msg: string) => void },
): Promise<EmbeddingEngine> {
  // The converter reads Keras layer records; a GraphDef would need its own op-by-op translation. `auto` logs this
  // and moves on to tfjs, which runs graph models natively.
  if (isGraphModel(bundle.modelJson)) throw new EngineUnavailableError("onnx", "graph models are not converted to ONNX");
  const ort = await importOrt();
  const started = Date.now();
  const conversion = convertToOnnx(bundle, feature);
  const session = await ort.InferenceSession.create(conversion.bytes, {
    executionProviders: ["cpu"],
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
    // No busy-waiting between runs: the runner decodes the next batch on the main thread meanwhile, and spinning
    // intra-op threads take the cores it needs (see bench/train/run.ts, embedding breakdown).
    extra: { session: { intra_op: { allow_spinning: process.env.EDGETUNE_ONNX_SPIN ?? "0" } } },
  });
  options.log(`onnx: converted ${bundle.name} (${(conversion.bytes.length / 1e6).toFixed(1)} MB, dim ${conversion.dim}) and opened a session in ${Date.now() - started} ms`);
  const inputShape = getInputShape(bundle.modelJson, feature.input_size);
  const perImage = inputShape[0] * inputShape[1] * inputShape[2];
  // One run at a time: a session already uses every intra-op thread, overlapping runs only thrash.
  let queue: Promise<unknown> = Promise.resolve();

  const runChunk = async (chunk: Float32Array, count: number): Promise<Float32Array> => {
    const input = new ort.Tensor("float32", chunk, [count, ...inputShape]);
    const outputs = await session.run({ [ONNX_INPUT_NAME]: input });
    return outputs[ONNX_OUTPUT_NAME].data as Float32Array;
  };

  return {
    name: `onnx (${options.threads} threads)`,
    dim: conversion.dim,
    embed(batch, n) {
      checkBatch(batch, n, inputShape);
      const result = queue.then(async () => {
        const out = new Float32Array(n * conversion.dim);
        for (let start = 0; start < n; start += options.maxBatch) {
          const count = Math.min(options.maxBatch, n - start);
          const chunk = batch.subarray(start * perImage, (start + count) * perImage);
          out.set(await runChunk(chunk, count), start * conversion.dim);
        }
        return out;
      });
      queue = result.catch(() => undefined);
      return result;
    },
    async close() {
      await queue;
      await session.release();
    },
  };
}
