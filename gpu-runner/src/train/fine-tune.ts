/**
 * Partial fine-tuning on cached cut activations (`fine_tune: {"blocks": N}`): the last N depthwise-separable blocks
 * of the backbone (shared/backbone/separable-blocks.ts) are trained together with a linear softmax head on the
 * activations at the cut, which were computed once by the frozen trunk and cached like embeddings, so no backbone
 * pass below the cut runs here, in any epoch or on any retrain.
 *
 * Backend: tfjs-wasm. It has no gradient kernels for depthwise convolutions (nor Conv2DBackpropFilter: FACTS.md), so
 * the trained graph writes the depthwise conv as a sum of kh·kw shifted slices times per-channel weights (pad, slice,
 * reshape, mul, add: all differentiable on WASM) and the 1x1 conv as a matrix product (XNNPACK); the pure-JS cpu
 * backend has the depthwise kernels but ran about 0.5 img/s forward for a whole MobileNet (FACTS), far too slow.
 * `runBlocks` (fused tfjs ops, what the edge runs) gives the served embeddings; tests/node/fine-tune.test.ts checks
 * that the trained graph computes the same function.
 *
 * Steps:
 * 1. The job's training rows are split (stratified, seeded) into fit and holdout rows: validation images are never
 *    touched here.
 * 2. A linear head is fit by L-BFGS on the pretrained blocks' pooled output of the fit rows (head-only: "epoch 0").
 * 3. Adam over shuffled mini-batches of the fit rows, blocks at `BLOCK_LEARNING_RATE`, head at `HEAD_LEARNING_RATE`,
 *    label-smoothed cross-entropy; after each epoch, loss and accuracy on the holdout rows. Early stopping on holdout
 *    loss (patience `PATIENCE`, at most `MAX_EPOCHS`); the best epoch's block weights are kept (epoch 0 = unchanged).
 * Deterministic for a seed on one backend: the split, the shuffles and the head's L-BFGS start come from the seed.
 */
import type * as tfjs from "@tensorflow/tfjs";
import { createRandom, deriveSeed } from "../../../shared/random";
import { splitStratified } from "../../../shared/split";
import { blockTensors, disposeBlockTensors, runBlocks, type BlockStack, type SeparableBlock } from "../../../shared/backbone/separable-blocks";
import { trainHeadLbfgs } from "./lbfgs-head";

type Tf = typeof tfjs;

/**
 * Epoch bounds: one epoch over flowers5's 240 fit images took about 30 s for one block, 70 s for two, on one WASM
 * thread of the loaded 2-core dev box (bench/train/fine-tune.ts); early stopping ended both after 4 epochs.
 */
export const MAX_EPOCHS = 15;
export const PATIENCE = 3;
/** Small steps for pretrained convolutions, larger for the head (it starts from its L-BFGS fit). */
export const BLOCK_LEARNING_RATE = 1e-4;
export const HEAD_LEARNING_RATE = 1e-3;
const BATCH_SIZE = 32;
/** Share of each class's training rows held out for early stopping and the head-only comparison. */
export const HOLDOUT_FRACTION = 0.2;

export interface FineTuneInput {
  stack: BlockStack;
  /** Cut activations of every item, [items, h, w, c] flattened (NHWC). */
  activations: Float32Array;
  labels: Int32Array;
  classCount: number;
  /** The job's training rows; validation rows are not passed here at all. */
  trainIndex: number[];
  seed: number;
  labelSmoothing: number;
}

export interface FineTuneEpoch {
  epoch: number;
  train_loss: number;
  holdout_loss: number;
  holdout_accuracy: number;
}

export interface FineTuneResult {
  stack: BlockStack;
  epochs: FineTuneEpoch[];
  /** 0 when no epoch beat the pretrained blocks on holdout loss (the stack is then the pretrained one). */
  bestEpoch: number;
  /** Holdout accuracy of a head alone on the pretrained blocks, and of the fine-tuned blocks + head (best epoch). */
  holdoutAccuracyHeadOnly: number;
  holdoutAccuracyFineTuned: number;
  fitCount: number;
  holdoutCount: number;
  trainMs: number;
}

/** Pooled block outputs `[rows.length, k]` of the given rows, with the fused ops the edge runs. */
export function embedWithBlocks(tf: Tf, stack: BlockStack, activations: Float32Array, rows: readonly number[], chunkRows = 64): Float32Array {
  const [h, w, c] = stack.blocks[0]!.inputShape;
  const per = h * w * c;
  const k = stack.blocks[stack.blocks.length - 1]!.outputShape[2];
  const out = new Float32Array(rows.length * k);
  const tensors = blockTensors(tf, stack);
  try {
    for (let start = 0; start < rows.length; start += chunkRows) {
      const chunk = rows.slice(start, start + chunkRows);
      const batch = new Float32Array(chunk.length * per);
      chunk.forEach((row, i) => batch.set(activations.subarray(row * per, (row + 1) * per), i * per));
      const input = tf.tensor4d(batch, [chunk.length, h, w, c]);
      const pooled = runBlocks(tf, tensors, input);
      out.set(pooled.dataSync() as Float32Array, start * k);
      input.dispose();
      pooled.dispose();
    }
  } finally {
    disposeBlockTensors(tensors);
  }
  return out;
}

export interface BlockVariables {
  block: SeparableBlock;
  /** [kh * kw, c] */
  depthwiseKernel: tfjs.Variable;
  depthwiseBias: tfjs.Variable;
  /** [c, k] */
  pointwiseKernel: tfjs.Variable;
  pointwiseBias: tfjs.Variable;
}

/**
 * TensorFlow 'same' depthwise convolution as kh·kw shifted, strided slices times per-channel weights: differentiable
 * with the kernels tfjs-wasm has. `x` [n, h, w, c], kernel [kh * kw, c] → [n, ceil(h / s), ceil(w / s), c].
 */
export function depthwiseSameBySlices(tf: Tf, x: tfjs.Tensor4D, kernel: tfjs.Tensor2D, kernelSize: [number, number], stride: number): tfjs.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [kh, kw] = kernelSize;
  const outH = Math.ceil(h / stride);
  const outW = Math.ceil(w / stride);
  const padH = Math.max((outH - 1) * stride + kh - h, 0);
  const padW = Math.max((outW - 1) * stride + kw - w, 0);
  const top = Math.floor(padH / 2);
  const left = Math.floor(padW / 2);
  // Enough trailing zeros that every shifted window of outH * stride rows exists (the extra rows are never read).
  const padded = tf.pad(x, [[0, 0], [top, kh - 1 + outH * stride - h - top], [left, kw - 1 + outW * stride - w - left], [0, 0]]);
  let sum: tfjs.Tensor4D | null = null;
  for (let dy = 0; dy < kh; dy++) {
    for (let dx = 0; dx < kw; dx++) {
      let window = tf.slice(padded, [0, dy, dx, 0], [n, outH * stride, outW * stride, c]);
      if (stride > 1) window = tf.reshape(tf.slice(tf.reshape(window, [n, outH, stride, outW, stride, c]), [0, 0, 0, 0, 0, 0], [n, outH, 1, outW, 1, c]), [n, outH, outW, c]);
      const term = tf.mul(window, tf.reshape(tf.slice(kernel, [dy * kw + dx, 0], [1, c]), [c])) as tfjs.Tensor4D;
      sum = sum ? (tf.add(sum, term) as tfjs.Tensor4D) : term;
    }
  }
  return sum!;
}

/** The blocks and pooling as a differentiable graph over `BlockVariables`: [n, h, w, c] → [n, k]. */
export function trainableForward(tf: Tf, variables: BlockVariables[], x: tfjs.Tensor4D): tfjs.Tensor2D {
  let current = x;
  for (const v of variables) {
    const depthwise = tf.relu6(tf.add(depthwiseSameBySlices(tf, current, v.depthwiseKernel as tfjs.Tensor2D, v.block.kernelSize, v.block.stride), v.depthwiseBias)) as tfjs.Tensor4D;
    const [n, h, w, c] = depthwise.shape;
    const k = v.block.outputShape[2];
    const pointwise = tf.relu6(tf.add(tf.matMul(tf.reshape(depthwise, [n * h * w, c]), v.pointwiseKernel as tfjs.Tensor2D), v.pointwiseBias));
    current = tf.reshape(pointwise, [n, h, w, k]);
  }
  return tf.mean(current, [1, 2]) as tfjs.Tensor2D;
}

export function variablesOf(tf: Tf, stack: BlockStack): BlockVariables[] {
  return stack.blocks.map((block) => {
    const [kh, kw] = block.kernelSize;
    const c = block.inputShape[2];
    const k = block.outputShape[2];
    return {
      block,
      depthwiseKernel: tf.variable(tf.tensor2d(block.depthwiseKernel, [kh * kw, c])),
      depthwiseBias: tf.variable(tf.tensor1d(block.depthwiseBias)),
      pointwiseKernel: tf.variable(tf.tensor2d(block.pointwiseKernel, [c, k])),
      pointwiseBias: tf.variable(tf.tensor1d(block.pointwiseBias)),
    };
  });
}

/** The variables' current values as a `BlockStack` (copies). */
function snapshot(stack: BlockStack, variables: BlockVariables[]): BlockStack {
  return {
    ...stack,
    blocks: variables.map((v) => ({
      ...v.block,
      depthwiseKernel: new Float32Array(v.depthwiseKernel.dataSync() as Float32Array),
      depthwiseBias: new Float32Array(v.depthwiseBias.dataSync() as Float32Array),
      pointwiseKernel: new Float32Array(v.pointwiseKernel.dataSync() as Float32Array),
      pointwiseBias: new Float32Array(v.pointwiseBias.dataSync() as Float32Array),
    })),
  };
}

/** Runs the steps of the file comment. `onEpoch` is awaited after each epoch (progress, cancellation). */
export async function fineTuneBlocks(tf: Tf, input: FineTuneInput, hooks: { onEpoch?(epoch: FineTuneEpoch): void | Promise<void>; signal?: AbortSignal } = {}): Promise<FineTuneResult> {
  const started = performance.now();
  const { stack, activations, labels, classCount } = input;
  const [h, w, c] = stack.blocks[0]!.inputShape;
  const per = h * w * c;
  const k = stack.blocks[stack.blocks.length - 1]!.outputShape[2];

  // 1. Fit / holdout rows, within the training rows only.
  const trainLabels = Int32Array.from(input.trainIndex, (row) => labels[row]!);
  const inner = splitStratified(trainLabels, HOLDOUT_FRACTION, deriveSeed(input.seed, 0x66742));
  const fitRows = inner.train.map((i) => input.trainIndex[i]!);
  const holdoutRows = inner.val.map((i) => input.trainIndex[i]!);
  if (fitRows.length === 0 || holdoutRows.length === 0) throw new Error(`fine-tuning needs training images in every class to hold some out (got ${fitRows.length} fit / ${holdoutRows.length} holdout)`);

  // 2. Head-only start: L-BFGS on the pretrained blocks' pooled output, standardisation folded into the weights.
  const pooledFit = embedWithBlocks(tf, stack, activations, fitRows);
  const pooledHoldout = embedWithBlocks(tf, stack, activations, holdoutRows);
  const pooled = new Float32Array((fitRows.length + holdoutRows.length) * k);
  pooled.set(pooledFit);
  pooled.set(pooledHoldout, pooledFit.length);
  const localLabels = Int32Array.from([...fitRows, ...holdoutRows], (row) => labels[row]!);
  const fitLocal = fitRows.map((_, i) => i);
  const holdoutLocal = holdoutRows.map((_, i) => fitRows.length + i);
  const headFit = await trainHeadLbfgs(
    { embeddings: pooled, dim: k, labels: localLabels, classCount, trainIndex: fitLocal, valIndex: holdoutLocal },
    { head: { type: "linear" }, keep: "last", hyperparameters: { epochs: 100, batch_size: 32, learning_rate: 0.001, optimizer: "adam", weight_decay: 0.1, label_smoothing: input.labelSmoothing, seed: input.seed, early_stopping_patience: 0, class_weighting: "balanced" } },
    {},
    { backend: "js" },
  );
  const layer = headFit.head.layers[0]!;
  const { mean, std } = headFit.head.standardize!;
  const foldedW = new Float32Array(k * classCount);
  const foldedB = Float32Array.from(layer.bias);
  for (let i = 0; i < k; i++) {
    for (let u = 0; u < classCount; u++) {
      const weight = layer.weights[i * classCount + u]! / std[i]!;
      foldedW[i * classCount + u] = weight;
      foldedB[u] -= mean[i]! * weight;
    }
  }

  const variables = variablesOf(tf, stack);
  const headW = tf.variable(tf.tensor2d(foldedW, [k, classCount]));
  const headB = tf.variable(tf.tensor1d(foldedB));
  const blockOptimizer = tf.train.adam(BLOCK_LEARNING_RATE);
  const headOptimizer = tf.train.adam(HEAD_LEARNING_RATE);
  const blockVars = variables.flatMap((v) => [v.depthwiseKernel, v.depthwiseBias, v.pointwiseKernel, v.pointwiseBias]);
  const gather = (rows: readonly number[]) => {
    const batch = new Float32Array(rows.length * per);
    rows.forEach((row, i) => batch.set(activations.subarray(row * per, (row + 1) * per), i * per));
    return batch;
  };
  const onehot = (rows: readonly number[], smoothing: number) => {
    const t = new Float32Array(rows.length * classCount).fill(smoothing / classCount);
    rows.forEach((row, i) => (t[i * classCount + labels[row]!] += 1 - smoothing));
    return t;
  };
  /** Loss and accuracy of the current variables on `rows` (no smoothing in accuracy; smoothed loss like training). */
  const measure = (rows: readonly number[]) => {
    let loss = 0;
    let correct = 0;
    for (let start = 0; start < rows.length; start += 64) {
      const chunk = rows.slice(start, start + 64);
      const [l, predicted] = tf.tidy(() => {
        const logits = tf.add(tf.matMul(trainableForward(tf, variables, tf.tensor4d(gather(chunk), [chunk.length, h, w, c])), headW), headB) as tfjs.Tensor2D;
        const losses = tf.losses.softmaxCrossEntropy(tf.tensor2d(onehot(chunk, input.labelSmoothing), [chunk.length, classCount]), logits, undefined, undefined, tf.Reduction.NONE);
        return [tf.sum(losses).dataSync()[0]!, tf.argMax(logits, 1).dataSync() as Int32Array] as const;
      });
      loss += l;
      chunk.forEach((row, i) => (correct += predicted[i] === labels[row] ? 1 : 0));
    }
    return { loss: loss / rows.length, accuracy: correct / rows.length };
  };

  const epochs: FineTuneEpoch[] = [];
  const baseline = measure(holdoutRows);
  let best = { epoch: 0, loss: baseline.loss, accuracy: baseline.accuracy, stack };
  const random = createRandom(deriveSeed(input.seed, 0x66743));
  try {
    for (let epoch = 1; epoch <= MAX_EPOCHS; epoch++) {
      hooks.signal?.throwIfAborted();
      const order = random.shuffleInPlace([...fitRows]);
      let trainLoss = 0;
      for (let start = 0; start < order.length; start += BATCH_SIZE) {
        const rows = order.slice(start, start + BATCH_SIZE);
        const x = tf.tensor4d(gather(rows), [rows.length, h, w, c]);
        const y = tf.tensor2d(onehot(rows, input.labelSmoothing), [rows.length, classCount]);
        const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(trainableForward(tf, variables, x), headW), headB) as tfjs.Tensor2D) as tfjs.Scalar, [...blockVars, headW, headB]);
        trainLoss += value.dataSync()[0]! * rows.length;
        blockOptimizer.applyGradients(blockVars.map((v) => ({ name: v.name, tensor: grads[v.name]! })));
        headOptimizer.applyGradients([headW, headB].map((v) => ({ name: v.name, tensor: grads[v.name]! })));
        tf.dispose([x, y, value, ...Object.values(grads)]);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const held = measure(holdoutRows);
      const record = { epoch, train_loss: trainLoss / order.length, holdout_loss: held.loss, holdout_accuracy: held.accuracy };
      epochs.push(record);
      await hooks.onEpoch?.(record);
      if (held.loss < best.loss) best = { epoch, loss: held.loss, accuracy: held.accuracy, stack: snapshot(stack, variables) };
      else if (epoch - best.epoch >= PATIENCE) break;
    }
  } finally {
    tf.dispose([...blockVars, headW, headB]);
    blockOptimizer.dispose();
    headOptimizer.dispose();
  }
  return {
    stack: best.stack,
    epochs,
    bestEpoch: best.epoch,
    holdoutAccuracyHeadOnly: baseline.accuracy,
    holdoutAccuracyFineTuned: best.accuracy,
    fitCount: fitRows.length,
    holdoutCount: holdoutRows.length,
    trainMs: Math.round(performance.now() - started),
  };
}
