/**
 * Shapes of a frozen backbone as it travels between the runner, R2 and the Worker.
 *
 * A backbone is a tfjs *layers* model (a Keras topology) or a tfjs *graph* model (a TensorFlow GraphDef, e.g. a
 * TF-Hub module converted with tensorflowjs_converter): `model.json` (`{modelTopology, weightsManifest}`) plus the
 * weight bytes its manifest describes, concatenated in manifest order (what tfjs calls `weightData`). Nothing here
 * touches a file system or a Node/Cloudflare API, so the same values are built in Node and in workerd.
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

/**
 * One node of a graph model's GraphDef (`modelTopology.node`): `input` names the nodes it reads ("name" or
 * "name:outputIndex", "^name" for control inputs); `attr` holds TensorFlow attributes such as a Placeholder's shape.
 */
export interface GraphNodeRecord {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, unknown>;
}

/**
 * A tfjs `model.json`. For a layers model Keras writes the functional model either under `model_config` or at the
 * top; a graph model has `modelTopology.node` (a list of `GraphNodeRecord`) instead, and `format: "graph-model"`
 * unless an old converter left the format out. `isGraphModel` (./model-json) tells them apart.
 */
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
  /** Layer names of a layers model, node names of a graph model. */
  feature_layers: string[];
  /** "none": one feature layer's map itself, NHWC, flattened (`h * w * c` values; the cut activation of fine-tuning). */
  pooling: "avg" | "avg+max" | "none";
  flip_average?: boolean;
  /**
   * `[height, width]` of the images the backbone is fed (the backbone spec's `input_size`). A layers model runs at
   * this size whatever it declares (a builtin is served at the size its catalog chose); a graph model uses it only
   * where it leaves its size free (`[-1, -1, -1, 3]`). The API rejects a user's spec that disagrees with the size
   * the model fixes, at import (shared/backbone/model-json.ts getInputShape).
   */
  input_size?: [number, number];
  /**
   * More sizes the image is fed at (a builtin spec's `extra_input_sizes`): the input tensor holds the image at
   * `input_size` then at each of these (shared/image/preprocess.ts), and the embedding is the mean of each size's.
   */
  extra_input_sizes?: [number, number][];
}

/** A feature spec whose embedding is pooled (what a backbone spec describes; "none" is only the fine-tuning cut). */
export type PooledFeatureSpec = FeatureSpec & { pooling: "avg" | "avg+max" };
