/**
 * Trains a new classification head on cached backbone embeddings (the backbone itself stays frozen and is not
 * involved: this file only ever sees vectors).
 *
 * `trainHead(input, config, hooks)` is the entry point. By default (`config.solver` "lbfgs") it fits the head by
 * full-batch L-BFGS (lbfgs-head.ts): milliseconds for a few hundred embeddings, seconds for 20,000 on this box,
 * deterministic. `solver: "minibatch"` runs the tfjs mini-batch trainer this file implements:
 *
 * Steps, in the order the mini-batch trainer runs them:
 * 1. `computeStandardization` on the training rows; every row is standardised with it (the head stores it).
 * 2. `initializeLayers` from the seed: zeros for a linear head, He-uniform hidden / Glorot-uniform output for an MLP.
 * 3. Per epoch: a seeded shuffle, mini-batch steps (label-smoothed, class-weighted cross-entropy; dropout masks
 *    drawn from the same seeded stream), then one pass over the validation rows.
 * 4. Early stopping on validation loss; the best epoch's weights become the returned `Head`.
 *
 * Deterministic: all randomness (init, shuffles, dropout) comes from `createRandom(seed)`, never from tfjs's global
 * generator, so the same seed and inputs give the same weights and metrics on the same backend.
 */
import * as defaultTf from "@tensorflow/tfjs";
import type { DenseLayer, Head } from "../../../shared/head";
import { createRandom, type Random } from "../../../shared/random";
import type { HeadSpec, Hyperparameters } from "../../../shared/schemas";
import { trainHeadLbfgs } from "./lbfgs-head";
import { buildTargets, computeClassWeights, computeStandardization, gatherStandardizedRows, initializeLayers, validateInput } from "./train-head-common";

export { buildTargets, computeClassWeights, computeStandardization, initializeLayers } from "./train-head-common";

export type Tf = typeof defaultTf;

/** The hyperparameters training reads; a full job `Hyperparameters` object fits (split settings are ignored here). */
export type TrainingHyperparameters = Omit<Hyperparameters, "validation_fraction" | "use_dataset_split">;

/** What to train: same shape as a job's `config`, so `trainHead(input, job.config)` works. */
export interface HeadTrainingConfig {
  head: HeadSpec;
  hyperparameters: TrainingHyperparameters;
  /**
   * How to fit: "lbfgs" (full-batch quasi-Newton in plain TypeScript, lbfgs-head.ts; the default for every head)
   * or "minibatch" (tfjs, the configured optimizer over shuffled `batch_size` batches, dropout on; the trainer
   * before L-BFGS, kept for comparison in bench/train/head-speed.ts and for users who want dropout).
   */
  solver?: HeadSolver;
  /**
   * Which weights to return: "best_val" (default) the epoch with the lowest validation loss; "last" the final
   * weights, so the validation rows only report and never choose (cross-validation folds, and the refit of `auto`,
   * whose settings were already chosen on the training rows).
   */
  keep?: "best_val" | "last";
  /** Threads the L-BFGS solver's onnxruntime objective may use (default 1; the runner passes its --threads). */
  threads?: number;
}

export type HeadSolver = "lbfgs" | "minibatch";

export interface HeadTrainingInput {
  /** Shape [itemCount, dim], row-major: one embedding per dataset item. */
  embeddings: Float32Array;
  dim: number;
  /** Shape [itemCount]: class index per item, in [0, classCount). */
  labels: Int32Array;
  classCount: number;
  /** Rows of `embeddings` to train on (at least one). */
  trainIndex: number[];
  /** Rows to validate on (at least one; drives early stopping and the best-epoch choice). */
  valIndex: number[];
  /** Label names in class-index order, stored in the head; default "0", "1", .... */
  labelNames?: string[];
}

/**
 * One epoch's numbers, the type inferred from `epochMetricsSchema` (shared/schemas.ts, also what the API validates), Keras conventions:
 * - `train_loss` / `train_accuracy`: running means over the epoch's mini-batches, as trained (dropout on,
 *   class weights applied); `train_loss` is the label-smoothed cross-entropy without the weight-decay term.
 * - `val_loss` / `val_accuracy`: on the validation rows after the epoch, dropout off, no class weights, same
 *   label-smoothed cross-entropy, so the two losses are comparable. Early stopping watches `val_loss`.
 */
import type { EpochMetrics } from "../../../shared/schemas";
export type { EpochMetrics };

export interface TrainHeadHooks {
  /** Called after every epoch, awaited before the next one starts. */
  onEpoch?(metrics: EpochMetrics): void | Promise<void>;
  /** Polled after every epoch; `true` ends training (e.g. the job was cancelled). The best head so far is returned. */
  shouldStop?(): boolean;
}

/** "converged": L-BFGS could not lower the training objective any further (gradient ~0 or no decrease). */
export type TrainingStopReason = "completed" | "early_stopping" | "stopped_by_caller" | "converged";

export interface TrainHeadResult {
  head: Head;
  epochs: EpochMetrics[];
  /** 1-based epoch whose weights `head` holds (lowest `val_loss`; the earliest on ties). */
  bestEpoch: number;
  stopReason: TrainingStopReason;
}

/** Momentum of the "sgd" optimizer: plain SGD at Adam-sized learning rates barely moves a head in 100 epochs. */
const SGD_MOMENTUM = 0.9;
/** Validation rows per forward pass: bounds memory at 4096 × max(dim, hidden) floats. */
const VALIDATION_CHUNK_ROWS = 4096;

/**
 * Trains a head on precomputed embeddings.
 *
 * @param input embeddings [itemCount, dim], labels [itemCount] and the train/val row indices.
 * @param config head spec (linear or MLP) and hyperparameters.
 * @param hooks progress reporting and cancellation.
 * @param tf the tfjs module to train with (default: `@tensorflow/tfjs` with whatever backend is active).
 */
export async function trainHead(
  input: HeadTrainingInput,
  config: HeadTrainingConfig,
  hooks: TrainHeadHooks = {},
  tf: Tf = defaultTf,
): Promise<TrainHeadResult> {
  validateInput(input);
  if ((config.solver ?? DEFAULT_SOLVER) === "lbfgs") return trainHeadLbfgs(input, config, hooks, { threads: config.threads });
  return trainHeadMinibatch(input, config, hooks, tf);
}

/** See `HeadTrainingConfig.solver`; measured in bench/train/head-speed.ts. */
export const DEFAULT_SOLVER: HeadSolver = "lbfgs";

/** The tfjs mini-batch trainer (steps 1 to 4 of the file comment). */
async function trainHeadMinibatch(
  input: HeadTrainingInput,
  config: HeadTrainingConfig,
  hooks: TrainHeadHooks,
  tf: Tf,
): Promise<TrainHeadResult> {
  const params = config.hyperparameters;
  const { dim, classCount } = input;
  const labelNames = input.labelNames ?? Array.from({ length: classCount }, (_, index) => String(index));
  const random = createRandom(params.seed);
  const dropoutRate = config.head.type === "mlp" ? config.head.dropout : 0;
  const hiddenUnits = config.head.type === "mlp" ? config.head.hidden : [];

  const standardize = computeStandardization(input.embeddings, dim, input.trainIndex);
  const trainLabels = Int32Array.from(input.trainIndex, (row) => input.labels[row]!);
  const valLabels = Int32Array.from(input.valIndex, (row) => input.labels[row]!);
  const classWeights = computeClassWeights(trainLabels, classCount, params.class_weighting);
  const initialLayers = initializeLayers(dim, hiddenUnits, classCount, random);
  const trainCount = input.trainIndex.length;
  const valCount = input.valIndex.length;
  const batchSize = Math.min(params.batch_size, trainCount);
  const smoothing = params.label_smoothing;

  await tf.ready();
  // Tensors that live for the whole run are listed here and freed in `finally`, whatever happens in between.
  const owned: defaultTf.Tensor[] = [];
  const own = <T extends defaultTf.Tensor>(tensor: T): T => (owned.push(tensor), tensor);
  const optimizer = createOptimizer(tf, params);
  try {
    // Rows and loss targets live in JS; each epoch copies them in shuffled order into one tensor per kind and the
    // steps slice batches out of it. (tfjs-cpu/wasm `gather` costs ~6 ms per 32 × 1000 batch; `slice` ~0.02 ms.)
    const trainRows = gatherStandardizedRows(input.embeddings, dim, input.trainIndex, standardize);
    const trainTargets = buildTargets(trainLabels, classCount, smoothing, classWeights);
    const valX = own(tf.tensor2d(gatherStandardizedRows(input.embeddings, dim, input.valIndex, standardize), [valCount, dim]));
    const valY = own(tf.tensor1d(valLabels, "int32"));
    const valTargets = own(tf.tensor2d(buildTargets(valLabels, classCount, smoothing, null), [valCount, classCount]));
    const variables = initialLayers.flatMap((layer) => [
      own(tf.variable(own(tf.tensor2d(layer.weights, [layer.inputDim, layer.units])), true)),
      own(tf.variable(own(tf.tensor1d(layer.bias)), true)),
    ]);
    const kernels = variables.filter((_, index) => index % 2 === 0);

    /** [rows, dim] standardised → [rows, classCount] logits; `dropoutMasks` (one per hidden layer) only in training. */
    const forward = (x: defaultTf.Tensor2D, dropoutMasks: defaultTf.Tensor2D[] | null): defaultTf.Tensor2D => {
      let activations = x;
      for (let layer = 0; layer < initialLayers.length; layer++) {
        activations = tf.add(tf.matMul(activations, variables[2 * layer]! as defaultTf.Tensor2D), variables[2 * layer + 1]!);
        if (layer < initialLayers.length - 1) {
          activations = tf.relu(activations);
          if (dropoutMasks) activations = tf.mul(activations, dropoutMasks[layer]!);
        }
      }
      return activations;
    };
    /** Summed cross-entropy against `targets` [rows, classCount] and the number of correct top-1 predictions. */
    const scoreLogits = (logits: defaultTf.Tensor2D, targets: defaultTf.Tensor2D, labels: defaultTf.Tensor1D) => ({
      lossSum: tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(logits)))) as defaultTf.Scalar,
      correct: tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), "float32")) as defaultTf.Scalar,
    });

    const epochs: EpochMetrics[] = [];
    let bestEpoch = 0;
    let bestValLoss = Infinity;
    let bestWeights: defaultTf.Tensor[] = [];
    let stopReason: TrainingStopReason = "completed";
    const order = Array.from({ length: trainCount }, (_, index) => index);

    for (let epoch = 1; epoch <= params.epochs; epoch++) {
      random.shuffleInPlace(order);
      const epochX = tf.tensor2d(permuteRows(trainRows, dim, order), [trainCount, dim]);
      const epochTargets = tf.tensor2d(permuteRows(trainTargets, classCount, order), [trainCount, classCount]);
      const epochY = tf.tensor1d(Int32Array.from(order, (position) => trainLabels[position]!), "int32");
      let lossSum: defaultTf.Scalar = tf.scalar(0);
      let correctSum: defaultTf.Scalar = tf.scalar(0);
      for (let start = 0; start < trainCount; start += batchSize) {
        const rows = Math.min(batchSize, trainCount - start);
        const masks = dropoutRate > 0 ? hiddenUnits.map((units) => createDropoutMask(random, rows, units, dropoutRate)) : null;
        if (params.optimizer === "adamw" && params.weight_decay > 0) {
          // Decoupled weight decay (Loshchilov & Hutter), applied before the Adam step as PyTorch's AdamW does.
          const shrink = 1 - params.learning_rate * params.weight_decay;
          for (const kernel of kernels) tf.tidy(() => (kernel as defaultTf.Variable).assign(tf.mul(kernel, shrink)));
        }
        const step = tf.tidy(() => {
          const x = tf.slice(epochX, [start, 0], [rows, dim]);
          const targets = tf.slice(epochTargets, [start, 0], [rows, classCount]);
          const y = tf.slice(epochY, [start], [rows]);
          const maskTensors = masks?.map((mask, layer) => tf.tensor2d(mask, [rows, hiddenUnits[layer]!])) ?? null;
          let batchLoss: defaultTf.Scalar | null = null;
          let batchCorrect: defaultTf.Scalar | null = null;
          const { grads } = tf.variableGrads(() => {
            const scored = scoreLogits(forward(x, maskTensors), targets, y);
            batchLoss = tf.keep(scored.lossSum);
            batchCorrect = tf.keep(scored.correct);
            const dataLoss = tf.div(scored.lossSum, rows) as defaultTf.Scalar;
            if (params.optimizer === "adamw" || params.weight_decay === 0) return dataLoss;
            // Coupled L2 for adam/sgd: adds weight_decay · w to the gradient, as PyTorch's `weight_decay` argument.
            const squaredNorm = tf.addN(kernels.map((kernel) => tf.sum(tf.square(kernel))));
            return tf.add(dataLoss, tf.mul(squaredNorm, 0.5 * params.weight_decay)) as defaultTf.Scalar;
          }, variables as defaultTf.Variable[]);
          optimizer.applyGradients(grads);
          const nextLossSum = tf.add(lossSum, batchLoss!) as defaultTf.Scalar;
          const nextCorrectSum = tf.add(correctSum, batchCorrect!) as defaultTf.Scalar;
          return { nextLossSum, nextCorrectSum };
        });
        tf.dispose([lossSum, correctSum]);
        ({ nextLossSum: lossSum, nextCorrectSum: correctSum } = step);
      }
      // One read-back per epoch, not per step: on GPU backends every read is a sync.
      const trainLossSum = lossSum.dataSync()[0]!;
      const trainCorrect = correctSum.dataSync()[0]!;
      tf.dispose([lossSum, correctSum, epochX, epochTargets, epochY]);

      let valLossSum = 0;
      let valCorrect = 0;
      for (let start = 0; start < valCount; start += VALIDATION_CHUNK_ROWS) {
        const rows = Math.min(VALIDATION_CHUNK_ROWS, valCount - start);
        const scored = tf.tidy(() =>
          scoreLogits(
            forward(tf.slice(valX, [start, 0], [rows, dim]), null),
            tf.slice(valTargets, [start, 0], [rows, classCount]),
            tf.slice(valY, [start], [rows]),
          ),
        );
        valLossSum += scored.lossSum.dataSync()[0]!;
        valCorrect += scored.correct.dataSync()[0]!;
        tf.dispose([scored.lossSum, scored.correct]);
      }

      const metrics: EpochMetrics = {
        epoch,
        train_loss: trainLossSum / trainCount,
        val_loss: valLossSum / valCount,
        train_accuracy: trainCorrect / trainCount,
        val_accuracy: valCorrect / valCount,
      };
      epochs.push(metrics);
      if (metrics.val_loss < bestValLoss) {
        bestValLoss = metrics.val_loss;
        bestEpoch = epoch;
        tf.dispose(bestWeights);
        bestWeights = variables.map((variable) => tf.clone(variable));
      }
      await hooks.onEpoch?.(metrics);
      if (hooks.shouldStop?.()) {
        stopReason = "stopped_by_caller";
        break;
      }
      if (params.early_stopping_patience > 0 && epoch - bestEpoch >= params.early_stopping_patience) {
        stopReason = "early_stopping";
        break;
      }
      await yieldToEventLoop();
    }

    // No best epoch only if val_loss was NaN throughout (training diverged); the last weights are all there is.
    const finalWeights = bestWeights.length && config.keep !== "last" ? bestWeights : variables;
    const layers: DenseLayer[] = initialLayers.map((layer, index) => ({
      ...layer,
      weights: Float32Array.from(finalWeights[2 * index]!.dataSync()),
      bias: Float32Array.from(finalWeights[2 * index + 1]!.dataSync()),
    }));
    tf.dispose(bestWeights);
    return {
      head: { inputDim: dim, labels: [...labelNames], standardize, layers },
      epochs,
      bestEpoch: bestEpoch || epochs.length,
      stopReason,
    };
  } finally {
    optimizer.dispose();
    tf.dispose(owned);
  }
}

/** Inverted-dropout mask [rows, units]: 0 with probability `rate`, else 1 / (1 - rate), so inference needs no rescale. */
function createDropoutMask(random: Random, rows: number, units: number, rate: number): Float32Array {
  const keepScale = 1 / (1 - rate);
  const mask = new Float32Array(rows * units);
  for (let i = 0; i < mask.length; i++) mask[i] = random.nextFloat() < rate ? 0 : keepScale;
  return mask;
}

/** Rows of a [rows, width] matrix in the given order. */
function permuteRows(matrix: Float32Array, width: number, order: readonly number[]): Float32Array {
  const out = new Float32Array(order.length * width);
  order.forEach((row, position) => out.set(matrix.subarray(row * width, (row + 1) * width), position * width));
  return out;
}

function createOptimizer(tf: Tf, params: TrainingHyperparameters): defaultTf.Optimizer {
  switch (params.optimizer) {
    case "adam":
    case "adamw":
      return tf.train.adam(params.learning_rate);
    case "sgd":
      return tf.train.momentum(params.learning_rate, SGD_MOMENTUM);
  }
}

/** Lets timers (lease heartbeats) run between epochs: training is CPU-bound and would otherwise starve them. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

