/**
 * Checks a user's tfjs model before it becomes a backbone: plain data in, a summary or a 422 `ApiError` out. Nothing
 * here reads storage or the network, so both upload forms (zip, URL) share it and it can be unit-tested alone.
 *
 * Accepted: tfjs *layers* models (`format: "layers-model"`, or no format and a Keras topology) and tfjs *graph*
 * models (`format: "graph-model"` with `modelTopology.node`). Every error names the file, layer or weight to fix.
 */
import { BYTES_PER_ELEMENT } from "../../shared/backbone/model-json";
import { ApiError } from "../../shared/errors";
import type { LayerRecord, WeightSpec, WeightsManifestGroup } from "../../shared/backbone/types";
import { featureLayers } from "../../shared/catalog";
import type { BackboneSpec } from "../../shared/schemas";

export type ModelFormat = "layers-model" | "graph-model";

/** A `model.json` of either format, as read from the upload (shapes checked by `parseModelJson`). */
export interface ModelJson {
  format?: string;
  modelTopology: Record<string, any>;
  weightsManifest: WeightsManifestGroup[];
  [key: string]: unknown;
}

export interface ModelSummary {
  format: ModelFormat;
  /** Elements over all weights of the manifest. */
  paramCount: number;
  /** Bytes the weight files must hold in all (sum of `groupBytes`). */
  weightBytes: number;
  /** Expected bytes of each manifest group, in manifest order. */
  groupBytes: number[];
}

/** Bytes per stored element; a quantized weight is stored as its quantization dtype. `string` weights have no fixed size. */
/** How many layer names an error suggests. */
const CANDIDATES_SHOWN = 8;

const invalid = (message: string, details?: Record<string, unknown>) => new ApiError("model_json_invalid", message, details);
const isObject = (v: unknown): v is Record<string, any> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses and shape-checks `model.json`; 422 `model_json_invalid` naming what is missing. */
export function parseModelJson(bytes: Uint8Array, file: string): ModelJson {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch (err) {
    throw invalid(`${file} is not valid UTF-8 JSON (${err instanceof Error ? err.message : String(err)}). Upload the model.json the tfjs converter wrote.`, { file });
  }
  if (!isObject(parsed)) throw invalid(`${file} must be a JSON object with modelTopology and weightsManifest.`, { file });
  if (!isObject(parsed.modelTopology)) throw invalid(`${file} has no modelTopology object: is this a tfjs model.json (tensorflowjs_converter output)?`, { file, field: "modelTopology" });
  if (!Array.isArray(parsed.weightsManifest)) throw invalid(`${file} has no weightsManifest array: a tfjs model.json lists its weight files there.`, { file, field: "weightsManifest" });
  parsed.weightsManifest.forEach((group: unknown, g: number) => {
    const where = `weightsManifest[${g}]`;
    if (!isObject(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) throw invalid(`${file}: ${where} needs 'paths' and 'weights' arrays.`, { file, field: where });
    group.paths.forEach((p: unknown, i: number) => {
      if (typeof p !== "string" || p.length === 0) throw invalid(`${file}: ${where}.paths[${i}] must be a file name.`, { file, field: `${where}.paths[${i}]` });
    });
    group.weights.forEach((w: unknown, i: number) => {
      const field = `${where}.weights[${i}]`;
      if (!isObject(w) || typeof w.name !== "string" || typeof w.dtype !== "string" || !Array.isArray(w.shape) || !w.shape.every((d: unknown) => Number.isInteger(d) && (d as number) >= 0)) {
        throw invalid(`${file}: ${field} needs a name, a dtype and a shape of non-negative integers.`, { file, field });
      }
    });
  });
  return parsed as ModelJson;
}

/** The Keras model config (`{layers, input_layers?}`) of a layers topology, or null when there is none. */
function kerasConfig(topology: Record<string, any>): { layers: LayerRecord[]; input_layers?: unknown[]; sequential: boolean } | null {
  const root = isObject(topology.model_config) ? topology.model_config : topology;
  const className = root.class_name;
  const config = root.config;
  // Old Keras wrote a Sequential model's config as the bare list of layers.
  if (Array.isArray(config)) return { layers: config, sequential: true };
  if (isObject(config) && Array.isArray(config.layers)) return { layers: config.layers, input_layers: config.input_layers, sequential: className === "Sequential" };
  return null;
}

/** Which tfjs format this is; 422 `unsupported_model_format` for anything else (saved models, ONNX, Keras .h5 as JSON...). */
export function detectModelFormat(modelJson: ModelJson, file = "model.json"): ModelFormat {
  const format = modelJson.format;
  const hasKerasLayers = kerasConfig(modelJson.modelTopology) !== null;
  const hasNodes = Array.isArray(modelJson.modelTopology.node);
  if ((format === "layers-model" || format === undefined) && hasKerasLayers) return "layers-model";
  if ((format === "graph-model" || format === undefined) && hasNodes) return "graph-model";
  const what = format === undefined ? "no 'format' and a topology with neither Keras layers nor graph nodes" : format === "layers-model" ? "format 'layers-model' but no Keras layers in modelTopology" : format === "graph-model" ? "format 'graph-model' but no modelTopology.node list" : `format '${String(format)}'`;
  throw new ApiError("unsupported_model_format", `${file} has ${what}. Convert the model with tensorflowjs_converter to a tfjs layers model (--output_format tfjs_layers_model) or graph model (tfjs_graph_model).`, { file, format: format ?? null });
}

/** Bytes a weight occupies in the weight files. */
export function storedWeightBytes(weight: WeightSpec): number {
  const dtype = weight.quantization?.dtype ?? weight.dtype;
  const perElement = Object.hasOwn(BYTES_PER_ELEMENT, dtype) ? BYTES_PER_ELEMENT[dtype] : undefined; // "constructor" is no dtype
  if (perElement === undefined) {
    throw new ApiError("unsupported_model_format", `Weight '${weight.name}' has dtype '${dtype}', which has no fixed size; backbones support float32, int32, bool and uint8/uint16/float16 quantization.`, { weight: weight.name, dtype });
  }
  return elementCount(weight.shape) * perElement;
}

const elementCount = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Format, parameter count and expected bytes per manifest group. */
export function summarizeModel(modelJson: ModelJson, file = "model.json"): ModelSummary {
  const format = detectModelFormat(modelJson, file);
  let paramCount = 0;
  const groupBytes = modelJson.weightsManifest.map((group) => {
    let bytes = 0;
    for (const weight of group.weights) {
      bytes += storedWeightBytes(weight);
      paramCount += elementCount(weight.shape);
    }
    return bytes;
  });
  return { format, paramCount, weightBytes: groupBytes.reduce((a, b) => a + b, 0), groupBytes };
}

/** 422 `weight_size_mismatch` unless the files of group `index` hold exactly the bytes its weights need. */
export function checkGroupBytes(modelJson: ModelJson, summary: ModelSummary, index: number, actualBytes: number): void {
  const expected = summary.groupBytes[index];
  if (actualBytes === expected) return;
  const group = modelJson.weightsManifest[index];
  throw new ApiError(
    "weight_size_mismatch",
    `The weight files ${group.paths.join(", ")} hold ${actualBytes} bytes, but weightsManifest[${index}] needs ${expected} (the sum over its ${group.weights.length} weights of the shape's element count × bytes per dtype). The files do not belong to this model.json or are truncated; export the model again.`,
    { group: index, paths: group.paths, expected_bytes: expected, actual_bytes: actualBytes },
  );
}

// ---------------------------------------------------------------- spec against topology

interface LayerInfo {
  name: string;
  className: string;
  /** Output rank including the batch dimension, or null when it cannot be told from the config. */
  rank: number | null;
}

const RANK_PRESERVING = new Set([
  "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "Softmax", "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
  "AlphaDropout", "BatchNormalization", "LayerNormalization", "Rescaling", "Normalization", "Add", "Subtract", "Multiply", "Average", "Maximum",
  "Minimum", "Concatenate", "Permute", "Masking",
]);
const SPATIAL_OUTPUT = new Set([
  "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "MaxPooling2D", "AveragePooling2D", "ZeroPadding2D", "Cropping2D", "UpSampling2D",
]);

function layerName(layer: LayerRecord): string {
  return (layer.name ?? layer.config?.name ?? "") as string;
}

/** Names of the layers a Keras 2 layer record reads (`inbound_nodes: [[[name, node, tensor, kwargs], ...]]`). */
function inboundNames(layer: LayerRecord): string[] | null {
  const first = layer.inbound_nodes?.[0];
  if (!Array.isArray(first)) return null;
  const names = first.map((entry) => (Array.isArray(entry) && typeof entry[0] === "string" ? entry[0] : null));
  return names.every((n): n is string => n !== null) ? names : null;
}

function batchInputShape(layer: LayerRecord | undefined): (number | null)[] | null {
  const config = layer?.config ?? {};
  const shape = config.batch_input_shape ?? config.batchInputShape ?? config.batch_shape;
  return Array.isArray(shape) ? (shape as (number | null)[]) : null;
}

/** Each top-level layer with its output rank, inferred best-effort from class names (unknown layers give null). */
function layerInfos(layers: LayerRecord[], sequential: boolean): LayerInfo[] {
  const rankOf = new Map<string, number | null>();
  return layers.map((layer, i) => {
    const name = layerName(layer);
    const cls = layer.class_name;
    const inputs = sequential ? (i === 0 ? [] : [layerName(layers[i - 1])]) : inboundNames(layer);
    const inputRanks = inputs?.map((n) => rankOf.get(n) ?? null) ?? [];
    const shape = batchInputShape(layer);
    // A Sequential model's first layer may carry the input shape itself.
    const firstShape = sequential && i === 0 && cls !== "InputLayer" && shape ? shape.length : null;
    const inputRank = firstShape ?? (inputs && inputs.length > 0 && inputRanks.every((r) => r !== null) ? (inputRanks[0] as number) : null);
    let rank: number | null = null;
    const config = layer.config ?? {};
    if (cls === "InputLayer") rank = shape ? shape.length : null;
    else if (SPATIAL_OUTPUT.has(cls)) rank = 4;
    else if (cls === "GlobalAveragePooling2D" || cls === "GlobalMaxPooling2D") rank = config.keepdims === true ? 4 : 2;
    else if (cls === "Flatten") rank = 2;
    else if (cls === "Reshape") rank = Array.isArray(config.target_shape) ? config.target_shape.length + 1 : null;
    else if (cls === "Dense" || RANK_PRESERVING.has(cls)) rank = inputRank;
    rankOf.set(name, rank);
    return { name, className: cls, rank };
  });
}

/** The model's image input shape `[batch, H, W, C]` as declared (null entries are free), or null when unknown. */
function layersInputShape(config: NonNullable<ReturnType<typeof kerasConfig>>): (number | null)[] | null {
  const layers = config.layers;
  const inputName = Array.isArray(config.input_layers?.[0]) ? (config.input_layers![0] as unknown[])[0] : undefined;
  const input = layers.find((l) => l.class_name === "InputLayer" && (inputName === undefined || layerName(l) === inputName)) ?? (config.sequential ? layers[0] : undefined);
  return batchInputShape(input);
}

function graphInputShape(nodes: Array<Record<string, any>>): (number | null)[] | null {
  const placeholders = nodes.filter((n) => n?.op === "Placeholder");
  if (placeholders.length !== 1) return null;
  const dims = placeholders[0].attr?.shape?.shape?.dim;
  if (!Array.isArray(dims)) return null;
  return dims.map((d: { size?: string | number }) => {
    const n = Number(d?.size ?? -1);
    return Number.isInteger(n) && n > 0 ? n : null;
  });
}

function checkInputShape(shape: (number | null)[] | null, spec: BackboneSpec, file: string): void {
  if (!shape) return;
  if (shape.length !== 4) {
    throw new ApiError("unsupported_input_shape", `The model's input has shape [${shape.map((d) => d ?? "null").join(", ")}]; a backbone takes images, [batch, height, width, 3].`, { file, model_input_shape: shape });
  }
  const [, height, width, channels] = shape;
  if (channels !== null && channels !== 3) {
    throw new ApiError("unsupported_input_shape", `The model's input has ${channels} channels; a backbone takes RGB images, [batch, height, width, 3].`, { file, model_input_shape: shape });
  }
  if ((height !== null && height !== spec.input_size[0]) || (width !== null && width !== spec.input_size[1])) {
    const fixed: [number, number] = [height ?? spec.input_size[0], width ?? spec.input_size[1]];
    throw new ApiError(
      "input_size_mismatch",
      `The model's input is ${height ?? "any"}x${width ?? "any"} (height x width) but spec.input_size is ${spec.input_size[0]}x${spec.input_size[1]}. Set "input_size": [${fixed[0]}, ${fixed[1]}].`,
      { file, model_input_shape: shape, input_size: spec.input_size },
    );
  }
}

function notFoundError(missing: string[], candidates: string[], kind: "layer" | "node") {
  const list = candidates.map((c) => `'${c}'`).join(", ");
  return new ApiError(
    "feature_layer_not_found",
    `The model has no ${kind} named ${missing.map((m) => `'${m}'`).join(", ")}. Set spec.feature_layer to a ${kind} of the model; candidates near the end of the network: ${list || "(none)"}.`,
    { feature_layer: missing, candidates },
  );
}

/**
 * Checks the spec against the model: feature layers exist (and, for layers models, have a 4-D output when that can
 * be told), and the input's fixed height/width match `spec.input_size`. Throws 422 with the names to use instead.
 */
export function checkSpecAgainstModel(modelJson: ModelJson, format: ModelFormat, spec: BackboneSpec, file = "model.json"): void {
  const wanted = featureLayers(spec);
  if (format === "graph-model") {
    const nodes = modelJson.modelTopology.node as Array<Record<string, any>>;
    const names = new Set(nodes.map((n) => n?.name));
    const missing = wanted.filter((w) => !names.has(w));
    if (missing.length > 0) {
      const candidates = nodes.filter((n) => n?.op !== "Const" && n?.op !== "Placeholder").map((n) => String(n.name)).slice(-CANDIDATES_SHOWN);
      throw notFoundError(missing, candidates, "node");
    }
    checkInputShape(graphInputShape(nodes), spec, file);
    return;
  }
  const config = kerasConfig(modelJson.modelTopology)!;
  const infos = layerInfos(config.layers, config.sequential);
  const byName = new Map(infos.map((info) => [info.name, info]));
  const spatialNearEnd = () => {
    const spatial = infos.filter((info) => info.rank === 4 && info.className !== "InputLayer");
    return (spatial.length > 0 ? spatial : infos.filter((info) => info.className !== "InputLayer")).slice(-CANDIDATES_SHOWN).map((info) => info.name);
  };
  const missing = wanted.filter((w) => !byName.has(w));
  if (missing.length > 0) throw notFoundError(missing, spatialNearEnd(), "layer");
  for (const name of wanted) {
    const info = byName.get(name)!;
    if (info.rank !== null && info.rank !== 4) {
      throw new ApiError(
        "feature_layer_not_spatial",
        `Layer '${name}' (${info.className}) outputs a ${info.rank}-D tensor; a feature layer must output [batch, height, width, channels] so it can be pooled. Pick an earlier layer: ${spatialNearEnd().map((c) => `'${c}'`).join(", ")}.`,
        { feature_layer: name, class_name: info.className, rank: info.rank, candidates: spatialNearEnd() },
      );
    }
  }
  checkInputShape(layersInputShape(config), spec, file);
}

/** The stored form of `model.json`: one manifest group whose single file is `weights.bin`, weights in the original order. */
export function withSingleWeightsFile(modelJson: ModelJson): ModelJson {
  return { ...modelJson, weightsManifest: [{ paths: ["weights.bin"], weights: modelJson.weightsManifest.flatMap((group) => group.weights) }] };
}
