/**
 * A backbone ready to serve: normalised image in, embedding out, one image at a time. The fused compiler
 * (fused-backbone.ts) is tried first; a model it does not handle runs through `buildFeatureExtractor`, the exact code
 * the runner trains with.
 */
import { buildFeatureExtractor, type Tf } from "../../shared/backbone/feature-extractor";
import type { FeatureSpec, LayersModelJson } from "../../shared/backbone/types";
import { featureLayers } from "../../shared/catalog";
import type { BackboneSpec } from "../../shared/schemas";
import { compileFusedBackbone, UnsupportedGraphError } from "./fused-backbone";
import type { Tfjs } from "./tfjs-wasm";

export interface Embedder {
  /** "fused" (BN folded, activations fused) or "layers" (tfjs-layers, the runner's code path). */
  readonly engine: "fused" | "layers";
  /** Why the fused compiler was not used (engine "layers"). */
  readonly fallbackReason?: string;
  readonly inputShape: [number, number, number];
  readonly dim: number;
  /** Bytes of float32 weights held in the tfjs backend. */
  readonly weightBytes: number;
  /** `[H * W * C]` normalised NHWC pixels of one image → `[dim]`. */
  embed(image: Float32Array): Float32Array;
  dispose(): void;
}

export const featureSpecOf = (spec: BackboneSpec): FeatureSpec => ({ feature_layers: featureLayers(spec), pooling: spec.pooling });

/**
 * Builds the embedder of a stored backbone (`model.json` + its weight bytes, as `loadBackboneFiles` returns them).
 * @param options.engine force one engine (tests compare them); default: fused, falling back to layers.
 */
export async function createEmbedder(tf: Tfjs, files: { modelJson: LayersModelJson; weightData: ArrayBuffer }, spec: BackboneSpec, options: { engine?: "fused" | "layers"; log?: (message: string) => void } = {}): Promise<Embedder> {
  const featureSpec = featureSpecOf(spec);
  let fallbackReason: string | undefined;
  if (options.engine !== "layers") {
    try {
      const compiled = compileFusedBackbone(tf, files.modelJson, files.weightData, featureSpec, spec.input_size);
      return { engine: "fused", inputShape: compiled.inputShape, dim: compiled.dim, weightBytes: compiled.weightBytes, embed: compiled.embed, dispose: compiled.dispose };
    } catch (error) {
      if (!(error instanceof UnsupportedGraphError) || options.engine === "fused") throw error;
      fallbackReason = error.message;
      options.log?.(`fused backbone compiler: ${error.message}; running the model with tfjs-layers`);
    }
  }
  const extractor = await buildFeatureExtractor(tf as unknown as Tf, { name: spec.name, modelJson: files.modelJson, weightData: files.weightData, inputRange: [0, 1] }, featureSpec);
  const [h, w, c] = extractor.inputShape;
  const weightBytes = extractor.model.weights.reduce((sum, weight) => sum + weight.shape.reduce<number>((a, b) => a * (b ?? 1), 1) * 4, 0);
  return {
    engine: "layers",
    fallbackReason,
    inputShape: extractor.inputShape,
    dim: extractor.dim,
    weightBytes,
    embed(image) {
      if (image.length !== h * w * c) throw new RangeError(`embed: expected ${h}x${w}x${c} = ${h * w * c} floats, got ${image.length}`);
      const embedding = tf.tidy(() => extractor.embed(tf.tensor4d(image, [1, h, w, c])));
      const data = new Float32Array(embedding.dataSync() as Float32Array);
      embedding.dispose();
      return data;
    },
    dispose: () => extractor.dispose(),
  };
}
