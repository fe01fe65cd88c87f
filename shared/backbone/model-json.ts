/**
 * The one reader of a tfjs `model.json`, for the Worker's upload checks, the edge's fused executor, the runner's
 * engines and ONNX converter alike: `readModelJson` gives the format, the Keras layers (class, config, inbound names)
 * or graph nodes (op), the declared input shape and every weight with its stored dtype, bytes and offset. Around it,
 * plain-data helpers: the image input's `[H, W, C]`, a feature spec checked against the model, a layers graph cut down
 * to what the feature layers need, weight files joined and decoded. No tfjs import: the Worker can validate a spec
 * or an upload without loading a backend.
 */
import type { FeatureSpec, GraphNodeRecord, LayerRecord, LayersModelJson, WeightSpec, WeightsManifestGroup } from "./types";
import { concatBytes } from "../bytes";

/**
 * Bytes per stored element of each weight dtype a backbone may use (the stored dtype: a quantized weight's
 * `quantization.dtype`). The one table for the Worker's upload checks and the weight decoders of the runner and the
 * edge: a dtype missing here cannot be decoded, so it is refused at upload.
 */
export const BYTES_PER_ELEMENT: Readonly<Record<string, number>> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/** Bytes per stored element of `dtype`, or undefined when it has no fixed size (`string`) or is unknown. Own keys only. */
export function bytesPerElement(dtype: string): number | undefined {
  return Object.hasOwn(BYTES_PER_ELEMENT, dtype) ? BYTES_PER_ELEMENT[dtype] : undefined; // "constructor" is no dtype
}

// ---------------------------------------------------------------- the reader

export type ModelFormat = "layers-model" | "graph-model";

/**
 * Any tfjs `model.json` as plain data (an upload after `parseModelJson`, a stored backbone, a builtin): the reader
 * below accepts both formats and never assumes more than these fields.
 */
export interface ModelJsonLike {
  format?: unknown;
  modelTopology: Record<string, any>;
  weightsManifest: WeightsManifestGroup[];
}

/** One Keras layer of a layers model, as read from its record. */
export interface KerasLayer {
  name: string;
  /** Keras class, e.g. `Conv2D`. */
  className: string;
  config: Record<string, any>;
  /**
   * Names of the layers whose outputs its first call reads (`[]` for an input; the previous layer in a Sequential
   * model), or null when the record's `inbound_nodes` is not the Keras 2 `[[[name, node, tensor, kwargs], ...]]`.
   */
  inbound: string[] | null;
  /** How many times the model calls the layer (`inbound_nodes.length`); more than one is a shared layer. */
  calls: number;
  /** The `[batch, ...]` input shape the record declares (an InputLayer's, or a Sequential first layer's), else null. */
  batchInputShape: (number | null)[] | null;
  /** The record as written in model.json. */
  record: LayerRecord;
}

/** One weight of the manifest with where its bytes lie. */
export interface ManifestWeight {
  name: string;
  /** The dtype tfjs decodes to (`float32` for a quantized float weight). */
  dtype: string;
  /** The dtype as stored in the weight files: `quantization.dtype` when quantized. */
  storedDtype: string;
  shape: number[];
  /** Elements: the product of `shape`. */
  elements: number;
  /** Bytes in the weight files, or null when `storedDtype` has no fixed size (see `BYTES_PER_ELEMENT`). */
  bytes: number | null;
  /** Byte offset in `weightData` (the groups' files joined in manifest order); null after a weight of unknown size. */
  offset: number | null;
  /** Index of its manifest group. */
  group: number;
  quantization?: WeightSpec["quantization"];
  spec: WeightSpec;
}

/** What a `model.json` says, read once: its format, its graph, its weights and its declared input. */
export interface ModelTopology {
  format: ModelFormat;
  /** A layers model's layers in file order (empty for a graph model). */
  layers: KerasLayer[];
  /** A Keras Sequential model (layers read the previous layer; no inbound_nodes). */
  sequential: boolean;
  /** A graph model's GraphDef nodes in file order (empty for a layers model). */
  nodes: GraphNodeRecord[];
  /**
   * The image input as declared, `[batch, height, width, channels]` with null for a free axis (any rank as
   * written), or null when the model does not say: no InputLayer shape, or not exactly one Placeholder.
   */
  inputShape: (number | null)[] | null;
  /** Name of the layer or Placeholder that `inputShape` comes from, or null. */
  inputName: string | null;
  /** Every weight of the manifest in `weightData` order. */
  weights: ManifestWeight[];
}

const isObject = (v: unknown): v is Record<string, any> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The Keras model config of a layers topology, or null when there is none. */
function kerasConfig(topology: Record<string, any>): { layers: LayerRecord[]; inputLayers?: unknown[]; sequential: boolean; config: Record<string, any> | null } | null {
  const root = isObject(topology.model_config) ? topology.model_config : topology;
  const config = root.config;
  // Old Keras wrote a Sequential model's config as the bare list of layers.
  if (Array.isArray(config)) return { layers: config, sequential: true, config: null };
  if (isObject(config) && Array.isArray(config.layers)) return { layers: config.layers, inputLayers: config.input_layers, sequential: root.class_name === "Sequential", config };
  return null;
}

/**
 * The model's format, or null when it is neither: `layers-model` when `format` says so (or is absent) and the
 * topology has Keras layers; `graph-model` when `format` says so (or is absent) and the topology has a `node` list.
 * TF-Hub conversions by older converters carry no `format` at all.
 */
export function detectModelFormat(modelJson: ModelJsonLike): ModelFormat | null {
  const format = modelJson.format;
  if ((format === "layers-model" || format === undefined) && kerasConfig(modelJson.modelTopology) !== null) return "layers-model";
  if ((format === "graph-model" || format === undefined) && Array.isArray(modelJson.modelTopology?.node)) return "graph-model";
  return null;
}

/** Whether `modelJson` is a tfjs graph model (see `detectModelFormat`). */
export function isGraphModel(modelJson: ModelJsonLike): boolean {
  return detectModelFormat(modelJson) === "graph-model";
}

const layerName = (record: LayerRecord): string => (record.name ?? record.config?.name ?? "") as string;

/** The Keras 2 first-call inbound names of a record, or null when `inbound_nodes` is not in that form. */
function firstCallInbound(record: LayerRecord): string[] | null {
  const first = record.inbound_nodes?.[0];
  if (first === undefined && Array.isArray(record.inbound_nodes)) return [];
  if (!Array.isArray(first)) return null;
  const names = first.map((entry) => (Array.isArray(entry) && typeof entry[0] === "string" ? entry[0] : null));
  return names.every((n): n is string => n !== null) ? names : null;
}

/** A layer record's declared batch input shape (`batch_input_shape`, tfjs' `batchInputShape`, Keras 3's `batch_shape`). */
function batchInputShape(record: LayerRecord | undefined): (number | null)[] | null {
  const config = (record?.config ?? {}) as Record<string, unknown>;
  const shape = config.batch_input_shape ?? config.batchInputShape ?? config.batch_shape;
  return Array.isArray(shape) ? (shape as (number | null)[]) : null;
}

/** Every weight of the manifest with its stored dtype, size and offset in `weightData`. */
export function readWeightsManifest(modelJson: Pick<ModelJsonLike, "weightsManifest">): ManifestWeight[] {
  const out: ManifestWeight[] = [];
  let offset: number | null = 0;
  modelJson.weightsManifest.forEach((group, index) => {
    for (const spec of group.weights) {
      const storedDtype = spec.quantization?.dtype ?? spec.dtype;
      const elements = spec.shape.reduce((a, b) => a * b, 1);
      const perElement = bytesPerElement(storedDtype);
      const bytes = perElement === undefined ? null : elements * perElement;
      out.push({ name: spec.name, dtype: spec.dtype, storedDtype, shape: spec.shape, elements, bytes, offset, group: index, quantization: spec.quantization, spec });
      offset = offset === null || bytes === null ? null : offset + bytes;
    }
  });
  return out;
}

/**
 * Reads `modelJson` once: format, layers (with inbound names) or graph nodes, declared input shape, weights.
 * @throws Error when the format is neither a tfjs layers nor graph model (the Worker's upload check refuses those).
 */
export function readModelJson(modelJson: ModelJsonLike): ModelTopology {
  const format = detectModelFormat(modelJson);
  if (format === null) throw new Error(`model.json is neither a tfjs layers model nor a tfjs graph model (format ${JSON.stringify(modelJson.format ?? null)})`);
  const weights = readWeightsManifest(modelJson);
  if (format === "graph-model") {
    const nodes = modelJson.modelTopology.node as GraphNodeRecord[];
    const placeholders = nodes.filter((n) => n?.op === "Placeholder");
    const input = placeholders.length === 1 ? placeholders[0]! : null;
    return { format, layers: [], sequential: false, nodes, inputShape: input && placeholderShape(input), inputName: input?.name ?? null, weights };
  }
  const keras = kerasConfig(modelJson.modelTopology)!;
  const layers = keras.layers.map((record, i): KerasLayer => ({
    name: layerName(record),
    className: record.class_name,
    config: (record.config ?? {}) as Record<string, any>,
    inbound: keras.sequential ? (i === 0 ? [] : [layerName(keras.layers[i - 1]!)]) : firstCallInbound(record),
    calls: Array.isArray(record.inbound_nodes) ? record.inbound_nodes.length : keras.sequential ? 1 : 0,
    batchInputShape: batchInputShape(record),
    record,
  }));
  // The image input: the InputLayer that input_layers names first (else the first InputLayer; a Sequential model's
  // first layer may carry the shape itself).
  const inputName = Array.isArray(keras.inputLayers?.[0]) ? (keras.inputLayers![0] as unknown[])[0] : undefined;
  const input = keras.layers.find((l) => l.class_name === "InputLayer" && (inputName === undefined || layerName(l) === inputName)) ?? (keras.sequential ? keras.layers[0] : undefined);
  return { format, layers, sequential: keras.sequential, nodes: [], inputShape: batchInputShape(input), inputName: input ? layerName(input) : null, weights };
}

/** A Placeholder's `shape` attribute, free dims (-1) as null; `[null, null, null, null]` for an unknown rank. */
function placeholderShape(node: GraphNodeRecord): (number | null)[] | null {
  const shapeAttr = (node.attr?.shape as { shape?: { dim?: Array<{ size?: string | number }>; unknownRank?: boolean } } | undefined)?.shape;
  if (shapeAttr?.dim !== undefined && !Array.isArray(shapeAttr.dim)) return null;
  return shapeAttr?.dim?.map((dim) => {
    const size = Number(dim?.size ?? -1);
    return Number.isInteger(size) && size > 0 ? size : null;
  }) ?? [null, null, null, null];
}

type FunctionalConfig = { name?: string; layers: LayerRecord[]; input_layers?: unknown[]; output_layers?: unknown[] };

/**
 * The functional Keras config of a layers model. A Sequential model is rewritten as the chain it is (its records have
 * no inbound_nodes, which the pruning, the lowering and tfjs' functional loader read): an InputLayer named
 * `<first layer>_input` from the first layer's declared input shape (as tfjs names the one it makes), unless the
 * first layer is one already, then each layer reading the one before it, the last one the output.
 */
function modelConfig(modelJson: ModelJsonLike): FunctionalConfig {
  const keras = kerasConfig(modelJson.modelTopology);
  if (!keras || (!keras.sequential && !keras.config)) {
    throw new Error("model.json has no modelTopology.model_config.config.layers (is this a tfjs *layers* model?)");
  }
  if (!keras.sequential) return keras.config as FunctionalConfig;
  const layers: LayerRecord[] = [];
  const first = keras.layers[0];
  if (first && first.class_name !== "InputLayer") {
    const name = `${layerName(first)}_input`;
    layers.push({ class_name: "InputLayer", name, config: { name, batch_input_shape: batchInputShape(first), dtype: first.config?.dtype ?? "float32", sparse: false }, inbound_nodes: [] });
  }
  for (const record of keras.layers) {
    const previous = layers.at(-1);
    layers.push({ ...record, name: layerName(record), inbound_nodes: previous ? [[[previous.name, 0, 0, {}]]] : [] });
  }
  const ends = (layer: LayerRecord | undefined) => (layer ? [[layer.name, 0, 0]] : []);
  return { ...keras.config, name: (keras.config?.name as string | undefined) ?? "sequential", layers, input_layers: ends(layers[0]), output_layers: ends(layers.at(-1)) };
}

/** The Keras layer records of a layers model in file order, as a functional model's (a Sequential one's chained). */
export function getLayerRecords(modelJson: ModelJsonLike): LayerRecord[] {
  return modelConfig(modelJson).layers;
}

/** The GraphDef nodes of a graph model, in file order. */
export function getGraphNodes(modelJson: ModelJsonLike): GraphNodeRecord[] {
  const nodes = modelJson.modelTopology?.node;
  if (!Array.isArray(nodes)) throw new Error("model.json has no modelTopology.node list (is this a tfjs *graph* model?)");
  return nodes as GraphNodeRecord[];
}

/** The graph's image input: its one Placeholder node (a backbone takes exactly one input). */
export function getGraphInputNode(modelJson: ModelJsonLike): GraphNodeRecord {
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
 *
 * For a layers model `inputSize` also wins over a declared height and width: a convolutional trunk cut before its
 * classifier runs at any input size, and the builtin MobileNet v1 0.75, published for 224x224, is served at the
 * size its catalog spec chose by cross-validation (shared/catalog.ts). A user's upload is refused unless its spec's
 * `input_size` equals what its model declares (workers/services/model-validation.ts), so there the two agree. A
 * graph model keeps its declared size: its graph may hold shape constants.
 */
export function getInputShape(modelJson: ModelJsonLike, inputSize?: [number, number]): [number, number, number] {
  if (isGraphModel(modelJson)) {
    const input = getGraphInputNode(modelJson);
    return resolveImageShape(placeholderShape(input) ?? [], inputSize, `graph input ${JSON.stringify(input.name)}`);
  }
  const { inputShape, inputName } = readModelJson(modelJson);
  if (!inputShape || inputShape.length !== 4) {
    throw new Error("model.json needs one InputLayer with batch_input_shape [null, height, width, channels]");
  }
  const resized = inputSize ? [inputShape[0] ?? null, inputSize[0], inputSize[1], inputShape[3] ?? null] : inputShape;
  return resolveImageShape(resized, inputSize, `InputLayer ${JSON.stringify(inputName)}`);
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
export function getWeightSpecs(modelJson: Pick<ModelJsonLike, "weightsManifest">): WeightSpec[] {
  return modelJson.weightsManifest.flatMap((group) => group.weights);
}

/** Number of bytes `weightData` must have for this manifest. @throws Error naming a weight whose dtype has no size. */
export function expectedWeightBytes(modelJson: Pick<ModelJsonLike, "weightsManifest">): number {
  let total = 0;
  for (const weight of readWeightsManifest(modelJson)) {
    if (weight.bytes === null) throw new Error(`weight ${weight.name}: unsupported dtype ${weight.storedDtype}`);
    total += weight.bytes;
  }
  return total;
}

/** The stored form of a `model.json`: one manifest group whose single file is `weights.bin`, weights in the original order. */
export function withSingleWeightsFile<T extends Pick<ModelJsonLike, "weightsManifest">>(modelJson: T): T {
  return { ...modelJson, weightsManifest: [{ paths: ["weights.bin"], weights: getWeightSpecs(modelJson) }] };
}

/** Joins weight files (in manifest path order) into one buffer, the `weightData` of a bundle. */
export function concatWeightBuffers(buffers: ArrayBuffer[]): ArrayBuffer {
  return concatBytes(buffers.map((buffer) => new Uint8Array(buffer))).buffer as ArrayBuffer;
}

/**
 * Throws an Error that names the problem when `spec` cannot be built on this model: unknown layer (or, in a graph
 * model, unknown node), duplicate, empty list, unknown pooling.
 */
export function validateFeatureSpec(modelJson: ModelJsonLike, spec: FeatureSpec): void {
  if (!Array.isArray(spec.feature_layers) || spec.feature_layers.length === 0) {
    throw new Error("feature spec: feature_layers must name at least one layer");
  }
  if (spec.pooling !== "avg" && spec.pooling !== "avg+max" && spec.pooling !== "none") {
    throw new Error(`feature spec: pooling must be "avg", "avg+max" or "none", got ${JSON.stringify(spec.pooling)}`);
  }
  if (spec.pooling === "none" && (spec.feature_layers.length !== 1 || spec.flip_average)) throw new Error("feature spec: pooling \"none\" takes one feature layer and no flip averaging");
  // A graph model's feature "layers" are node names (the Worker checks the same at import).
  const graph = isGraphModel(modelJson);
  const kind = graph ? "node" : "layer";
  const topology = readModelJson(modelJson);
  const names = new Set(graph ? topology.nodes.map((node) => node.name) : topology.layers.map((layer) => layer.name));
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
export function pruneToFeatureLayers<T extends ModelJsonLike>(modelJson: T, featureLayers: string[], inputShape?: [number, number, number]): T {
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
  // With `inputShape` (getInputShape's answer for the spec), the cut model declares it: tfjs builds layers for it.
  const keptLayers = layers
    .filter((layer) => keep.has(layer.name))
    .map((layer) => (inputShape && batchInputShape(layer) ? withBatchInputShape(layer, [null, ...inputShape]) : layer));
  const inputs = keptLayers.filter((layer) => layer.class_name === "InputLayer").map((layer) => [layer.name, 0, 0]);
  const config = {
    ...modelConfig(modelJson),
    layers: keptLayers,
    input_layers: inputs,
    output_layers: featureLayers.map((name) => [name, 0, 0]),
  };
  const topology = { ...modelJson.modelTopology };
  // A Sequential model, cut (and possibly with several outputs), loads as the functional model it now is.
  const functional = kerasConfig(topology)?.sequential ? { class_name: "Model" } : {};
  if (topology.model_config) topology.model_config = { ...topology.model_config, ...functional, config };
  else Object.assign(topology, functional, { config });
  return { ...modelJson, modelTopology: topology };
}

/** `layer` declaring `shape` under whichever key it declared its batch input shape. */
function withBatchInputShape(layer: LayerRecord, shape: (number | null)[]): LayerRecord {
  const config = { ...layer.config };
  for (const key of ["batch_input_shape", "batchInputShape", "batch_shape"]) if (key in config) config[key] = shape;
  return { ...layer, config };
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
export function decodeFloatWeights(modelJson: Pick<ModelJsonLike, "weightsManifest">, weightData: ArrayBuffer): Map<string, FloatWeight> {
  const out = new Map<string, FloatWeight>();
  for (const weight of readWeightsManifest(modelJson)) {
    if (weight.bytes === null || weight.offset === null) throw new Error(`weight ${weight.name}: unsupported dtype ${weight.storedDtype}`);
    if (weight.offset + weight.bytes > weightData.byteLength) throw new Error(`weight ${weight.name} runs past the end of weightData`);
    if (weight.dtype !== "float32") continue;
    out.set(weight.name, { shape: weight.shape, values: decodeFloatWeight(weight, weightData) });
  }
  return out;
}

/**
 * The float32 values of one float weight of `weightData`, dequantizing as tfjs' `io.decodeWeights` does
 * (`q * scale + min`, rounded to float32). uint8/uint16 quantization and plain float32 only.
 * @throws Error for another stored dtype (float16), a weight of unknown size or one past the end of `weightData`.
 */
export function decodeFloatWeight(weight: ManifestWeight, weightData: ArrayBuffer): Float32Array {
  const { offset, bytes, elements } = weight;
  if (offset === null || bytes === null) throw new Error(`weight ${weight.name}: unsupported dtype ${weight.storedDtype}`);
  if (offset + bytes > weightData.byteLength) throw new Error(`weight ${weight.name} runs past the end of weightData`);
  if (weight.storedDtype === "float32") return new Float32Array(weightData.slice(offset, offset + bytes));
  if (weight.storedDtype === "uint8" || weight.storedDtype === "uint16") {
    const raw = weight.storedDtype === "uint8" ? new Uint8Array(weightData, offset, elements) : new Uint16Array(weightData.slice(offset, offset + bytes));
    const { min = 0, scale = 1 } = weight.quantization ?? {};
    const values = new Float32Array(elements);
    for (let i = 0; i < elements; i++) values[i] = raw[i]! * scale + min;
    return values;
  }
  throw new Error(`weight ${weight.name}: ${weight.storedDtype} quantization is not supported here`);
}
