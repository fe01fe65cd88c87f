/**
 * Plain-data helpers over a tfjs `model.json`: tell layers from graph models, list layers (or graph nodes), read the
 * image input's shape, check a feature spec against them, cut a layers graph down to what the feature layers need,
 * and join weight files. No tfjs import: the Worker can validate a spec or an upload without loading a backend.
 */
import type { FeatureSpec, GraphNodeRecord, LayerRecord, LayersModelJson, WeightSpec } from "./types";
import { concatBytes } from "../bytes";

/** Bytes per element of each stored weight dtype (after quantization, if any). */
/**
 * Bytes per stored element of each weight dtype a backbone may use (the stored dtype: a quantized weight's
 * `quantization.dtype`). The one table for the Worker's upload checks and the weight decoders of the runner and the
 * edge: a dtype missing here cannot be decoded, so it is refused at upload.
 */
export const BYTES_PER_ELEMENT: Readonly<Record<string, number>> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

function modelConfig(modelJson: LayersModelJson) {
  const topology = modelJson.modelTopology;
  const config = topology.model_config?.config ?? topology.config;
  if (!config || !Array.isArray(config.layers)) {
    throw new Error("model.json has no modelTopology.model_config.config.layers (is this a tfjs *layers* model?)");
  }
  return config;
}

/** The Keras layer records of a functional model, in file order. */
export function getLayerRecords(modelJson: LayersModelJson): LayerRecord[] {
  return modelConfig(modelJson).layers;
}

/**
 * Whether `modelJson` is a tfjs graph model: `format: "graph-model"`, or no layers format and a `modelTopology.node`
 * list (TF-Hub conversions by older converters carry no `format` at all). Same rule as the Worker's upload check.
 */
export function isGraphModel(modelJson: LayersModelJson): boolean {
  if (modelJson.format === "graph-model") return true;
  return modelJson.format !== "layers-model" && Array.isArray(modelJson.modelTopology?.node);
}

/** The GraphDef nodes of a graph model, in file order. */
export function getGraphNodes(modelJson: LayersModelJson): GraphNodeRecord[] {
  const nodes = modelJson.modelTopology?.node;
  if (!Array.isArray(nodes)) throw new Error("model.json has no modelTopology.node list (is this a tfjs *graph* model?)");
  return nodes as GraphNodeRecord[];
}

/** The graph's image input: its one Placeholder node (a backbone takes exactly one input). */
export function getGraphInputNode(modelJson: LayersModelJson): GraphNodeRecord {
  const placeholders = getGraphNodes(modelJson).filter((node) => node.op === "Placeholder");
  if (placeholders.length !== 1) {
    const names = placeholders.map((node) => JSON.stringify(node.name)).join(", ");
    throw new Error(`graph model has ${placeholders.length} Placeholder inputs${names ? ` (${names})` : ""}; a backbone takes exactly one image input`);
  }
  return placeholders[0]!;
}

/**
 * `[height, width, channels]` of the model's single image input: a layers model's InputLayer `batch_input_shape`, a
 * graph model's Placeholder `shape` attribute. A free height or width (null, or -1 in a graph) is taken from
 * `inputSize` (the backbone spec's `input_size`); a free channel count means RGB, 3.
 */
export function getInputShape(modelJson: LayersModelJson, inputSize?: [number, number]): [number, number, number] {
  if (isGraphModel(modelJson)) {
    const input = getGraphInputNode(modelJson);
    const shapeAttr = (input.attr?.shape as { shape?: { dim?: Array<{ size?: string | number }>; unknownRank?: boolean } } | undefined)?.shape;
    // No dims at all (unknown rank) leaves every axis free; otherwise each dim is a number or "-1" (free).
    const declared = shapeAttr?.dim?.map((dim) => {
      const size = Number(dim?.size ?? -1);
      return Number.isInteger(size) && size > 0 ? size : null;
    }) ?? [null, null, null, null];
    return resolveImageShape(declared, inputSize, `graph input ${JSON.stringify(input.name)}`);
  }
  const input = getLayerRecords(modelJson).find((layer) => layer.class_name === "InputLayer");
  const shape = (input?.config.batch_input_shape ?? input?.config.batchInputShape) as (number | null)[] | undefined;
  if (!shape || shape.length !== 4) {
    throw new Error("model.json needs one InputLayer with batch_input_shape [null, height, width, channels]");
  }
  return resolveImageShape(shape, inputSize, `InputLayer ${JSON.stringify(input!.name)}`);
}

/** `[H, W, C]` from a declared `[batch, H, W, C]` with free axes as null. */
function resolveImageShape(declared: (number | null)[], inputSize: [number, number] | undefined, what: string): [number, number, number] {
  if (declared.length !== 4) {
    throw new Error(`${what} has shape [${declared.map((d) => d ?? -1).join(", ")}]; a backbone takes images, [batch, height, width, channels]`);
  }
  const height = declared[1] ?? inputSize?.[0];
  const width = declared[2] ?? inputSize?.[1];
  if (height === undefined || width === undefined) {
    throw new Error(`${what} leaves its height or width free; pass the backbone spec's input_size (feature spec input_size)`);
  }
  return [height, width, declared[3] ?? 3];
}

/** All weight specs of the manifest, flattened in the order their bytes appear in `weightData`. */
export function getWeightSpecs(modelJson: LayersModelJson): WeightSpec[] {
  return modelJson.weightsManifest.flatMap((group) => group.weights);
}

/** Number of bytes `weightData` must have for this manifest. */
export function expectedWeightBytes(modelJson: LayersModelJson): number {
  let total = 0;
  for (const spec of getWeightSpecs(modelJson)) {
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    const perElement = BYTES_PER_ELEMENT[dtype];
    if (perElement === undefined) throw new Error(`weight ${spec.name}: unsupported dtype ${dtype}`);
    total += spec.shape.reduce((a, b) => a * b, 1) * perElement;
  }
  return total;
}

/** Joins weight files (in manifest path order) into one buffer, the `weightData` of a bundle. */
export function concatWeightBuffers(buffers: ArrayBuffer[]): ArrayBuffer {
  return concatBytes(buffers.map((buffer) => new Uint8Array(buffer))).buffer as ArrayBuffer;
}

/**
 * Throws an Error that names the problem when `spec` cannot be built on this model: unknown layer (or, in a graph
 * model, unknown node), duplicate, empty list, unknown pooling.
 */
export function validateFeatureSpec(modelJson: LayersModelJson, spec: FeatureSpec): void {
  if (!Array.isArray(spec.feature_layers) || spec.feature_layers.length === 0) {
    throw new Error("feature spec: feature_layers must name at least one layer");
  }
  if (spec.pooling !== "avg" && spec.pooling !== "avg+max") {
    throw new Error(`feature spec: pooling must be "avg" or "avg+max", got ${JSON.stringify(spec.pooling)}`);
  }
  // A graph model's feature "layers" are node names (the Worker checks the same at import).
  const graph = isGraphModel(modelJson);
  const kind = graph ? "node" : "layer";
  const names = new Set(graph ? getGraphNodes(modelJson).map((node) => node.name) : getLayerRecords(modelJson).map((layer) => layer.name));
  const seen = new Set<string>();
  for (const name of spec.feature_layers) {
    if (!names.has(name)) throw new Error(`feature spec: model has no ${kind} named ${JSON.stringify(name)}`);
    if (seen.has(name)) throw new Error(`feature spec: ${kind} ${JSON.stringify(name)} is listed twice`);
    seen.add(name);
  }
}

/** Names of the layers whose outputs `layer` reads. */
export function inboundLayerNames(layer: LayerRecord): string[] {
  if (layer.inbound_nodes.length > 1) {
    throw new Error(`layer ${layer.name} is called ${layer.inbound_nodes.length} times; shared layers are not supported`);
  }
  return (layer.inbound_nodes[0] ?? []).map((entry) => entry[0]);
}

/**
 * A copy of `modelJson` that keeps only the layers the feature layers depend on, with the feature layers as the
 * model's outputs (the classifier head and everything after the last feature layer are dropped). The weights
 * manifest is left as is (it still describes `weightData`); loaders skip the weights of dropped layers by name.
 */
export function pruneToFeatureLayers(modelJson: LayersModelJson, featureLayers: string[]): LayersModelJson {
  const layers = getLayerRecords(modelJson);
  const byName = new Map(layers.map((layer) => [layer.name, layer]));
  const keep = new Set<string>();
  const stack = [...featureLayers];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (keep.has(name)) continue;
    const layer = byName.get(name);
    if (!layer) throw new Error(`model has no layer named ${JSON.stringify(name)}`);
    keep.add(name);
    stack.push(...inboundLayerNames(layer));
  }
  const keptLayers = layers.filter((layer) => keep.has(layer.name));
  const inputs = keptLayers.filter((layer) => layer.class_name === "InputLayer").map((layer) => [layer.name, 0, 0]);
  const config = {
    ...modelConfig(modelJson),
    layers: keptLayers,
    input_layers: inputs,
    output_layers: featureLayers.map((name) => [name, 0, 0]),
  };
  const topology = { ...modelJson.modelTopology };
  if (topology.model_config) topology.model_config = { ...topology.model_config, config };
  else topology.config = config;
  return { ...modelJson, modelTopology: topology };
}

/** A weight as plain data: shape and float32 values (dequantized like tfjs does: `v * scale + min`). */
export interface FloatWeight {
  shape: number[];
  values: Float32Array;
}

/**
 * Decodes every float32 weight of `weightData` without tfjs (uint8/uint16 quantization supported, float16 not).
 * Used by converters that need raw values; tfjs-based code should use `tf.io.decodeWeights`.
 */
export function decodeFloatWeights(modelJson: LayersModelJson, weightData: ArrayBuffer): Map<string, FloatWeight> {
  const out = new Map<string, FloatWeight>();
  let offset = 0;
  for (const spec of getWeightSpecs(modelJson)) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const stored = spec.quantization?.dtype ?? spec.dtype;
    const bytes = size * (BYTES_PER_ELEMENT[stored] ?? NaN);
    if (!Number.isFinite(bytes)) throw new Error(`weight ${spec.name}: unsupported dtype ${stored}`);
    if (offset + bytes > weightData.byteLength) throw new Error(`weight ${spec.name} runs past the end of weightData`);
    const slice = weightData.slice(offset, offset + bytes);
    offset += bytes;
    if (spec.dtype !== "float32") continue;
    let values: Float32Array;
    if (stored === "float32") values = new Float32Array(slice);
    else if (stored === "uint8" || stored === "uint16") {
      const raw = stored === "uint8" ? new Uint8Array(slice) : new Uint16Array(slice);
      const { min = 0, scale = 1 } = spec.quantization!;
      values = new Float32Array(raw.length);
      for (let i = 0; i < raw.length; i++) values[i] = raw[i]! * scale + min;
    } else throw new Error(`weight ${spec.name}: ${stored} quantization is not supported here`);
    out.set(spec.name, { shape: spec.shape, values });
  }
  return out;
}
