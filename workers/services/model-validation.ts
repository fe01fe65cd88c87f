/**
 * Checks a user's tfjs model before it becomes a backbone: plain data in, a summary or a 422 `ApiError` out. Nothing
 * here reads storage or the network, so both upload forms (zip, URL) share it and it can be unit-tested alone.
 *
 * Accepted: tfjs *layers* models (`format: "layers-model"`, or no format and a Keras topology) and tfjs *graph*
 * models (`format: "graph-model"` with `modelTopology.node`). Every error names the file, layer or weight to fix.
 */
import { detectModelFormat as readModelFormat, readModelJson, type KerasLayer, type ModelFormat } from "../../shared/backbone/model-json";
import { ApiError } from "../../shared/errors";
import type { WeightsManifestGroup } from "../../shared/backbone/types";
import { featureLayers } from "../../shared/catalog";
import type { BackboneSpec } from "../../shared/schemas";

export type { ModelFormat };
export { withSingleWeightsFile } from "../../shared/backbone/model-json";

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

/** Which tfjs format this is; 422 `unsupported_model_format` for anything else (saved models, ONNX, Keras .h5 as JSON...). */
export function detectModelFormat(modelJson: ModelJson, file = "model.json"): ModelFormat {
  const detected = readModelFormat(modelJson);
  if (detected) return detected;
  const format = modelJson.format;
  const what = format === undefined ? "no 'format' and a topology with neither Keras layers nor graph nodes" : format === "layers-model" ? "format 'layers-model' but no Keras layers in modelTopology" : format === "graph-model" ? "format 'graph-model' but no modelTopology.node list" : `format '${String(format)}'`;
  throw new ApiError("unsupported_model_format", `${file} has ${what}. Convert the model with tensorflowjs_converter to a tfjs layers model (--output_format tfjs_layers_model) or graph model (tfjs_graph_model).`, { file, format: format ?? null });
}

/** Format, parameter count and expected bytes per manifest group. */
export function summarizeModel(modelJson: ModelJson, file = "model.json"): ModelSummary {
  const format = detectModelFormat(modelJson, file);
  let paramCount = 0;
  const groupBytes = modelJson.weightsManifest.map(() => 0);
  for (const weight of readModelJson(modelJson).weights) {
    if (weight.bytes === null) {
      throw new ApiError("unsupported_model_format", `Weight '${weight.name}' has dtype '${weight.storedDtype}', which has no fixed size; backbones support float32, int32, bool and uint8/uint16/float16 quantization.`, { weight: weight.name, dtype: weight.storedDtype });
    }
    groupBytes[weight.group] += weight.bytes;
    paramCount += weight.elements;
  }
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

/** Each top-level layer with its output rank, inferred best-effort from class names (unknown layers give null). */
function layerInfos(layers: KerasLayer[], sequential: boolean): LayerInfo[] {
  const rankOf = new Map<string, number | null>();
  return layers.map((layer, i) => {
    const { name, className: cls, config, inbound: inputs } = layer;
    const inputRanks = inputs?.map((n) => rankOf.get(n) ?? null) ?? [];
    const shape = layer.batchInputShape;
    // A Sequential model's first layer may carry the input shape itself.
    const firstShape = sequential && i === 0 && cls !== "InputLayer" && shape ? shape.length : null;
    const inputRank = firstShape ?? (inputs && inputs.length > 0 && inputRanks.every((r) => r !== null) ? (inputRanks[0] as number) : null);
    let rank: number | null = null;
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
  if (spec.extra_input_sizes?.length) {
    // Feeding a model at sizes it does not declare is safe only for a trunk known to be fully convolutional.
    throw new ApiError("extra_input_sizes_builtin_only", `spec.extra_input_sizes is available on builtin backbones only (their trunks are known to run at any size). Remove it; "input_size" must be the size the model declares.`, { extra_input_sizes: spec.extra_input_sizes });
  }
  const wanted = featureLayers(spec);
  const topology = readModelJson(modelJson);
  if (format === "graph-model") {
    const nodes = topology.nodes;
    const names = new Set(nodes.map((n) => n?.name));
    const missing = wanted.filter((w) => !names.has(w));
    if (missing.length > 0) {
      const candidates = nodes.filter((n) => n?.op !== "Const" && n?.op !== "Placeholder").map((n) => String(n.name)).slice(-CANDIDATES_SHOWN);
      throw notFoundError(missing, candidates, "node");
    }
    checkInputShape(topology.inputShape, spec, file);
    return;
  }
  const infos = layerInfos(topology.layers, topology.sequential);
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
  checkInputShape(topology.inputShape, spec, file);
}
