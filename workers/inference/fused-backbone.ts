/**
 * The edge's back end of the backbone lowering (shared/backbone/lowering.ts): the lowered ops of a backbone's tfjs
 * layers `model.json` run as fused tfjs ops on the Worker's WASM backend. Same inputs, same embedding as
 * `buildFeatureExtractor` (shared/backbone/feature-extractor.ts, what the runner trains on) up to float32 rounding;
 * tests/workers/predict-parity.test.ts pins the difference on the real builtin MobileNetV2.
 *
 * Why: run as a LayersModel, MobileNetV2 issues about 160 kernels per image. Keras writes its convs with
 * `use_bias=False, activation='linear'`, so each is followed by a separate BatchNormalization kernel and a separate
 * ReLU6 (`clipByValue`) kernel, and the ZeroPadding2D layers copy their input; each is a full pass over activations of
 * up to 112x112x96 floats (4.8 MB). The lowering folds batch norm into the convs and their activations into XNNPACK's
 * output clamp; here a conv's absorbed zero padding runs as TensorFlow's 'same' when it equals it (all four
 * ZeroPadding2D of MobileNetV2 up to block_13 at 224x224: ((0,1),(0,1)) before a stride-2 3x3 conv on an even size),
 * else as a `pad` before a 'valid' conv. MobileNetV2 up to `block_13_expand_relu` (the builtin feature layer): 120
 * layers become 40 fused convs, 8 adds and one pooling, 2.4 MB of float32 weights. Measured warm at batch 1 on the
 * 2-vCPU dev box (noisy, shared): in the vitest workerd pool, layers 63 to 101 ms, fused 25 to 38 ms
 * (tests/workers/predict-parity.test.ts); bench/predict/README.md has the numbers through the API. The 220 M
 * multiply-adds run at about 8 GMAC/s on a quiet core, 1x1 convs take about 70% of the time, depthwise 25%: near
 * what 128-bit WASM SIMD without FMA allows (FACTS: 30 GFLOP/s per thread).
 *
 * Also, unlike a LayersModel:
 *   - the graph is built straight from model.json: no tfjs-layers objects, no random weight initialisers run and
 *     thrown away (cold start), and only the weights of kept layers are decoded;
 *   - each intermediate tensor is freed right after its last reader ran, so the WASM heap (which never shrinks)
 *     holds a few activations at a time instead of all of them.
 *
 * What the lowering does not take raises `UnsupportedGraphError`; the caller then falls back to
 * `buildFeatureExtractor`, which runs anything tfjs-layers can.
 */
import type { Tensor, Tensor1D, Tensor4D } from "@tensorflow/tfjs-core";
import { INPUT_VALUE, lowerBackbone, samePadding, UnsupportedGraphError, type Activation, type FusedActivation, type Paddings, type Shape } from "../../shared/backbone/lowering";
import type { ModelJsonLike } from "../../shared/backbone/model-json";
import type { FeatureSpec } from "../../shared/backbone/types";

type TfjsCore = typeof import("@tensorflow/tfjs-core");

export { UnsupportedGraphError };

/**
 * Weight tensors shared by compiles of one model at several input sizes (embedder.ts createMultiSizeEmbedder), keyed
 * by their order and shape. Whoever creates the map disposes its tensors, after every compile that uses them.
 */
export type SharedWeights = Map<string, Tensor>;

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
  | { kind: "pad"; input: number; out: number; paddings: Paddings }
  | { kind: "batchNorm"; input: number; out: number; mean: Tensor1D; variance: Tensor1D; offset: Tensor1D | null; scale: Tensor1D | null; epsilon: number }
  | { kind: "activation"; input: number; out: number; activation: Activation }
  | { kind: "add"; inputs: number[]; out: number }
  | { kind: "concat"; inputs: number[]; out: number }
  | { kind: "pool"; input: number; out: number; max: boolean; size: [number, number]; strides: [number, number]; pad: "same" | "valid" };

/**
 * Lowers `modelJson` (a Keras functional layers model) cut at `spec.feature_layers` with global pooling, like
 * `buildFeatureExtractor` does, and puts its weights in the tfjs backend. Supported layers: those of `lowerBackbone`.
 * `spec.input_size` gives the input's height and width where the model leaves them free, as for the runner.
 * @throws UnsupportedGraphError for a model the lowering does not take, or flip averaging; Error for a model.json
 *   that contradicts itself.
 */
export function compileFusedBackbone(tf: TfjsCore, modelJson: ModelJsonLike, weightData: ArrayBuffer, spec: FeatureSpec, sharedWeights?: SharedWeights): CompiledBackbone {
  if (spec.flip_average) throw new UnsupportedGraphError("flip averaging is not compiled");
  const lowered = lowerBackbone(modelJson, weightData, spec);
  const { inputShape, shapes } = lowered;
  const owned: Tensor[] = [];
  let weightKey = 0;
  // The weights of one model are the same tensors at every input size: with `sharedWeights`, the first compile puts
  // them there (the caller frees them) and the next ones take them, in the same order of lowered ops.
  const keep = <T extends Tensor>(make: () => T, shape: readonly number[]): T => {
    const key = `${weightKey++}:${shape.join("x")}`;
    if (!sharedWeights) return owned.push(make()), owned[owned.length - 1] as T;
    let tensor = sharedWeights.get(key) as T | undefined;
    if (!tensor) sharedWeights.set(key, (tensor = make()));
    return tensor;
  };
  const tensor1d = (values: Float32Array | null) => (values ? keep(() => tf.tensor1d(values), [values.length]) : null);
  let slotCount = shapes.length; // one slot per lowered value, plus one per pad run before a conv
  const inputSlot = INPUT_VALUE;

  try {
    const steps: Step[] = [];
    for (const op of lowered.ops) {
      switch (op.kind) {
        case "conv": {
          let input = op.input;
          let pad: "same" | "valid";
          if (op.padding === "same") pad = "same";
          else if (isZero(op.padding)) pad = "valid";
          else if (op.dilations[0] === 1 && op.dilations[1] === 1 && samePaddingOf(op.padding, shapes[op.input]!, op.kernelShape, op.strides)) pad = "same";
          else {
            // Zero padding XNNPACK's 'same' cannot express: pad first.
            input = slotCount++;
            steps.push({ kind: "pad", input: op.input, out: input, paddings: op.padding });
            pad = "valid";
          }
          const filter = keep(() => tf.tensor4d(op.kernel, op.kernelShape), op.kernelShape);
          steps.push({ kind: "conv", input, out: op.out, depthwise: op.depthwise, filter, bias: tensor1d(op.bias), strides: op.strides, pad, dilations: op.dilations, activation: op.activation });
          break;
        }
        case "batchNorm":
          steps.push({ kind: "batchNorm", input: op.input, out: op.out, epsilon: op.epsilon, mean: tensor1d(op.mean)!, variance: tensor1d(op.variance)!, offset: tensor1d(op.beta), scale: tensor1d(op.gamma) });
          break;
        case "pool":
          steps.push({ kind: "pool", input: op.input, out: op.out, max: op.max, size: op.size, strides: op.strides, pad: op.padding });
          break;
        default:
          steps.push(op);
      }
    }
    const featureSlots = lowered.features.map((feature) => feature.value);
    const layerChannels = lowered.features.map((feature) => feature.channels);
    const dim = lowered.dim;

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
    const weightBytes = (sharedWeights ? [...sharedWeights.values()] : owned).reduce((sum, t) => sum + t.size * 4, 0);

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
          // pooling "none": the trunk up to one layer, its map returned as is (NHWC) for a fine-tuned model's blocks.
          if (spec.pooling === "none") return new Float32Array(values[featureSlots[0]!]!.dataSync() as Float32Array);
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

const isZero = (paddings: Paddings) => paddings.every(([before, after]) => before === 0 && after === 0);

/** True when TensorFlow's 'same' padding for this undilated conv pads exactly `paddings`. */
function samePaddingOf(paddings: Paddings, input: Shape, kernelShape: [number, number, number, number], strides: [number, number]): boolean {
  const same = samePadding(input, [kernelShape[0], kernelShape[1]], strides);
  return same.every(([before, after], axis) => paddings[axis]![0] === before && paddings[axis]![1] === after);
}
