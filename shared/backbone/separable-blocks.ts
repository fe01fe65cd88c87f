/**
 * Partial fine-tuning (`fine_tune: {"blocks": N}`): the last N depthwise-separable blocks of a MobileNet v1, found in
 * its Keras model.json, with batch normalisation folded into the convolutions, as the runner trains them, the model
 * artifact stores them and the edge runs them.
 *
 * A block (Keras names, K = 13 for the last): conv_dw_K (3x3 depthwise, 'same', stride 1 or 2, no bias) → conv_dw_K_bn
 * → conv_dw_K_relu (relu6) → conv_pw_K (1x1) → conv_pw_K_bn → conv_pw_K_relu (relu6). Folded, each block is two
 * fused convolutions with a bias and relu6: exactly what tfjs' `fused.depthwiseConv2d` / `fused.conv2d` compute, so
 * `runBlocks` below is one code path for the runner (Node, tfjs-wasm) and the edge (workerd, tfjs-wasm).
 *
 * The backbone is cut at the input of the first fine-tuned block (the "cut layer"); everything before it stays frozen
 * and shared by every model. The embedding of a fine-tuned model is the last block's output, globally average-pooled.
 *
 * Sizes for the default builtin MobileNet v1 0.75 at 224x224 (float32):
 *   block 13: input 7x7x768 (the cut activation: 150,528 bytes per image); conv_dw_13 3x3x768 + 768 bias,
 *             conv_pw_13 768x768 + 768 bias = 598,272 floats = 2.39 MB.
 *   block 12: input 14x14x384 (301,056 bytes per image), stride 2; conv_dw_12 3x3x384 + 384, conv_pw_12 384x768 + 768
 *             = 299,520 floats = 1.20 MB. Two blocks: 3.59 MB per model.
 */
import { decodeFloatWeights, getInputShape, getLayerRecords, inboundLayerNames } from "./model-json";
import type { LayerRecord, LayersModelJson } from "./types";

type TfjsCore = typeof import("@tensorflow/tfjs-core");
type Tensor = import("@tensorflow/tfjs-core").Tensor;
type Tensor4D = import("@tensorflow/tfjs-core").Tensor4D;
type Tensor2D = import("@tensorflow/tfjs-core").Tensor2D;

/** Most blocks a job may fine-tune (the API's `fine_tune.blocks` is 1 or 2). */
export const MAX_FINE_TUNE_BLOCKS = 2;

/** One depthwise-separable block with batch normalisation folded in; `[h, w, c]` shapes are per image (NHWC). */
export interface SeparableBlock {
  /** The Keras block number ("13" for conv_dw_13 / conv_pw_13). */
  name: string;
  inputShape: [number, number, number];
  outputShape: [number, number, number];
  /** Depthwise kernel size `[kh, kw]` and stride (the same on both axes); padding is TensorFlow's 'same'. */
  kernelSize: [number, number];
  stride: number;
  /** Shape [kh, kw, c, 1] (tfjs' depthwise layout). */
  depthwiseKernel: Float32Array;
  /** Shape [c]. */
  depthwiseBias: Float32Array;
  /** Shape [1, 1, c, k] = [c, k] row-major. */
  pointwiseKernel: Float32Array;
  /** Shape [k]. */
  pointwiseBias: Float32Array;
}

/** The fine-tuned part of a model: where the frozen trunk is cut and the blocks that follow, in order. */
export interface BlockStack {
  /** The layer whose output the first block reads (the trunk is run up to here). */
  cutLayer: string;
  /** The layer whose output the last block computes (its pooled output is the embedding). */
  outputLayer: string;
  blocks: SeparableBlock[];
}

/** The backbone has no blocks edgetune knows how to fine-tune, or fewer than asked. */
export class UnknownBlocksError extends Error {
  override name = "UnknownBlocksError";
}

/** float32 values in one block. */
export const blockFloatCount = (block: SeparableBlock) => block.depthwiseKernel.length + block.depthwiseBias.length + block.pointwiseKernel.length + block.pointwiseBias.length;
/** Embedding length of a stack: the last block's output channels. */
export const stackOutputDim = (stack: BlockStack) => stack.blocks[stack.blocks.length - 1]!.outputShape[2];

/**
 * The last `count` depthwise-separable blocks of a Keras MobileNet v1 (`conv_dw_K` ... `conv_pw_K_relu`), batch
 * normalisation folded in (float64, rounded once to float32, as the edge's fused compiler folds it).
 * @throws UnknownBlocksError when the model is not built of such blocks (or has fewer than `count`).
 */
export function extractBlocks(modelJson: LayersModelJson, weightData: ArrayBuffer, count: number, inputSize?: [number, number]): BlockStack {
  const layout = findBlockLayout(modelJson, count);
  const shapes = layerShapes(modelJson, layout.cutLayer, inputSize);
  const weights = decodeFloatWeights(modelJson, weightData);
  const take = (name: string) => {
    const found = weights.get(name);
    if (!found) throw new UnknownBlocksError(`weight ${name} is missing`);
    return found.values;
  };
  const bn = (layer: LayerRecord) => ({
    gamma: layer.config.scale === false ? null : take(`${layer.name}/gamma`),
    beta: layer.config.center === false ? null : take(`${layer.name}/beta`),
    mean: take(`${layer.name}/moving_mean`),
    variance: take(`${layer.name}/moving_variance`),
    epsilon: (layer.config.epsilon as number | undefined) ?? 1e-3,
  });
  let shape = shapes.get(layout.cutLayer)!;
  const blocks = layout.blocks.map(({ number, dw, dwBn, pw, pwBn }): SeparableBlock => {
    const [h, w, c] = shape;
    const kernelSize = dw.config.kernel_size as [number, number];
    const stride = (dw.config.strides as [number, number])[0];
    const k = pw.config.filters as number;
    const depthwise = foldBatchNorm(take(`${dw.name}/depthwise_kernel`), bn(dwBn));
    const pointwise = foldBatchNorm(take(`${pw.name}/kernel`), bn(pwBn));
    if (depthwise.kernel.length !== kernelSize[0] * kernelSize[1] * c || pointwise.kernel.length !== c * k) {
      throw new UnknownBlocksError(`block ${number}: kernel sizes do not match ${h}x${w}x${c} → ${k}`);
    }
    const outputShape: [number, number, number] = [Math.ceil(h / stride), Math.ceil(w / stride), k];
    const block: SeparableBlock = {
      name: number, inputShape: shape, outputShape, kernelSize, stride,
      depthwiseKernel: depthwise.kernel, depthwiseBias: depthwise.bias, pointwiseKernel: pointwise.kernel, pointwiseBias: pointwise.bias,
    };
    shape = outputShape;
    return block;
  });
  return { cutLayer: layout.cutLayer, outputLayer: layout.outputLayer, blocks };
}

interface BlockLayers {
  number: string;
  dw: LayerRecord;
  dwBn: LayerRecord;
  pw: LayerRecord;
  pwBn: LayerRecord;
}

/**
 * Names and layers of the last `count` blocks, checked: each layer reads the one before, every activation is relu6,
 * convs have no bias and 'same' padding, the depthwise multiplier is 1, the pointwise kernel is 1x1 stride 1.
 */
export function findBlockLayout(modelJson: LayersModelJson, count: number): { cutLayer: string; outputLayer: string; blocks: BlockLayers[] } {
  if (!Number.isInteger(count) || count < 1 || count > MAX_FINE_TUNE_BLOCKS) throw new UnknownBlocksError(`blocks must be 1 to ${MAX_FINE_TUNE_BLOCKS}, got ${count}`);
  let records: LayerRecord[];
  try {
    records = getLayerRecords(modelJson);
  } catch {
    throw new UnknownBlocksError("not a Keras layers model");
  }
  const byName = new Map(records.map((r) => [r.name, r]));
  const numbers = records.map((r) => /^conv_dw_(\d+)$/.exec(r.name)?.[1]).filter((n): n is string => n !== undefined).map(Number).sort((a, b) => a - b);
  const last = numbers[numbers.length - 1];
  if (last === undefined) throw new UnknownBlocksError("the model has no MobileNet v1 blocks (layers conv_dw_K ... conv_pw_K_relu)");
  if (numbers.length < count) throw new UnknownBlocksError(`the model has ${numbers.length} block(s); ${count} asked`);
  const layer = (name: string, className: string, reads: string): LayerRecord => {
    const record = byName.get(name);
    if (!record || record.class_name !== className) throw new UnknownBlocksError(`expected a ${className} layer named ${name}`);
    const inbound = inboundLayerNames(record);
    if (inbound.length !== 1 || inbound[0] !== reads) throw new UnknownBlocksError(`${name} must read ${reads}`);
    if (record.config.data_format !== undefined && record.config.data_format !== "channels_last") throw new UnknownBlocksError(`${name}: data_format ${String(record.config.data_format)}`);
    return record;
  };
  const relu6 = (name: string, reads: string) => {
    const record = byName.get(name);
    const config = record?.config as Record<string, unknown> | undefined;
    const ok = record && ((record.class_name === "Activation" && config!.activation === "relu6") || (record.class_name === "ReLU" && config!.max_value === 6 && !config!.negative_slope && !config!.threshold));
    if (!ok) throw new UnknownBlocksError(`expected a relu6 activation named ${name}`);
    layer(name, record.class_name, reads);
  };
  const first = last - count + 1;
  const firstDw = byName.get(`conv_dw_${first}`);
  if (!firstDw) throw new UnknownBlocksError(`no layer conv_dw_${first}`);
  const cutLayer = inboundLayerNames(firstDw)[0]!;
  let reads = cutLayer;
  const blocks: BlockLayers[] = [];
  for (let k = first; k <= last; k++) {
    const dw = layer(`conv_dw_${k}`, "DepthwiseConv2D", reads);
    const dwConfig = dw.config as Record<string, any>;
    if (dwConfig.padding !== "same" || (dwConfig.depth_multiplier ?? 1) !== 1 || dwConfig.use_bias || (dwConfig.activation ?? "linear") !== "linear") throw new UnknownBlocksError(`conv_dw_${k}: only 'same' padding, depth multiplier 1, no bias, linear activation`);
    const strides = dwConfig.strides as number[];
    if (strides[0] !== strides[1] || ![1, 2].includes(strides[0]!) || (dwConfig.dilation_rate ?? [1, 1]).some((d: number) => d !== 1)) throw new UnknownBlocksError(`conv_dw_${k}: strides ${JSON.stringify(strides)}`);
    const dwBn = layer(`conv_dw_${k}_bn`, "BatchNormalization", dw.name);
    relu6(`conv_dw_${k}_relu`, dwBn.name);
    const pw = layer(`conv_pw_${k}`, "Conv2D", `conv_dw_${k}_relu`);
    const pwConfig = pw.config as Record<string, any>;
    if (pwConfig.use_bias || (pwConfig.activation ?? "linear") !== "linear" || pwConfig.kernel_size?.join() !== "1,1" || pwConfig.strides?.join() !== "1,1" || (pwConfig.groups ?? 1) !== 1) throw new UnknownBlocksError(`conv_pw_${k}: only a 1x1, stride 1, bias-free, linear convolution`);
    const pwBn = layer(`conv_pw_${k}_bn`, "BatchNormalization", pw.name);
    relu6(`conv_pw_${k}_relu`, pwBn.name);
    blocks.push({ number: String(k), dw, dwBn, pw, pwBn });
    reads = `conv_pw_${k}_relu`;
  }
  return { cutLayer, outputLayer: reads, blocks };
}

/** `[h, w, c]` of every layer up to `upTo`, for the layer types a MobileNet trunk uses (same/valid convs, pads, BN, activations). */
function layerShapes(modelJson: LayersModelJson, upTo: string, inputSize?: [number, number]): Map<string, [number, number, number]> {
  const shapes = new Map<string, [number, number, number]>();
  for (const record of getLayerRecords(modelJson)) {
    const config = record.config as Record<string, any>;
    const from = shapes.get(inboundLayerNames(record)[0] ?? "");
    let shape: [number, number, number] | undefined;
    switch (record.class_name) {
      case "InputLayer":
        shape = getInputShape(modelJson, inputSize);
        break;
      case "Conv2D":
      case "DepthwiseConv2D": {
        const [kh, kw] = config.kernel_size as [number, number];
        const [sh, sw] = config.strides as [number, number];
        const out = (size: number, kernel: number, stride: number) => (config.padding === "same" ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1);
        if (from) shape = [out(from[0], kh, sh), out(from[1], kw, sw), record.class_name === "Conv2D" ? config.filters : from[2]];
        break;
      }
      case "ZeroPadding2D": {
        const p = config.padding as [[number, number], [number, number]];
        if (from && Array.isArray(p?.[0])) shape = [from[0] + p[0][0] + p[0][1], from[1] + p[1][0] + p[1][1], from[2]];
        break;
      }
      case "BatchNormalization":
      case "Activation":
      case "ReLU":
      case "Dropout":
        shape = from;
        break;
    }
    if (!shape) throw new UnknownBlocksError(`cannot follow shapes through ${record.class_name} ${record.name}`);
    shapes.set(record.name, shape);
    if (record.name === upTo) return shapes;
  }
  throw new UnknownBlocksError(`layer ${upTo} not found`);
}

/** `y = (conv(x) - mean) * gamma / sqrt(variance + epsilon) + beta` folded into a bias-free conv, in float64; channel = flat index % channels. */
function foldBatchNorm(kernel: Float32Array, bn: { gamma: Float32Array | null; beta: Float32Array | null; mean: Float32Array; variance: Float32Array; epsilon: number }): { kernel: Float32Array; bias: Float32Array } {
  const channels = bn.mean.length;
  const scale = new Float64Array(channels);
  const bias = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = (bn.gamma ? bn.gamma[c]! : 1) / Math.sqrt(bn.variance[c]! + bn.epsilon);
    bias[c] = (bn.beta ? bn.beta[c]! : 0) - bn.mean[c]! * scale[c]!;
  }
  const folded = new Float32Array(kernel.length);
  for (let i = 0; i < kernel.length; i++) folded[i] = kernel[i]! * scale[i % channels]!;
  return { kernel: folded, bias };
}

// ---------------------------------------------------------------- running the blocks (tfjs, runner and edge)

/** A block's weights as tfjs tensors (held in the backend until `disposeBlockTensors`). */
export interface BlockTensors {
  block: SeparableBlock;
  depthwiseKernel: Tensor4D;
  depthwiseBias: Tensor;
  pointwiseKernel: Tensor4D;
  pointwiseBias: Tensor;
}

export function blockTensors(tf: TfjsCore, stack: BlockStack): BlockTensors[] {
  return stack.blocks.map((block) => {
    const [kh, kw] = block.kernelSize;
    const [, , c] = block.inputShape;
    const k = block.outputShape[2];
    return {
      block,
      depthwiseKernel: tf.tensor4d(block.depthwiseKernel, [kh, kw, c, 1]),
      depthwiseBias: tf.tensor1d(block.depthwiseBias),
      pointwiseKernel: tf.tensor4d(block.pointwiseKernel, [1, 1, c, k]),
      pointwiseBias: tf.tensor1d(block.pointwiseBias),
    };
  });
}

export function disposeBlockTensors(tensors: BlockTensors[]): void {
  for (const t of tensors) for (const tensor of [t.depthwiseKernel, t.depthwiseBias, t.pointwiseKernel, t.pointwiseBias]) tensor.dispose();
}

/**
 * The blocks on cut activations, then global average pooling: `[n, h, w, c]` → `[n, k]` embeddings. Fused tfjs ops
 * (conv + bias + relu6 in one kernel), the same calls in Node and in workerd.
 */
export function runBlocks(tf: TfjsCore, tensors: BlockTensors[], cut: Tensor4D): Tensor2D {
  return tf.tidy(() => {
    let x = cut;
    for (const t of tensors) {
      x = tf.fused.depthwiseConv2d({ x, filter: t.depthwiseKernel, strides: t.block.stride, pad: "same", bias: t.depthwiseBias, activation: "relu6" });
      x = tf.fused.conv2d({ x, filter: t.pointwiseKernel, strides: 1, pad: "same", bias: t.pointwiseBias, activation: "relu6" });
    }
    return tf.mean(x, [1, 2]) as Tensor2D;
  });
}
