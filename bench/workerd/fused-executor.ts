/**
 * PROTOTYPE (bench only, not production): runs a Keras-style MobileNetV2 LayersModel as a short list of fused tfjs ops.
 *
 * Why: loaded as a LayersModel, MobileNetV2 runs about 160 kernels per image. Only Conv2D goes through
 * `tf.fused.conv2d`, and with Keras' `use_bias=False, activation='linear'` there is nothing to fuse; every conv is then
 * followed by a separate BatchNormalization kernel and a separate ReLU6 (`clipByValue`) kernel, DepthwiseConv2D goes
 * through the plain op, and the five ZeroPadding2D layers copy their input. Each of those is a full pass over the
 * activations (up to 112x112x96 floats = 4.8 MB).
 * Here, at build time, BatchNormalization is folded into the preceding conv's weights
 *   scale = gamma / sqrt(variance + epsilon);  kernel' = kernel * scale;  bias' = beta + (bias - mean) * scale
 * the following ReLU(max_value=6) becomes the fused activation `relu6` (XNNPACK's output clamp), and ZeroPadding2D is
 * replaced by the conv's own padding when it equals TensorFlow's 'same' padding (it does for all five layers of
 * MobileNetV2 at 224x224: ((0,1),(0,1)) before a stride-2 3x3 conv on an even size).
 * MobileNetV2: 162 layers -> 52 fused convs + 10 adds + pooling + head.
 */
import type { LayersModel, SymbolicTensor } from "@tensorflow/tfjs-layers";
import type { Tensor, Tensor4D } from "@tensorflow/tfjs-core";
import type { Tfjs } from "../../workers/inference/tfjs-wasm";

type Activation = "linear" | "relu" | "relu6";

type Step =
  | { kind: "input"; out: string }
  | { kind: "conv"; out: string; input: string; depthwise: boolean; filter: Tensor; bias: Tensor | null;
      strides: [number, number]; pad: "same" | "valid"; activation: Activation }
  | { kind: "pad"; out: string; input: string; paddings: [number, number][] }
  | { kind: "batchNorm"; out: string; input: string; mean: Tensor; variance: Tensor; offset: Tensor | null; scale: Tensor | null; epsilon: number }
  | { kind: "activation"; out: string; input: string; activation: Activation }
  | { kind: "add"; out: string; inputs: string[] }
  | { kind: "globalAverage"; out: string; input: string; keepDims: boolean }
  | { kind: "dense"; out: string; input: string; kernel: Tensor; bias: Tensor | null; activation: Activation | "softmax" }
  | { kind: "identity"; out: string; input: string };

export interface FusedExecutor {
  /** x: [batch, 224, 224, 3] -> the output of `outputLayer`. */
  run(x: Tensor4D): Tensor;
  /** Number of tfjs ops one run issues (roughly kernels per image). */
  stepCount: number;
  dispose(): void;
}

interface LayerLike {
  name: string;
  getClassName(): string;
  getConfig(): Record<string, unknown>;
  getWeights(): Tensor[];
  inboundNodes: { inboundLayers: LayerLike[] }[];
  inputSpec?: unknown;
  input: SymbolicTensor | SymbolicTensor[];
}

/** Builds the fused step list for `model` up to `outputLayer` (a layer name). Weight tensors are new and owned here. */
export function buildFusedExecutor(tf: Tfjs, model: LayersModel, outputLayer: string): FusedExecutor {
  const layers = model.layers as unknown as LayerLike[];
  const byName = new Map(layers.map((layer) => [layer.name, layer]));
  const inputsOf = (layer: LayerLike) => (layer.inboundNodes[0]?.inboundLayers ?? []).map((l) => l.name);

  // Only the layers the requested output depends on.
  const needed = new Set<string>();
  const stack = [outputLayer];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (needed.has(name)) continue;
    needed.add(name);
    stack.push(...inputsOf(byName.get(name)!));
  }
  const consumers = new Map<string, string[]>();
  for (const layer of layers) {
    if (!needed.has(layer.name)) continue;
    for (const input of inputsOf(layer)) consumers.set(input, [...(consumers.get(input) ?? []), layer.name]);
  }
  /** The single consumer of `name` if it is of class `className` and `name` is not itself the requested output. */
  const soleConsumer = (name: string, className: string): LayerLike | null => {
    const next = consumers.get(name) ?? [];
    if (name === outputLayer || next.length !== 1) return null;
    const layer = byName.get(next[0]!)!;
    return layer.getClassName() === className ? layer : null;
  };

  const steps: Step[] = [];
  const alias = new Map<string, string>(); // layer name -> name of the step output that holds its value
  const resolve = (name: string) => alias.get(name) ?? name;
  const pendingPads = new Map<string, { input: string; paddings: [number, number][] }>();
  const owned: Tensor[] = [];
  const keep = <T extends Tensor>(t: T) => (owned.push(t), t);

  for (const layer of layers) {
    if (!needed.has(layer.name) || alias.has(layer.name)) continue;
    const config = layer.getConfig();
    const [firstInput] = inputsOf(layer);
    switch (layer.getClassName()) {
      case "InputLayer":
        steps.push({ kind: "input", out: layer.name });
        break;
      case "ZeroPadding2D": {
        // Deferred: a following 'valid' conv may absorb it as 'same' padding.
        const paddings = config.padding as [number, number][];
        pendingPads.set(layer.name, { input: resolve(firstInput!), paddings });
        break;
      }
      case "Conv2D":
      case "DepthwiseConv2D": {
        const depthwise = layer.getClassName() === "DepthwiseConv2D";
        const weights = layer.getWeights();
        let filter = weights[0]!;
        let bias: Tensor | null = config.useBias ? weights[1]! : null;
        let pad = config.padding as "same" | "valid";
        let input = resolve(firstInput!);
        const strides = config.strides as [number, number];
        const kernelSize = config.kernelSize as [number, number];
        const padded = pendingPads.get(firstInput!);
        if (padded) {
          const inputShape = (byName.get(firstInput!)!.input as SymbolicTensor).shape as number[];
          if (pad === "valid" && samePaddingEquals(inputShape, kernelSize, strides, padded.paddings)) {
            pad = "same";
            input = padded.input;
          } else {
            materialisePad(firstInput!);
          }
        }
        let activation: Activation = (config.activation as string) === "linear" ? "linear" : (config.activation as Activation);
        let out = layer.name;
        const batchNorm = activation === "linear" ? soleConsumer(layer.name, "BatchNormalization") : null;
        if (batchNorm) {
          const folded = foldBatchNorm(tf, filter, bias, batchNorm, depthwise);
          filter = folded.filter;
          bias = folded.bias;
          alias.set(batchNorm.name, batchNorm.name);
          out = batchNorm.name;
          alias.set(layer.name, out);
          const relu = soleConsumer(batchNorm.name, "ReLU");
          const reluActivation = relu ? activationOfReLU(relu) : null;
          if (relu && reluActivation) {
            activation = reluActivation;
            alias.set(batchNorm.name, relu.name);
            alias.set(relu.name, relu.name);
            alias.set(layer.name, relu.name);
            out = relu.name;
          }
        }
        steps.push({ kind: "conv", out, input, depthwise, filter: keep(filter), bias: bias && keep(bias), strides, pad, activation });
        break;
      }
      case "BatchNormalization": {
        const [gamma, beta, mean, variance] = batchNormWeights(layer);
        steps.push({ kind: "batchNorm", out: layer.name, input: resolve(firstInput!), mean: keep(mean), variance: keep(variance),
          offset: beta && keep(beta), scale: gamma && keep(gamma), epsilon: config.epsilon as number });
        break;
      }
      case "ReLU": {
        const activation = activationOfReLU(layer);
        if (!activation) throw new Error(`unsupported ReLU config in ${layer.name}`);
        steps.push({ kind: "activation", out: layer.name, input: resolve(firstInput!), activation });
        break;
      }
      case "Add":
        steps.push({ kind: "add", out: layer.name, inputs: inputsOf(layer).map(resolve) });
        break;
      case "GlobalAveragePooling2D":
        steps.push({ kind: "globalAverage", out: layer.name, input: resolve(firstInput!), keepDims: false });
        break;
      case "AveragePooling2D": {
        // MobileNetV2's head pools 7x7 with a 7x7 window: a global average that keeps [batch, 1, 1, C].
        const inputShape = (layer.input as SymbolicTensor).shape as number[];
        const pool = config.poolSize as [number, number];
        if (pool[0] !== inputShape[1] || pool[1] !== inputShape[2]) throw new Error(`${layer.name}: only global pooling supported`);
        steps.push({ kind: "globalAverage", out: layer.name, input: resolve(firstInput!), keepDims: true });
        break;
      }
      case "Flatten":
        steps.push({ kind: "identity", out: layer.name, input: resolve(firstInput!) }); // reshape applied at run
        break;
      case "Dropout":
        alias.set(layer.name, resolve(firstInput!));
        break;
      case "Dense": {
        const [kernel, bias] = layer.getWeights();
        steps.push({ kind: "dense", out: layer.name, input: resolve(firstInput!), kernel: keep(tf.clone(kernel!)),
          bias: config.useBias ? keep(tf.clone(bias!)) : null, activation: config.activation as Activation | "softmax" });
        break;
      }
      default:
        throw new Error(`fused executor: unsupported layer ${layer.getClassName()} (${layer.name})`);
    }
  }

  function materialisePad(name: string) {
    const pending = pendingPads.get(name)!;
    steps.push({ kind: "pad", out: name, input: pending.input, paddings: pending.paddings });
    pendingPads.delete(name);
  }
  if (pendingPads.has(outputLayer)) materialisePad(outputLayer);
  const finalName = resolve(outputLayer);

  return {
    stepCount: steps.filter((s) => s.kind !== "input" && s.kind !== "identity").length,
    run(x: Tensor4D): Tensor {
      return tf.tidy(() => {
        const values = new Map<string, Tensor>();
        const get = (name: string) => values.get(name)!;
        for (const step of steps) {
          switch (step.kind) {
            case "input": values.set(step.out, x); break;
            case "pad": values.set(step.out, tf.pad(get(step.input), [[0, 0], ...step.paddings, [0, 0]])); break;
            case "conv": {
              const args = { x: get(step.input) as Tensor4D, strides: step.strides, pad: step.pad, bias: step.bias ?? undefined,
                activation: step.activation };
              values.set(step.out, step.depthwise
                ? tf.fused.depthwiseConv2d({ ...args, filter: step.filter as Tensor4D })
                : tf.fused.conv2d({ ...args, filter: step.filter as Tensor4D }));
              break;
            }
            case "batchNorm":
              values.set(step.out, tf.batchNorm(get(step.input), step.mean, step.variance, step.offset ?? undefined,
                step.scale ?? undefined, step.epsilon));
              break;
            case "activation":
              values.set(step.out, step.activation === "relu6" ? tf.relu6(get(step.input)) : tf.relu(get(step.input)));
              break;
            case "add": values.set(step.out, tf.addN(step.inputs.map(get))); break;
            case "globalAverage": values.set(step.out, tf.mean(get(step.input), [1, 2], step.keepDims)); break;
            case "identity": {
              const v = get(step.input);
              values.set(step.out, tf.reshape(v, [v.shape[0]!, -1]));
              break;
            }
            case "dense": {
              const input = get(step.input);
              const flat = input.rank === 2 ? input : tf.reshape(input, [input.shape[0]!, -1]);
              const fusedActivation = step.activation === "softmax" ? "linear" : step.activation;
              const y = tf.fused.matMul({ a: flat as never, b: step.kernel as never, bias: step.bias ?? undefined, activation: fusedActivation });
              values.set(step.out, step.activation === "softmax" ? tf.softmax(y) : y);
              break;
            }
          }
        }
        return get(finalName);
      });
    },
    dispose() {
      for (const t of owned) t.dispose();
    },
  };
}

/** True when TensorFlow's 'same' padding for this conv pads exactly `paddings` ([[top, bottom], [left, right]]). */
function samePaddingEquals(inputShape: number[], kernel: [number, number], strides: [number, number], paddings: [number, number][]): boolean {
  for (let axis = 0; axis < 2; axis++) {
    const size = inputShape[axis + 1]!;
    const out = Math.ceil(size / strides[axis]!);
    const total = Math.max((out - 1) * strides[axis]! + kernel[axis]! - size, 0);
    const before = Math.floor(total / 2);
    if (paddings[axis]![0] !== before || paddings[axis]![1] !== total - before) return false;
  }
  return true;
}

function activationOfReLU(layer: LayerLike): Activation | null {
  const config = layer.getConfig();
  if ((config.negativeSlope ?? 0) !== 0 || (config.threshold ?? 0) !== 0) return null;
  if (config.maxValue == null) return "relu";
  return config.maxValue === 6 ? "relu6" : null;
}

/** [gamma | null, beta | null, movingMean, movingVariance], following the layer's center/scale flags. */
function batchNormWeights(layer: LayerLike): [Tensor | null, Tensor | null, Tensor, Tensor] {
  const config = layer.getConfig();
  const weights = [...layer.getWeights()];
  const gamma = config.scale ? weights.shift()! : null;
  const beta = config.center ? weights.shift()! : null;
  return [gamma, beta, weights[0]!, weights[1]!];
}

function foldBatchNorm(tf: Tfjs, filter: Tensor, bias: Tensor | null, batchNorm: LayerLike, depthwise: boolean) {
  return tf.tidy(() => {
    const [gamma, beta, mean, variance] = batchNormWeights(batchNorm);
    const epsilon = batchNorm.getConfig().epsilon as number;
    if (depthwise && filter.shape[3] !== 1) throw new Error("folding needs depth_multiplier 1");
    let scale = tf.rsqrt(tf.add(variance, epsilon));
    if (gamma) scale = tf.mul(scale, gamma);
    // conv kernel [kh, kw, in, out]: scale the out axis. depthwise kernel [kh, kw, in, multiplier=1]: scale the in axis.
    const channels = scale.shape[0]!;
    const scaledFilter = depthwise ? tf.mul(filter, tf.reshape(scale, [1, 1, channels, 1])) : tf.mul(filter, scale);
    let foldedBias = tf.mul(tf.sub(bias ?? tf.zerosLike(mean), mean), scale);
    if (beta) foldedBias = tf.add(foldedBias, beta);
    return { filter: scaledFilter, bias: foldedBias };
  });
}
