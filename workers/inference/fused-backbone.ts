/**
 * A backbone's feature extractor compiled from its tfjs layers `model.json` into a short list of fused tfjs ops, for
 * the Worker's WASM backend. Same inputs, same embedding as `buildFeatureExtractor` (shared/backbone/
 * feature-extractor.ts, what the runner trains on) up to float32 rounding; tests/workers/predict-parity.test.ts pins
 * the difference on the real builtin MobileNetV2.
 *
 * Why: run as a LayersModel, MobileNetV2 issues about 160 kernels per image. Keras writes its convs with
 * `use_bias=False, activation='linear'`, so each is followed by a separate BatchNormalization kernel and a separate
 * ReLU6 (`clipByValue`) kernel, and the ZeroPadding2D layers copy their input; each is a full pass over activations of
 * up to 112x112x96 floats (4.8 MB). Here, at build time:
 *   - BatchNormalization is folded into the preceding conv, in float64, rounded once to float32:
 *       scale = gamma / sqrt(variance + epsilon);  kernel' = kernel * scale;  bias' = beta + (bias - mean) * scale
 *   - the ReLU / ReLU6 that follows becomes the conv's fused activation (XNNPACK's output clamp);
 *   - a ZeroPadding2D is dropped when it equals TensorFlow's 'same' padding for the 'valid' conv after it (all four
 *     of MobileNetV2 up to block_13 at 224x224: ((0,1),(0,1)) before a stride-2 3x3 conv on an even size).
 * MobileNetV2 up to `block_13_expand_relu` (the builtin feature layer): 120 layers become 40 fused convs, 8 adds
 * and one pooling, 2.4 MB of float32 weights. Measured warm at batch 1 on the 2-vCPU dev box (noisy, shared): in the
 * vitest workerd pool, layers 63 to 101 ms, fused 25 to 38 ms (tests/workers/predict-parity.test.ts);
 * bench/predict/README.md has the numbers through the API. The 220 M multiply-adds run at about 8 GMAC/s on a quiet
 * core, 1x1 convs take about 70% of the time, depthwise 25%: near what 128-bit WASM SIMD without FMA allows
 * (FACTS: 30 GFLOP/s per thread).
 *
 * Also, unlike a LayersModel:
 *   - the graph is built straight from model.json: no tfjs-layers objects, no random weight initialisers run and
 *     thrown away (cold start), and only the weights of kept layers are decoded;
 *   - each intermediate tensor is freed right after its last reader ran, so the WASM heap (which never shrinks)
 *     holds a few activations at a time instead of all of them.
 *
 * Layers outside the supported set (see `compileFusedBackbone`) raise `UnsupportedGraphError`; the caller then falls
 * back to `buildFeatureExtractor`, which runs anything tfjs-layers can.
 */
import type { Tensor, Tensor1D, Tensor4D } from "@tensorflow/tfjs-core";
import { decodeFloatWeight, getInputShape, getLayerRecords, inboundLayerNames, isGraphModel, pruneToFeatureLayers, readWeightsManifest, validateFeatureSpec, type ManifestWeight } from "../../shared/backbone/model-json";
import type { FeatureSpec, LayerRecord, LayersModelJson } from "../../shared/backbone/types";

type TfjsCore = typeof import("@tensorflow/tfjs-core");
type FusedActivation = "linear" | "relu" | "relu6";
type Shape = [number, number, number]; // [height, width, channels] of one image

/** The model uses something the fused compiler does not handle; use `buildFeatureExtractor` instead. */
export class UnsupportedGraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedGraphError";
  }
}

export interface CompiledBackbone {
  /** `[H, W, C]` of one input image. */
  readonly inputShape: Shape;
  /** Length of one embedding. */
  readonly dim: number;
  /** Channels of each feature layer, in spec order. */
  readonly layerChannels: number[];
  /** tfjs ops one image costs (convs, adds, pads, pooling). */
  readonly stepCount: number;
  /** Bytes of float32 weights held in the backend. */
  readonly weightBytes: number;
  /**
   * One image, `[H * W * C]` float32 NHWC already normalised as the spec says → its embedding `[dim]`.
   * Batch 1 on purpose: the WASM heap grows to the largest batch it ever ran and never shrinks.
   */
  embed(image: Float32Array): Float32Array;
  dispose(): void;
}

type Step =
  | { kind: "conv"; input: number; out: number; depthwise: boolean; filter: Tensor4D; bias: Tensor1D | null;
      strides: [number, number]; pad: "same" | "valid"; dilations: [number, number]; activation: FusedActivation }
  | { kind: "pad"; input: number; out: number; paddings: [[number, number], [number, number]] }
  | { kind: "batchNorm"; input: number; out: number; mean: Tensor1D; variance: Tensor1D; offset: Tensor1D | null; scale: Tensor1D | null; epsilon: number }
  | { kind: "activation"; input: number; out: number; activation: "relu" | "relu6" | { clip: number } }
  | { kind: "add"; inputs: number[]; out: number }
  | { kind: "concat"; inputs: number[]; out: number }
  | { kind: "pool"; input: number; out: number; max: boolean; size: [number, number]; strides: [number, number]; pad: "same" | "valid" };

/**
 * Compiles `modelJson` (a Keras functional layers model) cut at `spec.feature_layers` with global pooling, like
 * `buildFeatureExtractor` does.
 *
 * Supported layers: InputLayer, Conv2D and DepthwiseConv2D (channels_last, one group, depth multiplier 1),
 * BatchNormalization (last axis), ReLU (no slope or threshold), Activation (relu, relu6, linear), ZeroPadding2D, Add,
 * Concatenate (last axis), MaxPooling2D, AveragePooling2D, Dropout. uint8/uint16-quantised and float32 weights.
 *
 * `spec.input_size` gives the input's height and width where the model leaves them free, as for the runner.
 * @throws UnsupportedGraphError for anything else; Error for a model.json that contradicts itself.
 */
export function compileFusedBackbone(tf: TfjsCore, modelJson: LayersModelJson, weightData: ArrayBuffer, spec: FeatureSpec): CompiledBackbone {
  if (spec.flip_average) throw new UnsupportedGraphError("flip averaging is not compiled");
  if (isGraphModel(modelJson)) throw new UnsupportedGraphError("a graph model");
  validateFeatureSpec(modelJson, spec);
  const inputShape: Shape = getInputShape(modelJson, spec.input_size);

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

  const weights = new WeightReader(modelJson, weightData, records);
  const owned: Tensor[] = [];
  const keep = <T extends Tensor>(tensor: T): T => (owned.push(tensor), tensor);

  const slotOf = new Map<string, number>(); // layer name -> slot holding its output
  const shapeOf = new Map<string, Shape>();
  let slotCount = 0;
  const newSlot = () => slotCount++;
  const pendingPads = new Map<string, { input: string; paddings: [[number, number], [number, number]] }>();
  const steps: Step[] = [];
  const inputSlot = newSlot();
  const slot = (name: string) => {
    const pending = pendingPads.get(name);
    if (pending) {
      // A pad nobody could absorb: run it.
      pendingPads.delete(name);
      const out = newSlot();
      steps.push({ kind: "pad", input: slot(pending.input), out, paddings: pending.paddings });
      slotOf.set(name, out);
    }
    const found = slotOf.get(name);
    if (found === undefined) throw new Error(`fused backbone: layer ${name} is read before it is computed`);
    return found;
  };
  const fused = new Set<string>(); // layers folded into an earlier step

  try {
    for (const record of records) {
      if (fused.has(record.name)) continue;
      const config = record.config as Record<string, any>;
      const inbound = inboundLayerNames(record);
      const first = inbound[0]!;
      checkChannelsLast(record);
      switch (record.class_name) {
        case "InputLayer":
          slotOf.set(record.name, inputSlot);
          shapeOf.set(record.name, inputShape);
          break;
        case "ZeroPadding2D": {
          const paddings = normalisePadding(config.padding, record.name);
          const [h, w, c] = shapeOf.get(first)!;
          shapeOf.set(record.name, [h + paddings[0][0] + paddings[0][1], w + paddings[1][0] + paddings[1][1], c]);
          pendingPads.set(record.name, { input: first, paddings });
          break;
        }
        case "Conv2D":
        case "DepthwiseConv2D": {
          const depthwise = record.class_name === "DepthwiseConv2D";
          if (!depthwise && (config.groups ?? 1) !== 1) throw new UnsupportedGraphError(`${record.name}: grouped convolution`);
          if (depthwise && (config.depth_multiplier ?? 1) !== 1) throw new UnsupportedGraphError(`${record.name}: depth_multiplier ${config.depth_multiplier}`);
          const kernelSize = pair(config.kernel_size, record.name);
          const strides = pair(config.strides ?? 1, record.name);
          const dilations = pair(config.dilation_rate ?? 1, record.name);
          let pad = config.padding as string;
          if (pad !== "same" && pad !== "valid") throw new UnsupportedGraphError(`${record.name}: padding '${pad}'`);
          let activation = fusableActivation(config.activation);
          if (!activation) throw new UnsupportedGraphError(`${record.name}: activation '${config.activation}'`);

          let inputName = first;
          const pending = pendingPads.get(first);
          if (pending && pad === "valid" && dilations[0] === 1 && dilations[1] === 1 && (consumers.get(first) ?? []).length === 1 &&
            samePaddingEquals(shapeOf.get(pending.input)!, kernelSize, strides, pending.paddings)) {
            pendingPads.delete(first);
            inputName = pending.input;
            pad = "same";
          }
          const [inH, inW, inC] = shapeOf.get(inputName)!;
          const kernelName = depthwise ? `${record.name}/depthwise_kernel` : `${record.name}/kernel`;
          const kernel = weights.take(kernelName);
          let kernelValues = kernel.values;
          let biasValues: Float32Array | null = config.use_bias ? weights.take(`${record.name}/bias`).values : null;
          const outChannels = depthwise ? inC : (config.filters as number);

          let last = record.name;
          const batchNorm = activation === "linear" ? soleConsumer(record.name) : null;
          if (batchNorm?.class_name === "BatchNormalization") {
            const folded = foldBatchNorm(kernelValues, biasValues, readBatchNorm(weights, batchNorm, outChannels));
            kernelValues = folded.kernel;
            biasValues = folded.bias;
            fused.add(batchNorm.name);
            last = batchNorm.name;
          }
          const next = activation === "linear" ? soleConsumer(last) : null;
          const nextActivation = next ? standaloneActivation(next) : null;
          if (next && nextActivation && nextActivation !== "linear" && typeof nextActivation === "string") {
            activation = nextActivation;
            fused.add(next.name);
            last = next.name;
          }
          const filter = keep(tf.tensor4d(kernelValues, kernel.shape as [number, number, number, number]));
          const bias = biasValues ? keep(tf.tensor1d(biasValues)) : null;
          const out = newSlot();
          steps.push({ kind: "conv", input: slot(inputName), out, depthwise, filter, bias, strides, pad: pad as "same" | "valid", dilations, activation });
          const shape: Shape = [convOutput(inH, kernelSize[0], strides[0], dilations[0], pad), convOutput(inW, kernelSize[1], strides[1], dilations[1], pad), outChannels];
          // The conv, its folded batch norm and its fused activation all name the same value.
          for (const name of [record.name, ...(batchNorm && fused.has(batchNorm.name) ? [batchNorm.name] : []), last]) {
            slotOf.set(name, out);
            shapeOf.set(name, shape);
          }
          break;
        }
        case "BatchNormalization": {
          const channels = shapeOf.get(first)![2];
          const axis = config.axis ?? -1;
          if (axis !== -1 && axis !== 3 && !(Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3))) {
            throw new UnsupportedGraphError(`${record.name}: batch normalisation over axis ${JSON.stringify(axis)}`);
          }
          const bn = readBatchNorm(weights, record, channels);
          const out = newSlot();
          steps.push({
            kind: "batchNorm", input: slot(first), out, epsilon: bn.epsilon,
            mean: keep(tf.tensor1d(bn.mean)), variance: keep(tf.tensor1d(bn.variance)),
            offset: bn.beta ? keep(tf.tensor1d(bn.beta)) : null, scale: bn.gamma ? keep(tf.tensor1d(bn.gamma)) : null,
          });
          slotOf.set(record.name, out);
          shapeOf.set(record.name, shapeOf.get(first)!);
          break;
        }
        case "ReLU":
        case "Activation": {
          const activation = standaloneActivation(record);
          if (!activation) throw new UnsupportedGraphError(`${record.name}: ${record.class_name} ${JSON.stringify(config)}`);
          shapeOf.set(record.name, shapeOf.get(first)!);
          if (activation === "linear") {
            slotOf.set(record.name, slot(first));
            break;
          }
          const out = newSlot();
          steps.push({ kind: "activation", input: slot(first), out, activation });
          slotOf.set(record.name, out);
          break;
        }
        case "Dropout":
          shapeOf.set(record.name, shapeOf.get(first)!);
          slotOf.set(record.name, slot(first));
          break;
        case "Add":
        case "Concatenate": {
          const shapes = inbound.map((name) => shapeOf.get(name)!);
          if (record.class_name === "Concatenate") {
            const axis = config.axis ?? -1;
            if (axis !== -1 && axis !== 3) throw new UnsupportedGraphError(`${record.name}: concatenation over axis ${axis}`);
          }
          const out = newSlot();
          steps.push({ kind: record.class_name === "Add" ? "add" : "concat", inputs: inbound.map(slot), out });
          slotOf.set(record.name, out);
          const [h, w] = shapes[0]!;
          shapeOf.set(record.name, [h, w, record.class_name === "Add" ? shapes[0]![2] : shapes.reduce((sum, s) => sum + s[2], 0)]);
          break;
        }
        case "MaxPooling2D":
        case "AveragePooling2D": {
          const size = pair(config.pool_size ?? 2, record.name);
          const strides = pair(config.strides ?? config.pool_size ?? 2, record.name);
          const pad = config.padding ?? "valid";
          if (pad !== "same" && pad !== "valid") throw new UnsupportedGraphError(`${record.name}: padding '${pad}'`);
          const [h, w, c] = shapeOf.get(first)!;
          const out = newSlot();
          steps.push({ kind: "pool", input: slot(first), out, max: record.class_name === "MaxPooling2D", size, strides, pad });
          slotOf.set(record.name, out);
          shapeOf.set(record.name, [convOutput(h, size[0], strides[0], 1, pad), convOutput(w, size[1], strides[1], 1, pad), c]);
          break;
        }
        default:
          throw new UnsupportedGraphError(`layer ${record.name} of class ${record.class_name}`);
      }
    }
    const featureSlots = spec.feature_layers.map((name) => slot(name));
    const layerChannels = spec.feature_layers.map((name) => shapeOf.get(name)![2]);
    const dim = layerChannels.reduce((sum, c) => sum + c, 0) * (spec.pooling === "avg+max" ? 2 : 1);

    // Free each intermediate right after the last step that reads it; feature maps live until pooling.
    const lastRead = new Array<number>(slotCount).fill(-1);
    steps.forEach((step, index) => {
      for (const input of "inputs" in step ? step.inputs : [step.input]) lastRead[input] = index;
    });
    for (const s of featureSlots) lastRead[s] = steps.length;
    const releaseAfter = steps.map(() => [] as number[]);
    lastRead.forEach((index, s) => {
      if (s !== inputSlot && index >= 0 && index < steps.length) releaseAfter[index]!.push(s);
    });
    const weightBytes = owned.reduce((sum, t) => sum + t.size * 4, 0);

    const run = (step: Step, values: (Tensor | null)[]): Tensor => {
      const get = (s: number) => values[s]!;
      switch (step.kind) {
        case "conv": {
          const args = { x: get(step.input) as Tensor4D, strides: step.strides, pad: step.pad, dilations: step.dilations, bias: step.bias ?? undefined, activation: step.activation };
          return step.depthwise ? tf.fused.depthwiseConv2d({ ...args, filter: step.filter }) : tf.fused.conv2d({ ...args, filter: step.filter });
        }
        case "pad":
          return tf.pad(get(step.input), [[0, 0], ...step.paddings, [0, 0]]);
        case "batchNorm":
          return tf.batchNorm(get(step.input), step.mean, step.variance, step.offset ?? undefined, step.scale ?? undefined, step.epsilon);
        case "activation":
          return step.activation === "relu" ? tf.relu(get(step.input)) : step.activation === "relu6" ? tf.relu6(get(step.input)) : tf.clipByValue(get(step.input), 0, step.activation.clip);
        case "add":
          return step.inputs.length === 2 ? tf.add(get(step.inputs[0]!), get(step.inputs[1]!)) : tf.addN(step.inputs.map(get));
        case "concat":
          return tf.concat(step.inputs.map(get), -1);
        case "pool":
          return step.max ? tf.maxPool(get(step.input) as Tensor4D, step.size, step.strides, step.pad) : tf.avgPool(get(step.input) as Tensor4D, step.size, step.strides, step.pad);
      }
    };

    const [h, w, c] = inputShape;
    let disposed = false;
    return {
      inputShape,
      dim,
      layerChannels,
      stepCount: steps.length + featureSlots.length * (spec.pooling === "avg+max" ? 2 : 1),
      weightBytes,
      embed(image: Float32Array): Float32Array {
        if (disposed) throw new Error("fused backbone: used after dispose");
        if (image.length !== h * w * c) throw new RangeError(`embed: expected ${h}x${w}x${c} = ${h * w * c} floats, got ${image.length}`);
        const values: (Tensor | null)[] = new Array(slotCount).fill(null);
        values[inputSlot] = tf.tensor4d(image, [1, h, w, c]);
        try {
          steps.forEach((step, index) => {
            values[step.out] = run(step, values);
            for (const s of releaseAfter[index]!) {
              values[s]!.dispose();
              values[s] = null;
            }
          });
          const embedding = tf.tidy(() => {
            const pooled: Tensor[] = [];
            for (const s of featureSlots) {
              pooled.push(tf.mean(values[s]!, [1, 2]));
              if (spec.pooling === "avg+max") pooled.push(tf.max(values[s]!, [1, 2]));
            }
            return pooled.length === 1 ? pooled[0]! : tf.concat(pooled, -1);
          });
          const data = embedding.dataSync() as Float32Array;
          embedding.dispose();
          return new Float32Array(data);
        } finally {
          for (const value of values) value?.dispose();
        }
      },
      dispose() {
        disposed = true;
        for (const tensor of owned) tensor.dispose();
      },
    };
  } catch (error) {
    for (const tensor of owned) tensor.dispose();
    throw error;
  }
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

function normalisePadding(value: unknown, layer: string): [[number, number], [number, number]] {
  if (typeof value === "number") return [[value, value], [value, value]];
  if (Array.isArray(value) && value.length === 2) {
    if (value.every((v) => typeof v === "number")) return [[value[0], value[0]], [value[1], value[1]]];
    if (value.every((v) => Array.isArray(v) && v.length === 2)) return value as [[number, number], [number, number]];
  }
  throw new UnsupportedGraphError(`${layer}: padding ${JSON.stringify(value)}`);
}

function convOutput(size: number, kernel: number, stride: number, dilation: number, pad: string): number {
  return pad === "same" ? Math.ceil(size / stride) : Math.floor((size - (kernel - 1) * dilation - 1) / stride) + 1;
}

/** True when TensorFlow's 'same' padding for this conv pads exactly `paddings` ([[top, bottom], [left, right]]). */
function samePaddingEquals(inputShape: Shape, kernel: [number, number], strides: [number, number], paddings: [[number, number], [number, number]]): boolean {
  for (let axis = 0; axis < 2; axis++) {
    const size = inputShape[axis]!;
    const out = Math.ceil(size / strides[axis]!);
    const total = Math.max((out - 1) * strides[axis]! + kernel[axis]! - size, 0);
    const before = Math.floor(total / 2);
    if (paddings[axis]![0] !== before || paddings[axis]![1] !== total - before) return false;
  }
  return true;
}

function fusableActivation(name: unknown): FusedActivation | null {
  if (name === undefined || name === null || name === "linear") return "linear";
  return name === "relu" || name === "relu6" ? name : null;
}

/** What a ReLU or Activation layer computes, or null when it is something else (leaky, thresholded, sigmoid...). */
function standaloneActivation(record: LayerRecord): FusedActivation | { clip: number } | null {
  const config = record.config as Record<string, any>;
  if (record.class_name === "Activation") return fusableActivation(config.activation);
  if (record.class_name !== "ReLU") return null;
  if ((config.negative_slope ?? 0) !== 0 || (config.threshold ?? 0) !== 0) return null;
  const max = config.max_value;
  if (max === null || max === undefined) return "relu";
  if (max === 6) return "relu6";
  return typeof max === "number" && max > 0 ? { clip: max } : null;
}

// ---------------------------------------------------------------- weights

interface FloatValues {
  shape: number[];
  values: Float32Array;
}

/**
 * Decodes, on request, the float32 weights of the kept layers, dequantising as tfjs' `io.decodeWeights` does
 * (`q * scale + min`, rounded to float32). Not shared/backbone/model-json.ts `decodeFloatWeights`: that decodes every
 * weight up front, 14 MB of floats for the whole MobileNetV2 where the cut trunk needs 2.4 MB, on the cold path.
 */
class WeightReader {
  private readonly located = new Map<string, ManifestWeight>();

  constructor(modelJson: LayersModelJson, private readonly data: ArrayBuffer, records: LayerRecord[]) {
    const kept = new Set(records.map((r) => r.name));
    const manifest = readWeightsManifest(modelJson);
    for (const weight of manifest) {
      if (weight.bytes === null) throw new UnsupportedGraphError(`weight ${weight.name}: dtype ${weight.storedDtype}`);
      if (kept.has(weight.name.slice(0, weight.name.lastIndexOf("/")))) this.located.set(weight.name, weight);
    }
    const needed = manifest.reduce((sum, weight) => sum + weight.bytes!, 0);
    if (needed > data.byteLength) throw new Error(`the weights hold ${data.byteLength} bytes; the manifest needs ${needed}`);
  }

  take(name: string): FloatValues {
    const weight = this.located.get(name);
    if (!weight) throw new UnsupportedGraphError(`no weight named ${name} (weights are matched as '<layer>/<weight>')`);
    if (weight.storedDtype !== "float32" && weight.storedDtype !== "uint8" && weight.storedDtype !== "uint16") {
      throw new UnsupportedGraphError(`weight ${name}: ${weight.storedDtype} weights are not compiled`);
    }
    return { shape: weight.shape, values: decodeFloatWeight(weight, this.data) };
  }
}

interface BatchNormValues {
  gamma: Float32Array | null;
  beta: Float32Array | null;
  mean: Float32Array;
  variance: Float32Array;
  epsilon: number;
}

function readBatchNorm(weights: WeightReader, record: LayerRecord, channels: number): BatchNormValues {
  const config = record.config as Record<string, any>;
  const read = (weight: string) => {
    const values = weights.take(`${record.name}/${weight}`).values;
    if (values.length !== channels) throw new Error(`${record.name}/${weight} has ${values.length} values for ${channels} channels`);
    return values;
  };
  return {
    gamma: config.scale === false ? null : read("gamma"),
    beta: config.center === false ? null : read("beta"),
    mean: read("moving_mean"),
    variance: read("moving_variance"),
    epsilon: config.epsilon ?? 1e-3,
  };
}

/**
 * Folds `y = (conv(x) + bias - mean) * gamma / sqrt(variance + epsilon) + beta` into the conv, in float64. For a
 * conv kernel [kh, kw, in, out] and a depthwise kernel [kh, kw, channels, 1] alike, channel = flat index % channels.
 */
function foldBatchNorm(kernel: Float32Array, bias: Float32Array | null, bn: BatchNormValues): { kernel: Float32Array; bias: Float32Array } {
  const channels = bn.mean.length;
  if (kernel.length % channels !== 0) throw new Error(`cannot fold batch normalisation over ${channels} channels into a kernel of ${kernel.length} values`);
  const scale = new Float64Array(channels);
  const foldedBias = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = (bn.gamma ? bn.gamma[c]! : 1) / Math.sqrt(bn.variance[c]! + bn.epsilon);
    foldedBias[c] = (bn.beta ? bn.beta[c]! : 0) + ((bias ? bias[c]! : 0) - bn.mean[c]!) * scale[c]!;
  }
  const folded = new Float32Array(kernel.length);
  for (let i = 0; i < kernel.length; i++) folded[i] = kernel[i]! * scale[i % channels]!;
  return { kernel: folded, bias: foldedBias };
}
