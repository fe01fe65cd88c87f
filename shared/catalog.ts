/**
 * The backbone catalog: builtin backbones (shipped inside npm packages, so they work offline) and how any backbone,
 * builtin or the user's own, maps to preprocessing, feature layers and the embedding cache key.
 */
import { PREPROCESS_VERSION, type PreprocessSpec } from "./image/preprocess";
import type { FeatureSpec } from "./backbone/types";
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
}

/**
 * The default: nsfwjs's MobileNetV2 (224x224, inputs in [0, 1]). Its layers from block_11 on were fine-tuned by
 * nsfwjs for its own task, so the embedding comes from earlier, ImageNet-trained layers; the layers were picked by
 * a measured linear probe on flowers5 (see bench/embed/probe-layers.ts and the README).
 */
export const BUILTIN_BACKBONES: readonly CatalogEntry[] = [
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

export const DEFAULT_BACKBONE = BUILTIN_BACKBONES[0];

export function findBuiltinBackbone(nameOrId: string): CatalogEntry | undefined {
  return BUILTIN_BACKBONES.find((b) => b.name === nameOrId || b.id === nameOrId);
}

export const featureLayers = (spec: BackboneSpec): string[] => (Array.isArray(spec.feature_layer) ? spec.feature_layer : [spec.feature_layer]);

/**
 * The feature spec (layers or graph nodes, pooling, and the input size for models that leave it free) of a backbone
 * spec: what the runner's engines and the Worker's embedder build, so both compute the same embedding.
 */
export function featureSpecOf(spec: BackboneSpec): FeatureSpec {
  return { feature_layers: featureLayers(spec), pooling: spec.pooling, input_size: [spec.input_size[0], spec.input_size[1]] };
}

export function preprocessSpecOf(spec: BackboneSpec): PreprocessSpec {
  return { input_size: spec.input_size, mean: spec.normalization.mean, std: spec.normalization.std, resize: spec.resize };
}

/**
 * Embeddings are cached under this key + each image's sha256: everything that changes a single value of an image's
 * embedding is in it (weights, feature layers, pooling, preprocessing code and parameters).
 */
export function embeddingCacheKey(backboneId: string, weightsVersion: string, spec: BackboneSpec): string {
  const parts = [backboneId, weightsVersion, featureLayers(spec).join("+"), spec.pooling, spec.input_size.join("x"), spec.resize, spec.normalization.mean.join(","), spec.normalization.std.join(","), PREPROCESS_VERSION];
  return parts.join("|");
}
