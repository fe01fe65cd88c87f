/**
 * The one lowering of a backbone's Keras graph: a tfjs layers `model.json` cut at `spec.feature_layers` becomes a
 * short list of fused ops over numbered values, with folded float32 weights. Two small back ends run it: the edge's
 * fused tfjs executor (workers/inference/fused-backbone.ts) and the runner's ONNX emitter
 * (gpu-runner/src/engine/onnx/convert.ts), so both read the graph, fold batch norm, absorb padding and find weights
 * the same way. Both compute the embedding of `buildFeatureExtractor` (./feature-extractor.ts, tfjs-layers, what heads
 * are trained on) up to float32 rounding.
 *
 * What the lowering does, once for both:
 *   - layers are put in dependency order (Keras writes them so; this checks and repairs), Dropout and linear
 *     activations become aliases of their input;
 *   - a BatchNormalization that is the only reader of a linear conv is folded into it:
 *       inv = float32(1 / sqrt(float32(variance + epsilon)))   (tfjs' rsqrt, in float32)
 *       kernel' = float32(kernel * inv * gamma);   bias' = float32((bias - mean) * inv * gamma + beta)
 *   - a ReLU / ReLU6 that is then the only reader becomes the conv's fused activation (XNNPACK's output clamp at the
 *     edge, a Relu/Clip node after the Conv in ONNX);
 *   - a ZeroPadding2D whose only reader is a 'valid' conv becomes that conv's explicit padding (the edge runs it as
 *     TensorFlow's 'same' when it equals it, as in MobileNetV2's stride-2 blocks, else pads first);
 *   - weights are found by one rule (`LayerWeights`), decoded on request (only the kept layers' weights).
 * MobileNetV2 up to `block_13_expand_relu`: 120 layers become 40 fused convs, 8 adds; 2.4 MB of float32 weights.
 *
 * Anything outside the supported set raises `UnsupportedGraphError`, naming the layer: the edge then runs tfjs-layers,
 * the runner's `auto` engine another engine.
 */
import { decodeFloatWeight, getInputShape, getLayerRecords, inboundLayerNames, isGraphModel, pruneToFeatureLayers, readWeightsManifest, validateFeatureSpec, type ManifestWeight, type ModelJsonLike } from "./model-json";
import type { FeatureSpec, LayerRecord } from "./types";

/** The model uses something the lowering does not handle; the caller runs it another way. */
export class UnsupportedGraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedGraphError";
  }
}

/** `[height, width, channels]` of one image's value. */
export type Shape = [number, number, number];
/** Zero padding `[[top, bottom], [left, right]]`. */
export type Paddings = [[number, number], [number, number]];
/** What a conv can apply to its output in the same kernel. */
export type FusedActivation = "linear" | "relu" | "relu6";
/** A standalone activation: relu, relu6, or a clip to `[0, clip]` (Keras ReLU with another `max_value`). */
export type Activation = "relu" | "relu6" | { clip: number };

/** One op of the lowered graph. `input`, `inputs` and `out` are value ids (`LoweredBackbone.shapes` indexes them). */
export type LoweredOp =
  | {
      kind: "conv";
      /** The Keras layer of the conv (the folded batch norm and activation layers are in `LoweredBackbone.folded`). */
      layer: string;
      input: number;
      out: number;
      depthwise: boolean;
      /** tfjs layout, batch norm folded in: conv `[kh, kw, in, out]`, depthwise `[kh, kw, in, multiplier]`. */
      kernel: Float32Array;
      kernelShape: [number, number, number, number];
      /** Per output channel, or null when the conv has none and no batch norm was folded in. */
      bias: Float32Array | null;
      strides: [number, number];
      dilations: [number, number];
      /** TensorFlow's "same" (the odd pixel bottom/right), or explicit zero padding (all zeros: "valid"). */
      padding: "same" | Paddings;
      activation: FusedActivation;
    }
  | { kind: "pad"; layer: string; input: number; out: number; paddings: Paddings }
  | { kind: "batchNorm"; layer: string; input: number; out: number; mean: Float32Array; variance: Float32Array; gamma: Float32Array | null; beta: Float32Array | null; epsilon: number }
  | { kind: "activation"; layer: string; input: number; out: number; activation: Activation }
  | { kind: "add"; layer: string; inputs: number[]; out: number }
  | { kind: "concat"; layer: string; inputs: number[]; out: number }
  | { kind: "pool"; layer: string; input: number; out: number; max: boolean; size: [number, number]; strides: [number, number]; padding: "same" | "valid" };

export interface LoweredBackbone {
  /** `[H, W, C]` of one input image (value 0). */
  inputShape: Shape;
  /** Ops in execution order; every value is written once, by one op, before it is read. */
  ops: LoweredOp[];
  /** `[H, W, C]` of each value, by id; value 0 is the image. */
  shapes: Shape[];
  /** The feature layers in spec order: the value each names and its channels. */
  features: Array<{ layer: string; value: number; channels: number }>;
  /** Length of the embedding: channels of every feature layer, twice with avg+max pooling; h·w·c with pooling "none". */
  dim: number;
  /** Layers that became part of another op or an alias (batch norm and activations folded, pads absorbed, dropout). */
  folded: string[];
}

/** The image input's value id. */
export const INPUT_VALUE = 0;

/**
 * Lowers `modelJson` (a Keras functional layers model) cut at `spec.feature_layers`.
 *
 * Supported layers: InputLayer, Conv2D (one group) and DepthwiseConv2D (any depth multiplier), channels_last,
 * BatchNormalization (last axis), ReLU (no slope or threshold), Activation (relu, relu6, linear), ZeroPadding2D, Add,
 * Concatenate (last axis), MaxPooling2D, AveragePooling2D, Dropout. float32 and uint8/uint16-quantised weights.
 * `spec.input_size` gives the input's height and width where the model leaves them free. `spec.pooling` sets `dim`;
 * `flip_average` is the back end's to apply.
 * @throws UnsupportedGraphError for anything else; Error for a model.json that contradicts itself.
 */
export function lowerBackbone(modelJson: ModelJsonLike, weightData: ArrayBuffer, spec: FeatureSpec): LoweredBackbone {
  if (isGraphModel(modelJson)) throw new UnsupportedGraphError("a graph model (only layers models are lowered)");
  validateFeatureSpec(modelJson, spec);
  const inputShape = getInputShape(modelJson, spec.input_size);
  const records = topologicalOrder(getLayerRecords(pruneToFeatureLayers(modelJson, spec.feature_layers)));
  const byName = new Map(records.map((r) => [r.name, r]));
  const consumers = new Map<string, string[]>();
  for (const record of records) for (const input of inboundLayerNames(record)) consumers.set(input, [...(consumers.get(input) ?? []), record.name]);
  const features = new Set(spec.feature_layers);
  /** The one layer reading `name`, when `name` is not a feature layer (its value must then exist on its own). */
  const soleConsumer = (name: string): LayerRecord | null => {
    const readers = consumers.get(name) ?? [];
    return !features.has(name) && readers.length === 1 ? byName.get(readers[0]!)! : null;
  };
  const weights = new LayerWeights(modelJson, weightData);

  const ops: LoweredOp[] = [];
  const shapes: Shape[] = [inputShape];
  const valueOf = new Map<string, number>(); // layer name -> value holding its output
  const folded: string[] = [];
  /** ZeroPadding2D layers whose only reader, a 'valid' conv, takes their padding: layer -> (input layer, padding). */
  const absorbedPads = new Map<string, { input: string; paddings: Paddings }>();
  const newValue = (shape: Shape) => shapes.push(shape) - 1;
  const value = (name: string) => {
    const found = valueOf.get(name);
    if (found === undefined) throw new Error(`lowering: layer ${name} is read before it is computed`);
    return found;
  };
  const alias = (name: string, of: string) => {
    valueOf.set(name, value(of));
    folded.push(name);
  };

  for (const record of records) {
    if (valueOf.has(record.name)) continue; // folded into an earlier conv
    const config = record.config as Record<string, any>;
    const inbound = inboundLayerNames(record);
    const first = inbound[0]!;
    checkChannelsLast(record);
    switch (record.class_name) {
      case "InputLayer":
        valueOf.set(record.name, INPUT_VALUE);
        break;
      case "ZeroPadding2D": {
        const paddings = normalisePadding(config.padding, record.name);
        const reader = soleConsumer(record.name);
        if (reader && (reader.class_name === "Conv2D" || reader.class_name === "DepthwiseConv2D") && reader.config.padding === "valid") {
          absorbedPads.set(record.name, { input: first, paddings });
          folded.push(record.name);
          break;
        }
        const [h, w, c] = shapes[value(first)]!;
        const out = newValue([h + paddings[0][0] + paddings[0][1], w + paddings[1][0] + paddings[1][1], c]);
        ops.push({ kind: "pad", layer: record.name, input: value(first), out, paddings });
        valueOf.set(record.name, out);
        break;
      }
      case "Conv2D":
      case "DepthwiseConv2D": {
        const depthwise = record.class_name === "DepthwiseConv2D";
        if (!depthwise && (config.groups ?? 1) !== 1) throw new UnsupportedGraphError(`${record.name}: grouped convolution`);
        const kernelSize = pair(config.kernel_size, record.name);
        const strides = pair(config.strides ?? 1, record.name);
        const dilations = pair(config.dilation_rate ?? 1, record.name);
        if (config.padding !== "same" && config.padding !== "valid") throw new UnsupportedGraphError(`${record.name}: padding '${config.padding}'`);
        let activation = fusableActivation(config.activation);
        if (!activation) throw new UnsupportedGraphError(`${record.name}: activation '${config.activation}'`);

        const absorbed = absorbedPads.get(first);
        const input = value(absorbed ? absorbed.input : first);
        const padding: "same" | Paddings = config.padding === "same" ? "same" : absorbed?.paddings ?? [[0, 0], [0, 0]];
        const [inH, inW, inC] = shapes[input]!;
        const kernel = weights.take(record.name, depthwise ? "depthwise_kernel" : "kernel");
        const kernelShape = kernel.shape as [number, number, number, number];
        if (kernelShape.length !== 4 || kernelShape[0] !== kernelSize[0] || kernelShape[1] !== kernelSize[1] || kernelShape[2] !== inC) {
          throw new Error(`${record.name}: kernel of shape [${kernelShape.join(", ")}] for a ${kernelSize.join("x")} kernel over ${inC} channels`);
        }
        const outChannels = depthwise ? inC * kernelShape[3] : kernelShape[3];
        let kernelValues = kernel.values;
        let bias = config.use_bias === false ? null : weights.take(record.name, "bias", outChannels).values;

        let last = record.name;
        const batchNorm = activation === "linear" ? soleConsumer(record.name) : null;
        const foldedHere: string[] = [];
        if (batchNorm?.class_name === "BatchNormalization") {
          checkBatchNormAxis(batchNorm);
          const bn = readBatchNorm(weights, batchNorm, outChannels);
          ({ kernel: kernelValues, bias } = foldBatchNorm(kernelValues, bias, bn));
          foldedHere.push(batchNorm.name);
          last = batchNorm.name;
        }
        const next = activation === "linear" ? soleConsumer(last) : null;
        const nextActivation = next ? standaloneActivation(next) : null;
        if (next && (nextActivation === "relu" || nextActivation === "relu6")) {
          activation = nextActivation;
          foldedHere.push(next.name);
          last = next.name;
        }
        const outShape: Shape = [
          convOutput(inH, kernelSize[0], strides[0], dilations[0], padding === "same" ? "same" : padding[0]),
          convOutput(inW, kernelSize[1], strides[1], dilations[1], padding === "same" ? "same" : padding[1]),
          outChannels,
        ];
        const out = newValue(outShape);
        ops.push({ kind: "conv", layer: record.name, input, out, depthwise, kernel: kernelValues, kernelShape, bias, strides, dilations, padding, activation });
        // The conv, its folded batch norm and its fused activation all name the same value.
        for (const name of [record.name, ...foldedHere]) valueOf.set(name, out);
        folded.push(...foldedHere);
        break;
      }
      case "BatchNormalization": {
        checkBatchNormAxis(record);
        const input = value(first);
        const bn = readBatchNorm(weights, record, shapes[input]![2]);
        const out = newValue(shapes[input]!);
        ops.push({ kind: "batchNorm", layer: record.name, input, out, mean: bn.mean, variance: bn.variance, gamma: bn.gamma, beta: bn.beta, epsilon: bn.epsilon });
        valueOf.set(record.name, out);
        break;
      }
      case "ReLU":
      case "Activation": {
        const activation = standaloneActivation(record);
        if (!activation) throw new UnsupportedGraphError(`${record.name}: ${record.class_name} ${JSON.stringify(config)}`);
        if (activation === "linear") {
          alias(record.name, first);
          break;
        }
        const input = value(first);
        const out = newValue(shapes[input]!);
        ops.push({ kind: "activation", layer: record.name, input, out, activation });
        valueOf.set(record.name, out);
        break;
      }
      case "Dropout":
        alias(record.name, first);
        break;
      case "Add":
      case "Concatenate": {
        const inputs = inbound.map(value);
        const inputShapes = inputs.map((v) => shapes[v]!);
        const [h, w] = inputShapes[0]!;
        if (record.class_name === "Concatenate") {
          const axis = config.axis ?? -1;
          if (axis !== -1 && axis !== 3) throw new UnsupportedGraphError(`${record.name}: concatenation over axis ${axis}`);
        }
        const channels = record.class_name === "Add" ? inputShapes[0]![2] : inputShapes.reduce((sum, s) => sum + s[2], 0);
        const out = newValue([h, w, channels]);
        ops.push({ kind: record.class_name === "Add" ? "add" : "concat", layer: record.name, inputs, out });
        valueOf.set(record.name, out);
        break;
      }
      case "MaxPooling2D":
      case "AveragePooling2D": {
        const size = pair(config.pool_size ?? 2, record.name);
        const strides = pair(config.strides ?? config.pool_size ?? 2, record.name);
        const padding = config.padding ?? "valid";
        if (padding !== "same" && padding !== "valid") throw new UnsupportedGraphError(`${record.name}: padding '${padding}'`);
        const input = value(first);
        const [h, w, c] = shapes[input]!;
        const out = newValue([convOutput(h, size[0], strides[0], 1, padding === "same" ? "same" : [0, 0]), convOutput(w, size[1], strides[1], 1, padding === "same" ? "same" : [0, 0]), c]);
        ops.push({ kind: "pool", layer: record.name, input, out, max: record.class_name === "MaxPooling2D", size, strides, padding });
        valueOf.set(record.name, out);
        break;
      }
      default:
        throw new UnsupportedGraphError(`layer ${record.name}: ${record.class_name} is not supported (the lowering takes conv, batch norm, ReLU, padding, add, concatenate, pooling and dropout layers)`);
    }
  }
  const featureList = spec.feature_layers.map((layer) => {
    if (absorbedPads.has(layer)) throw new Error(`lowering: feature layer ${layer} was absorbed`); // soleConsumer never absorbs a feature layer
    const v = value(layer);
    return { layer, value: v, channels: shapes[v]![2] };
  });
  // pooling "none" (one feature layer): its map itself, h·w·c values (the cut activation of fine-tuning).
  const map = shapes[featureList[0]!.value]!;
  const dim = spec.pooling === "none" ? map[0] * map[1] * map[2] : featureList.reduce((sum, f) => sum + f.channels, 0) * (spec.pooling === "avg+max" ? 2 : 1);
  return { inputShape, ops, shapes, features: featureList, dim, folded };
}

// ---------------------------------------------------------------- weights

/**
 * The weights of a layers model, found by one rule and decoded on request (a cut MobileNetV2 needs 2.4 MB of the
 * 14 MB it stores; decoding all of it would cost the edge's cold start).
 *
 * The rule: `<layer>/<param>` (what Keras and tfjs write), else the one weight named `<layer>/…/<param>` (a
 * converter that namespaces weights inside the layer, e.g. TF 2.2's `<layer>/<cell>/<param>`). Two such candidates
 * are ambiguous and refused.
 */
export class LayerWeights {
  private readonly byName: Map<string, ManifestWeight>;

  constructor(modelJson: Pick<ModelJsonLike, "weightsManifest">, private readonly data: ArrayBuffer) {
    this.byName = new Map(readWeightsManifest(modelJson).map((weight) => [weight.name, weight]));
  }

  /** The manifest weight `param` of `layer`, by the rule above. @throws UnsupportedGraphError when none or several. */
  find(layer: string, param: string): ManifestWeight {
    const exact = this.byName.get(`${layer}/${param}`);
    if (exact) return exact;
    const candidates = [...this.byName.values()].filter((weight) => weight.name.startsWith(`${layer}/`) && weight.name.endsWith(`/${param}`));
    if (candidates.length === 1) return candidates[0]!;
    if (candidates.length === 0) throw new UnsupportedGraphError(`layer ${layer}: no weight named ${layer}/${param} or ${layer}/…/${param}`);
    throw new UnsupportedGraphError(`layer ${layer}: weight ${param} is ambiguous (${candidates.map((w) => w.name).join(", ")})`);
  }

  /** Float32 values of `param` of `layer`, dequantised as tfjs does; `length` checks the element count. */
  take(layer: string, param: string, length?: number): { shape: number[]; values: Float32Array } {
    const weight = this.find(layer, param);
    if (weight.offset === null || !["float32", "uint8", "uint16"].includes(weight.storedDtype)) {
      throw new UnsupportedGraphError(`weight ${weight.name}: ${weight.storedDtype} weights are not lowered`);
    }
    if (length !== undefined && weight.elements !== length) throw new Error(`${weight.name} has ${weight.elements} values for ${length} channels`);
    return { shape: weight.shape, values: decodeFloatWeight(weight, this.data) };
  }
}

// ---------------------------------------------------------------- batch norm

export interface BatchNormValues {
  gamma: Float32Array | null;
  beta: Float32Array | null;
  mean: Float32Array;
  variance: Float32Array;
  epsilon: number;
}

function readBatchNorm(weights: LayerWeights, record: LayerRecord, channels: number): BatchNormValues {
  const config = record.config as Record<string, any>;
  const read = (param: string) => weights.take(record.name, param, channels).values;
  return {
    gamma: config.scale === false ? null : read("gamma"),
    beta: config.center === false ? null : read("beta"),
    mean: read("moving_mean"),
    variance: read("moving_variance"),
    epsilon: config.epsilon ?? 1e-3,
  };
}

function checkBatchNormAxis(record: LayerRecord): void {
  const axis = (record.config as Record<string, any>).axis ?? -1;
  if (axis !== -1 && axis !== 3 && !(Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3))) {
    throw new UnsupportedGraphError(`${record.name}: batch normalisation over axis ${JSON.stringify(axis)}`);
  }
}

/**
 * Batch norm as `y = x * scale + shift` per channel: `scale = inv * gamma`, `shift = beta - mean * scale`, with
 * `inv = 1 / sqrt(variance + epsilon)` rounded to float32 as tfjs' `rsqrt` computes it (scale and shift in float64;
 * callers round once).
 */
export function batchNormAffine(bn: BatchNormValues): { scale: Float64Array; shift: Float64Array } {
  const channels = bn.mean.length;
  const scale = new Float64Array(channels);
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    const inv = Math.fround(1 / Math.sqrt(Math.fround(bn.variance[c]! + bn.epsilon)));
    scale[c] = inv * (bn.gamma ? bn.gamma[c]! : 1);
    shift[c] = (bn.beta ? bn.beta[c]! : 0) - bn.mean[c]! * scale[c]!;
  }
  return { scale, shift };
}

/**
 * Folds `y = batchNorm(conv(x) + bias)` into the conv: `kernel * scale`, `bias * scale + shift`, rounded once to
 * float32. For a conv kernel `[kh, kw, in, out]` and a depthwise kernel `[kh, kw, in, multiplier]` alike, the output
 * channel of a flat index is `index % channels`.
 */
export function foldBatchNorm(kernel: Float32Array, bias: Float32Array | null, bn: BatchNormValues): { kernel: Float32Array; bias: Float32Array } {
  const channels = bn.mean.length;
  if (kernel.length % channels !== 0) throw new Error(`cannot fold batch normalisation over ${channels} channels into a kernel of ${kernel.length} values`);
  const { scale, shift } = batchNormAffine(bn);
  const foldedBias = new Float32Array(channels);
  for (let c = 0; c < channels; c++) foldedBias[c] = (bias ? bias[c]! : 0) * scale[c]! + shift[c]!;
  const folded = new Float32Array(kernel.length);
  for (let i = 0; i < kernel.length; i++) folded[i] = kernel[i]! * scale[i % channels]!;
  return { kernel: folded, bias: foldedBias };
}

// ---------------------------------------------------------------- graph helpers

/** Layers such that every layer comes after its inputs (Keras writes them that way; this checks and repairs). */
function topologicalOrder(records: LayerRecord[]): LayerRecord[] {
  const byName = new Map(records.map((r) => [r.name, r]));
  const done = new Set<string>();
  const visiting = new Set<string>();
  const ordered: LayerRecord[] = [];
  const visit = (record: LayerRecord) => {
    if (done.has(record.name)) return;
    if (visiting.has(record.name)) throw new Error(`model.json has a cycle through layer ${record.name}`);
    visiting.add(record.name);
    for (const input of inboundLayerNames(record)) {
      const inputRecord = byName.get(input);
      if (!inputRecord) throw new Error(`layer ${record.name} reads unknown layer ${input}`);
      visit(inputRecord);
    }
    visiting.delete(record.name);
    done.add(record.name);
    ordered.push(record);
  };
  records.forEach(visit);
  return ordered;
}

function checkChannelsLast(record: LayerRecord): void {
  const format = record.config.data_format;
  if (format !== undefined && format !== null && format !== "channels_last") throw new UnsupportedGraphError(`${record.name}: data_format ${String(format)}`);
}

function pair(value: unknown, layer: string): [number, number] {
  const values = typeof value === "number" ? [value, value] : Array.isArray(value) && value.length === 2 ? value : null;
  if (!values || !values.every((v) => Number.isInteger(v) && v > 0)) throw new UnsupportedGraphError(`${layer}: expected an integer pair, got ${JSON.stringify(value)}`);
  return values as [number, number];
}

function normalisePadding(value: unknown, layer: string): Paddings {
  if (typeof value === "number") return [[value, value], [value, value]];
  if (Array.isArray(value) && value.length === 2) {
    if (value.every((v) => typeof v === "number")) return [[value[0], value[0]], [value[1], value[1]]];
    if (value.every((v) => Array.isArray(v) && v.length === 2)) return value as Paddings;
  }
  throw new UnsupportedGraphError(`${layer}: padding ${JSON.stringify(value)}`);
}

/** Output size along one axis for TensorFlow's "same" or explicit `[before, after]` zero padding. */
export function convOutput(size: number, kernel: number, stride: number, dilation: number, padding: "same" | [number, number]): number {
  if (padding === "same") return Math.ceil(size / stride);
  return Math.floor((size + padding[0] + padding[1] - (kernel - 1) * dilation - 1) / stride) + 1;
}

/**
 * The zero padding TensorFlow's "same" adds around `input` for this window, `[[top, bottom], [left, right]]` (the odd
 * pixel bottom/right); a dilated window spans `(kernel - 1) * dilation + 1` pixels.
 */
export function samePadding(input: Shape, kernel: [number, number], strides: [number, number], dilations: [number, number] = [1, 1]): Paddings {
  const axis = (a: 0 | 1): [number, number] => {
    const size = input[a];
    const span = (kernel[a] - 1) * dilations[a] + 1;
    const total = Math.max((Math.ceil(size / strides[a]) - 1) * strides[a] + span - size, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)];
  };
  return [axis(0), axis(1)];
}

function fusableActivation(name: unknown): FusedActivation | null {
  if (name === undefined || name === null || name === "linear") return "linear";
  return name === "relu" || name === "relu6" ? name : null;
}

/** What a ReLU or Activation layer computes, or null when it is something else (leaky, thresholded, sigmoid...). */
function standaloneActivation(record: LayerRecord): "linear" | Activation | null {
  const config = record.config as Record<string, any>;
  if (record.class_name === "Activation") return fusableActivation(config.activation);
  if (record.class_name !== "ReLU") return null;
  if ((config.negative_slope ?? 0) !== 0 || (config.threshold ?? 0) !== 0) return null;
  const max = config.max_value;
  if (max === null || max === undefined) return "relu";
  if (max === 6) return "relu6";
  return typeof max === "number" && max > 0 ? { clip: max } : null;
}
