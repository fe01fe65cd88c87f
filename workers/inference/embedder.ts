/**
 * A backbone ready to serve: normalised image in, embedding out, one image at a time. For a layers model the fused
 * compiler (fused-backbone.ts) is tried first; a layers model it does not handle runs through
 * `buildFeatureExtractor` and a graph model through `buildGraphFeatureExtractor`, the runner's own code for each.
 */
import type { Tf } from "../../shared/backbone/feature-extractor";
import { buildAnyFeatureExtractor } from "../../shared/backbone/any-feature-extractor";
import { isGraphModel } from "../../shared/backbone/model-json";
import type { FeatureSpec, LayersModelJson } from "../../shared/backbone/types";
import { featureSpecOf } from "../../shared/catalog";
import { averageEmbeddings } from "../../shared/image/augment";
import { inputSizes } from "../../shared/image/preprocess";
import type { BackboneSpec } from "../../shared/schemas";
import { compileFusedBackbone, UnsupportedGraphError, type SharedWeights } from "./fused-backbone";
import type { Tfjs } from "./tfjs-wasm";

export interface EmbedderOptions {
  /** Force the fused or the runner's path (tests compare them); default: fused when it can. */
  engine?: "fused" | "runner";
  log?: (message: string) => void;
  /** Overrides the spec's layers and pooling: a fine-tuned model's trunk runs to its cut, unpooled. */
  feature?: FeatureSpec;
  /** One model's weights at several input sizes (fused-backbone.ts SharedWeights); the caller frees them. */
  sharedWeights?: SharedWeights;
}

export interface Embedder {
  /** "fused" (BN folded, activations fused), "layers" (tfjs-layers) or "graph" (tfjs-converter's GraphModel). */
  readonly engine: "fused" | "layers" | "graph";
  /** Why the fused compiler was not used. */
  readonly fallbackReason?: string;
  readonly inputShape: [number, number, number];
  readonly dim: number;
  /** Bytes of float32 weights held in the tfjs backend. */
  readonly weightBytes: number;
  /** `[H * W * C]` normalised NHWC pixels of one image → `[dim]`. */
  embed(image: Float32Array): Promise<Float32Array>;
  dispose(): void;
}


/**
 * Builds the embedder of a stored backbone (`model.json` + its weight bytes, as `loadBackboneFiles` returns them).
 */
export async function createEmbedder(tf: Tfjs, files: { modelJson: LayersModelJson; weightData: ArrayBuffer }, spec: BackboneSpec, options: EmbedderOptions = {}): Promise<Embedder> {
  // `feature` overrides the spec's layers and pooling: a fine-tuned model's trunk runs to its cut, unpooled.
  const featureSpec = options.feature ?? featureSpecOf(spec);
  if (featureSpec.extra_input_sizes?.length) return createMultiSizeEmbedder(tf, files, spec, { ...options, feature: featureSpec });
  const graph = isGraphModel(files.modelJson);
  let fallbackReason = graph ? "a graph model" : undefined;
  if (options.engine !== "runner" && !graph) {
    try {
      const compiled = compileFusedBackbone(tf, files.modelJson, files.weightData, featureSpec, options.sharedWeights);
      return { engine: "fused", inputShape: compiled.inputShape, dim: compiled.dim, weightBytes: compiled.weightBytes, embed: async (image) => compiled.embed(image), dispose: compiled.dispose };
    } catch (error) {
      if (!(error instanceof UnsupportedGraphError) || options.engine === "fused") throw error;
      fallbackReason = error.message;
      options.log?.(`fused backbone compiler: ${error.message}; running the model with tfjs-layers`);
    }
  }
  // Graph models need tfjs-converter (loadGraphModel), loaded only for them.
  const full = (graph ? { ...tf, ...(await import("@tensorflow/tfjs-converter")) } : tf) as unknown as Tf;
  const extractor = await buildAnyFeatureExtractor(full, { name: spec.name, modelJson: files.modelJson, weightData: files.weightData, inputRange: [0, 1] }, featureSpec);
  const [h, w, c] = extractor.inputShape;
  const weights = extractor.format === "layers-model" ? extractor.model.weights.map((weight) => weight.shape) : Object.values(extractor.model.weights).map((tensors) => tensors[0]?.shape ?? []);
  const weightBytes = weights.reduce<number>((sum, shape) => sum + shape.reduce<number>((a, b) => a * (b ?? 1), 1) * 4, 0);
  return {
    engine: graph ? "graph" : "layers",
    fallbackReason,
    inputShape: extractor.inputShape,
    dim: extractor.dim,
    weightBytes,
    async embed(image) {
      if (image.length !== h * w * c) throw new RangeError(`embed: expected ${h}x${w}x${c} = ${h * w * c} floats, got ${image.length}`);
      const input = tf.tensor4d(image, [1, h, w, c]);
      try {
        const embedding = await extractor.embedAsync(input);
        const data = new Float32Array(embedding.dataSync() as Float32Array);
        embedding.dispose();
        return data;
      } finally {
        input.dispose();
      }
    },
    dispose: () => extractor.dispose(),
  };
}

/**
 * A backbone fed at several input sizes (`extra_input_sizes`): one embedder per size, the image's tensor split into
 * its sizes' parts (shared/image/preprocess.ts), the embedding the mean of each size's, as on the runner
 * (gpu-runner/src/engine/index.ts createMultiSizeEngine). `inputShape` is the first size's.
 */
async function createMultiSizeEmbedder(tf: Tfjs, files: { modelJson: LayersModelJson; weightData: ArrayBuffer }, spec: BackboneSpec, options: EmbedderOptions & { feature: FeatureSpec }): Promise<Embedder> {
  const sizes = inputSizes({ input_size: options.feature.input_size!, extra_input_sizes: options.feature.extra_input_sizes });
  const parts: Embedder[] = [];
  // One copy of the weights for every size: MobileNet v1 0.75 at 288 and 352 holds 7.2 MB, not 14.5 MB, and the
  // WASM heap, which never shrinks, stays smaller (bench/predict/multi-size-memory.ts).
  const sharedWeights: SharedWeights = new Map();
  const disposeAll = () => {
    for (const part of parts) part.dispose();
    for (const tensor of sharedWeights.values()) tensor.dispose();
  };
  try {
    for (const input_size of sizes) parts.push(await createEmbedder(tf, files, spec, { ...options, sharedWeights, feature: { ...options.feature, input_size, extra_input_sizes: undefined } }));
  } catch (error) {
    disposeAll();
    throw error;
  }
  const lengths = sizes.map(([h, w]) => h * w * 3);
  const total = lengths.reduce((a, b) => a + b, 0);
  return {
    engine: parts[0]!.engine,
    fallbackReason: parts[0]!.fallbackReason,
    inputShape: parts[0]!.inputShape,
    dim: parts[0]!.dim,
    // Fused parts share their weights (each reports the shared total); other engines hold a copy each.
    weightBytes: parts.every((part) => part.engine === "fused") ? parts[0]!.weightBytes : parts.reduce((sum, part) => sum + part.weightBytes, 0),
    async embed(image) {
      if (image.length !== total) throw new RangeError(`embed: expected ${sizes.map(([h, w]) => `${h}x${w}x3`).join(" + ")} = ${total} floats, got ${image.length}`);
      const embeddings: Float32Array[] = [];
      let offset = 0;
      for (const [k, part] of parts.entries()) {
        embeddings.push(await part.embed(image.subarray(offset, offset + lengths[k]!)));
        offset += lengths[k]!;
      }
      return averageEmbeddings(...embeddings);
    },
    dispose: disposeAll,
  };
}
