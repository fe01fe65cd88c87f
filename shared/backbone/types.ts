/**
 * Shapes of a frozen backbone as it travels between the runner, R2 and the Worker.
 *
 * A backbone is a tfjs *layers* model: `model.json` (`{modelTopology, weightsManifest}`) plus the weight bytes its
 * manifest describes, concatenated in manifest order (what tfjs calls `weightData`). Nothing here touches a file
 * system or a Node/Cloudflare API, so the same values are built in Node and in workerd.
 */

/** One weight as listed in a tfjs weights manifest. `quantization` is present for uint8/uint16/float16 weights. */
export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: "float32" | "int32" | "bool" | "string" | "complex64";
  quantization?: { dtype: "uint8" | "uint16" | "float16"; min?: number; scale?: number };
}

export interface WeightsManifestGroup {
  paths: string[];
  weights: WeightSpec[];
}

/** Keras layer record inside `modelTopology`. `inbound_nodes` lists `[layerName, nodeIndex, tensorIndex, kwargs]`. */
export interface LayerRecord {
  name: string;
  class_name: string;
  config: Record<string, unknown> & { name?: string };
  inbound_nodes: Array<Array<[string, number, number, Record<string, unknown>?]>>;
}

/** A tfjs layers `model.json`. Keras writes the functional model either under `model_config` or at the top. */
export interface LayersModelJson {
  modelTopology: {
    class_name?: string;
    config?: { name?: string; layers: LayerRecord[]; input_layers?: unknown[]; output_layers?: unknown[] };
    model_config?: {
      class_name: string;
      config: { name?: string; layers: LayerRecord[]; input_layers?: unknown[]; output_layers?: unknown[] };
    };
    [key: string]: unknown;
  };
  weightsManifest: WeightsManifestGroup[];
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
}

/** A backbone ready to build: topology, its weight bytes, and the numeric range its input expects. */
export interface BackboneBundle {
  /** Stable id, e.g. `builtin:nsfwjs-mobilenet_v2` or a user backbone's id. */
  name: string;
  modelJson: LayersModelJson;
  /** All weight files of `modelJson.weightsManifest`, concatenated in manifest order. */
  weightData: ArrayBuffer;
  /** Pixel values must be mapped to this range before `embed` (e.g. `[0, 1]` for nsfwjs, `[-1, 1]` for Keras MobileNet). */
  inputRange: [number, number];
}

/**
 * Which inner activations become the embedding: each named layer's output `[n, h, w, c]` is globally pooled over
 * `h, w` ("avg" → `c` values; "avg+max" → `c` averages then `c` maxima) and the pieces are concatenated in the
 * order of `feature_layers`. With `flip_average`, the embedding is the mean of the image's and its horizontal
 * mirror's embeddings.
 */
export interface FeatureSpec {
  feature_layers: string[];
  pooling: "avg" | "avg+max";
  flip_average?: boolean;
}
