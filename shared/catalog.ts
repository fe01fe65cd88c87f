/**
 * The backbone catalog: builtin backbones (vendored in this repository or shipped inside npm packages, so they work
 * offline) and how any backbone, builtin or the user's own, maps to preprocessing, feature layers and the embedding
 * cache key.
 */
import { PREPROCESS_VERSION, type PreprocessSpec } from "./image/preprocess";
import { AUGMENT_VERSION } from "./image/augment";
import type { PooledFeatureSpec } from "./backbone/types";
import type { BackboneSpec } from "./schemas";

export interface CatalogEntry {
  /** The name a job's `backbone` field may use. */
  name: string;
  id: string;
  description: string;
  source: string;
  license: string;
  spec: BackboneSpec;
  /** Bump when the weights or graph change: it keys cached embeddings. */
  weightsVersion: string;
  /**
   * The stored pair (model.json naming one weights.bin, and weights.bin) as runners publish it to R2, pinned by sha256:
   * the API accepts exactly these bytes, once, so no runner can replace a builtin backbone every tenant is served from.
   * tests/node/builtin-pins.test.ts checks them against what the runner publishes (bundleFiles in gpu-runner/src/backbone-source.ts).
   */
  files?: Record<"model.json" | "weights.bin", { sha256: string; bytes: number }>;
  /**
   * For a backbone vendored in gpu-runner/vendor/: its folder there and the pinned sha256 of each file (the runner
   * and scripts/publish-builtins.ts refuse files that differ).
   */
  vendored?: { dir: string; files: { "model.json": string; "weights.bin": string } };
  /**
   * Channels of each of `spec.feature_layer`, in order: the embedding's column ranges per layer, which lets `auto`
   * try heads on some of the layers (gpu-runner/src/train/feature-subset.ts).
   */
  featureChannels?: number[];
  /**
   * How many of its last blocks `fine_tune` may train (shared/backbone/separable-blocks.ts finds them); absent: the
   * backbone cannot be fine-tuned (422 fine_tune_unsupported).
   */
  fineTuneBlocks?: number;
}

/**
 * - mobilenet_v1_075 (the default): Google's ImageNet MobileNet v1, width 0.75, published for 224x224 (about 68%
 *   ImageNet top-1), vendored with pinned sha256s (Apache-2.0, gpu-runner/vendor/mobilenet_v1_075_224/NOTICE). Its
 *   input size, resize mode, feature layers and pooling were chosen by 5-fold cross-validation of a linear probe on
 *   flowers5's TRAINING images only, never on the held-out split (numbers beside the fields below). The trunk is
 *   convolutional up to conv_pw_13, so it runs at any input size (shared/backbone/model-json.ts getInputShape).
 * - mobilenet_v2: nsfwjs's MobileNetV2 (224x224, inputs in [0, 1]). Its layers from block_11 on were fine-tuned by
 *   nsfwjs for its own task, so the embedding comes from earlier, ImageNet-trained layers (picked by the same probe).
 *   The default until MobileNet v1 0.75 measured better (flowers5 fixed split, bench/train/run.ts).
 */
export const BUILTIN_BACKBONES: readonly CatalogEntry[] = [
  {
    name: "mobilenet_v1_075",
    id: "bb_builtin_mobilenet_v1_075",
    description: "MobileNet v1 0.75, 224x224, ImageNet (Google's Keras weights as published for tfjs-models, float32)",
    source: "vendored: gpu-runner/vendor/mobilenet_v1_075_224 (tfjs-models mobilenet_v1_0.75_224)",
    license: "Apache-2.0 (Google)",
    spec: {
      name: "mobilenet_v1_075",
      // 5-fold CV of a linear head on flowers5's 300 training images, best L2 of 0.1..3 each
      // (`npx tsx bench/train/input-probe.ts`, env in its header):
      // - one size, squash, conv_pw_13, avg: 288x288 91.3% (384 ties, at 1.8x the cost); 288 with conv_pw_9 + 13
      //   90.3%, center_crop 90.7%, avg+max 89.7%; 224 (as published) 87.3 to 88.7% for every layer set and resize;
      //   256 87.7 to 89.7%; 320 89.0 to 90.7%; 352 88.0 to 90.3%. Flip-averaged features: 90.7%.
      // - the mean of two sizes' embeddings (MULTISCALE): 288 + 352 92.0%, the best of all; 288 + 384 91.7%;
      //   224 + 288 89.3%; 256 + 320 91.3%; 224 + 288 + 352 90.3%. Concatenated instead: 288 + 352 91.0%.
      // - over 3 more fold assignments (FOLD_SEED=1..3), 288 + 352 vs 288 alone: 89.3 / 89.3, 91.3 / 90.7,
      //   90.0 / 89.3: the mean of the two sizes never lost, by 0.5 points on average over the 4 assignments.
      // At 224, `npx tsx bench/embed/probe-layers.ts --quick --cv-only --backbone mobilenet_v1_075` gave conv_pw_9 +
      // conv_pw_13 87.7% and the other 35 layer/pooling combinations of conv_pw_9..13 75.7% to 87.0%.
      feature_layer: "conv_pw_13_relu",
      input_size: [288, 288],
      extra_input_sizes: [[352, 352]],
      normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
      pooling: "avg",
      resize: "squash",
    },
    weightsVersion: "tfjs-models-mobilenet_v1_0.75_224",
    featureChannels: [768],
    fineTuneBlocks: 2,
    files: {
      "model.json": { sha256: "4396d0c4202c410e1a3fb1808c647bd428536a0c01656738d3dc8b5553d8f946", bytes: 47_125 },
      "weights.bin": { sha256: "0c27b9b79c52b63b42e78628f640cd7259e2bfab5d82151a2d30e902d8f376b2", bytes: 10_407_904 },
    },
    vendored: {
      dir: "mobilenet_v1_075_224",
      files: {
        "model.json": "4396d0c4202c410e1a3fb1808c647bd428536a0c01656738d3dc8b5553d8f946",
        "weights.bin": "0c27b9b79c52b63b42e78628f640cd7259e2bfab5d82151a2d30e902d8f376b2",
      },
    },
  },
  {
    name: "mobilenet_v2",
    id: "bb_builtin_mobilenet_v2",
    description: "MobileNetV2 1.0, 224x224, ImageNet features (weights from the nsfwjs npm package, uint8-quantised)",
    source: "npm:nsfwjs@4.4.0/dist/models/mobilenet_v2",
    license: "MIT (nsfwjs)",
    spec: {
      name: "mobilenet_v2",
      feature_layer: ["block_13_expand_relu"],
      input_size: [224, 224],
      normalization: { mean: [0, 0, 0], std: [1, 1, 1] },
      pooling: "avg",
      resize: "squash",
    },
    weightsVersion: "nsfwjs-4.4.0",
    files: {
      "model.json": { sha256: "7fb4f4e845ba0997e936361cbcb48111f07d8ddf1ab9776bdd617e7403937aa9", bytes: 117_923 },
      "weights.bin": { sha256: "8e7dddbb16acacc1bf1601b1b8a761e730ff934b7f2d7771312b2f000e5f5f13", bytes: 2_619_461 },
    },
  },
];

/** What a job gets when it names no backbone. */
export const DEFAULT_BACKBONE: CatalogEntry = BUILTIN_BACKBONES.find((entry) => entry.name === "mobilenet_v1_075")!;

/** The nsfwjs MobileNetV2, the default before MobileNet v1 0.75 (kept as a named builtin). */
export const NSFWJS_MOBILENET_V2: CatalogEntry = BUILTIN_BACKBONES.find((entry) => entry.name === "mobilenet_v2")!;

export function findBuiltinBackbone(nameOrId: string): CatalogEntry | undefined {
  return BUILTIN_BACKBONES.find((b) => b.name === nameOrId || b.id === nameOrId);
}

export const featureLayers = (spec: BackboneSpec): string[] => (Array.isArray(spec.feature_layer) ? spec.feature_layer : [spec.feature_layer]);

/**
 * The feature spec (layers or graph nodes, pooling, and the input size for models that leave it free) of a backbone
 * spec: what the runner's engines and the Worker's embedder build, so both compute the same embedding.
 */
export function featureSpecOf(spec: BackboneSpec): PooledFeatureSpec {
  return { feature_layers: featureLayers(spec), pooling: spec.pooling, input_size: [spec.input_size[0], spec.input_size[1]], ...extraSizes(spec) };
}

const extraSizes = (spec: BackboneSpec): { extra_input_sizes?: [number, number][] } =>
  spec.extra_input_sizes?.length ? { extra_input_sizes: spec.extra_input_sizes.map(([h, w]) => [h, w] as [number, number]) } : {};

/**
 * `spec` fed at its `input_size` only: fine-tuning trains blocks on the activations of one size, and a fine-tuned
 * model is served from that size alone, on the runner and at the edge.
 */
export function singleSizeSpec(spec: BackboneSpec): BackboneSpec {
  const { extra_input_sizes: _dropped, ...rest } = spec;
  return rest;
}

/** The numeric range `(x - mean) / std` maps [0, 1] pixels to (the first channel's). */
export function inputRangeOfNormalization(spec: BackboneSpec): [number, number] {
  const { mean, std } = spec.normalization;
  return [(0 - mean[0]) / std[0], (1 - mean[0]) / std[0]];
}

export function preprocessSpecOf(spec: BackboneSpec): PreprocessSpec {
  return { input_size: spec.input_size, mean: spec.normalization.mean, std: spec.normalization.std, resize: spec.resize, ...extraSizes(spec) };
}

/**
 * Embeddings are cached under this key + each image's sha256: everything that changes a single value of an image's
 * embedding is in it (weights, feature layers, pooling, preprocessing code and parameters).
 */
export function embeddingCacheKey(backboneId: string, weightsVersion: string, spec: BackboneSpec): string {
  const sizes = [spec.input_size, ...(spec.extra_input_sizes ?? [])].map((size) => size.join("x")).join("+");
  const parts = [backboneId, weightsVersion, featureLayers(spec).join("+"), spec.pooling, sizes, spec.resize, spec.normalization.mean.join(","), spec.normalization.std.join(","), PREPROCESS_VERSION];
  return parts.join("|");
}

/**
 * The cache key of an image's transformed view `view` (≥ 1, shared/image/augment.ts): the plain key plus the view
 * and the augmentation version, so a second job asking for the same views computes nothing.
 */
export function viewEmbeddingCacheKey(backboneId: string, weightsVersion: string, spec: BackboneSpec, view: number): string {
  return `${embeddingCacheKey(backboneId, weightsVersion, spec)}|view ${view}|${AUGMENT_VERSION}`;
}

/**
 * Cut activations (the unpooled output of `cutLayer`, the input of the blocks `fine_tune` trains) are cached like
 * embeddings under this key + each image's sha256: backbone weights, cut layer, preprocessing code and parameters.
 */
export function cutActivationCacheKey(backboneId: string, weightsVersion: string, spec: BackboneSpec, cutLayer: string): string {
  return [backboneId, weightsVersion, `cut:${cutLayer}`, "map", spec.input_size.join("x"), spec.resize, spec.normalization.mean.join(","), spec.normalization.std.join(","), PREPROCESS_VERSION].join("|");
}
