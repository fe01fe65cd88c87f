/**
 * Builds the frozen feature extractor of a *layers* backbone with plain tfjs APIs (no file system, no `node:*`), so
 * the runner (Node) and the Worker (workerd) compute the same embedding from the same bundle. Graph models are built
 * by ./graph-feature-extractor.ts; ./any-feature-extractor.ts picks between the two.
 *
 * The tfjs module is passed in rather than imported: the runner may hand in `@tensorflow/tfjs-node`'s copy, the
 * Worker its WASM-backed `@tensorflow/tfjs`.
 */
import type * as tfjs from "@tensorflow/tfjs";
import { getInputShape, getWeightSpecs, isGraphModel, pruneToFeatureLayers, validateFeatureSpec } from "./model-json";
import type { BackboneBundle, FeatureSpec } from "./types";

export type Tf = typeof tfjs;

/** What every feature extractor offers, whatever the model format. */
export interface BaseFeatureExtractor {
  readonly format: "layers-model" | "graph-model";
  /** `[H, W, C]` the backbone expects. */
  readonly inputShape: [number, number, number];
  /** Length of one embedding. */
  readonly dim: number;
  /** Channels of each feature layer, in spec order (the embedding holds `channels` or `2 * channels` per layer). */
  readonly layerChannels: number[];
  /**
   * `[n, H, W, C]` float32, already in the bundle's `inputRange` → `[n, dim]`. Applies the spec's flip averaging.
   * The caller owns (and must dispose) the returned tensor; intermediates are freed.
   */
  embed(images: tfjs.Tensor4D): tfjs.Tensor2D;
  /**
   * `embed`, for callers that can wait: the one path that also runs graph models needing `executeAsync` (control
   * flow, dynamic shapes). The caller owns the returned tensor.
   */
  embedAsync(images: tfjs.Tensor4D): Promise<tfjs.Tensor2D>;
  /** Frees the model's weights. */
  dispose(): void;
}

/** The feature extractor of a layers model. */
export interface FeatureExtractor extends BaseFeatureExtractor {
  readonly format: "layers-model";
  /** `[n, H, W, C]` normalised images → `[n, dim]` pooled, concatenated features (no flip averaging). */
  readonly model: tfjs.LayersModel;
}

/**
 * Loads `bundle`'s topology cut at `spec.feature_layers`, sets its weights from `bundle.weightData`, and appends
 * global pooling + concatenation. Weights are frozen (`trainable = false`); nothing here trains.
 */
export async function buildFeatureExtractor(tf: Tf, bundle: BackboneBundle, spec: FeatureSpec): Promise<FeatureExtractor> {
  if (isGraphModel(bundle.modelJson)) {
    throw new Error(`backbone ${bundle.name} is a graph model; build it with buildGraphFeatureExtractor (or buildAnyFeatureExtractor, which picks)`);
  }
  validateFeatureSpec(bundle.modelJson, spec);
  const inputShape = getInputShape(bundle.modelJson, spec.input_size);
  const pruned = pruneToFeatureLayers(bundle.modelJson, spec.feature_layers, inputShape);
  const trunk = (await tf.models.modelFromJSON({ modelTopology: pruned.modelTopology as tfjs.io.ModelJSON["modelTopology"] })) as tfjs.LayersModel;

  // Decode every weight (dequantizing uint8 ones), keep those the cut model owns, and insist on all of them.
  const wanted = new Set(trunk.weights.map((weight) => weight.originalName));
  const decoded = tf.io.decodeWeights(bundle.weightData, getWeightSpecs(bundle.modelJson) as tfjs.io.WeightsManifestEntry[]);
  const selected: tfjs.NamedTensorMap = {};
  for (const [name, tensor] of Object.entries(decoded)) {
    if (wanted.has(name)) selected[name] = tensor;
    else tensor.dispose();
  }
  const missing = [...wanted].filter((name) => !(name in selected));
  if (missing.length > 0) throw new Error(`backbone weights are missing ${missing.slice(0, 5).join(", ")}`);
  trunk.loadWeights(selected, true);
  tf.dispose(Object.values(selected));
  trunk.trainable = false;

  const outputs = trunk.outputs;
  const layerChannels = outputs.map((output, index) => {
    if (output.shape.length !== 4) {
      throw new Error(`feature layer ${spec.feature_layers[index]} outputs shape [${output.shape}], expected [n, h, w, c]`);
    }
    return output.shape[3] as number;
  });
  const pooled: tfjs.SymbolicTensor[] = [];
  outputs.forEach((output, index) => {
    const name = spec.feature_layers[index];
    if (spec.pooling === "none") return void pooled.push(tf.layers.flatten({ name: `feature_map_${name}` }).apply(output) as tfjs.SymbolicTensor);
    pooled.push(tf.layers.globalAveragePooling2d({ name: `feature_avg_${index}_${name}` }).apply(output) as tfjs.SymbolicTensor);
    if (spec.pooling === "avg+max") {
      pooled.push(tf.layers.globalMaxPooling2d({ name: `feature_max_${index}_${name}` }).apply(output) as tfjs.SymbolicTensor);
    }
  });
  const features =
    pooled.length === 1 ? pooled[0]! : (tf.layers.concatenate({ axis: -1, name: "feature_concat" }).apply(pooled) as tfjs.SymbolicTensor);
  const model = tf.model({ inputs: trunk.inputs, outputs: features, name: "feature_extractor" });
  const dim = features.shape[1] as number;

  const embed = (images: tfjs.Tensor4D): tfjs.Tensor2D =>
    tf.tidy(() => {
      const direct = model.predict(images) as tfjs.Tensor2D;
      if (!spec.flip_average) return direct;
      const mirrored = model.predict(tf.reverse(images, 2)) as tfjs.Tensor2D;
      return tf.mul(tf.add(direct, mirrored), 0.5) as tfjs.Tensor2D;
    });

  return { format: "layers-model", model, inputShape, dim, layerChannels, embed, embedAsync: async (images) => embed(images), dispose: () => model.dispose() };
}
