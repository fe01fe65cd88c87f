/**
 * Head training by full-batch L-BFGS (lbfgs.ts over dense-objective.ts), in plain TypeScript: no tfjs, no
 * mini-batches, no learning rate. Each L-BFGS iteration is reported as one "epoch" (same metrics, same hooks, same
 * early stopping on validation loss, best iterate kept), so a job's `epochs` caps the iterations.
 *
 * What the hyperparameters mean here:
 * - `weight_decay` is λ of the L2 penalty (λ/2)‖W‖² on kernels, as the mini-batch trainer's coupled L2;
 * - `label_smoothing`, `class_weighting`, `epochs` (iteration cap), `early_stopping_patience` as documented;
 * - `seed` draws the initial weights of an MLP (a linear head starts at zero: its objective is convex);
 * - `batch_size`, `learning_rate`, `optimizer` do not apply (the whole training set is one batch, the step length
 *   comes from the line search); dropout does not apply either (L2 and early stopping regularise instead).
 *
 * Why: measured in bench/train/head-speed.ts, L-BFGS reaches the same validation accuracy as 100 epochs of Adam in a
 * few dozen full passes over the data, and a full pass in plain JS costs less than one tfjs epoch of 32-row batches.
 */
import type { Head, Standardization } from "../../../shared/head";
import { createRandom, deriveSeed } from "../../../shared/random";
import { denseLogits, DenseObjective, fromDenseLayers, parameterCount, toDenseLayers, type DenseObjectiveInput } from "./dense-objective";
import { Lbfgs, type Objective } from "./lbfgs";
import { MinibatchAdam } from "./minibatch-adam";
import { crossEntropySum, loadOrt, OnnxLogits, OnnxObjective, type FirstLayerGradient } from "./onnx-objective";
import { isSpanWorthIt, rowSpaceOf, type RowSpace } from "./row-space";
import type { EpochMetrics, HeadTrainingConfig, HeadTrainingInput, TrainHeadHooks, TrainHeadResult, TrainingStopReason } from "./train-head";
import { buildTargets, computeClassWeights, computeStandardization, gatherStandardizedRows, initializeLayers } from "./train-head-common";

/** Correction pairs: 10 is the textbook default; 20 cut the iterations to converge by ~10% on flowers5, not worth 2x memory. */
const LBFGS_MEMORY = 10;

/**
 * A linear head's objective is convex: once an iteration lowers it by less than 1e-5 of its value (a hundred-
 * thousandth of a nat of mean loss), later iterates move the validation loss in its 4th digit and the accuracy not at
 * all, yet the early-stopping patience would run up to 15 more iterations. Measured (bench/train/head-speed.ts): 20,000
 * synthetic rows stop at iteration 15 instead of 21, flowers5 at 23 instead of 25, same best epoch and accuracy. MLPs keep
 * lbfgs.ts's 1e-10: their objective has plateaus that are not minima.
 */
const LINEAR_RELATIVE_DECREASE_TOLERANCE = 1e-5;

/** Where the objective is computed: "onnx" (onnxruntime's GEMMs), "js" (plain TypeScript), "auto" (see below). */
export type ObjectiveBackend = "auto" | "onnx" | "js";

export interface LbfgsHeadOptions {
  backend?: ObjectiveBackend;
  /** onnxruntime intra-op threads (default 1). */
  threads?: number;
  /** false: always fit on the full features (tests compare both ways); default: in the rows' span when smaller. */
  rowSpace?: boolean;
  /** false: gather standardised training rows for onnxruntime; default: a linear head fits on the raw rows when they cover most of the set. */
  rawRows?: boolean;
  /** How onnxruntime computes the first layer's weight gradient (onnx-objective.ts); default "transA". */
  firstGradient?: FirstLayerGradient;
  /** Linear heads: converged when an iteration lowers the objective by less than this, relative (default `LINEAR_RELATIVE_DECREASE_TOLERANCE`). */
  linearRelativeDecreaseTolerance?: number;
  /** MLP heads: "adam" (mini-batch, minibatch-adam.ts), "lbfgs", or "auto" (default): Adam from `ADAM_MIN_ROWS` training rows on onnxruntime. */
  mlpSolver?: "auto" | "adam" | "lbfgs";
  /** Mini-batch Adam's schedule in epochs (default: minibatch-adam.ts ADAM_EPOCHS, at least ADAM_MIN_UPDATES batches). */
  adamEpochs?: number;
  /** Mini-batch Adam's peak learning rate (default minibatch-adam.ts ADAM_LEARNING_RATE). */
  adamLearningRate?: number;
}

/**
 * From this many training rows an MLP head trains by mini-batch Adam (minibatch-adam.ts) rather than full-batch
 * L-BFGS, when onnxruntime is there: 2.5x faster at the same accuracy on 16,000 × 1024 rows (numbers in
 * minibatch-adam.ts). Below a few thousand rows an L-BFGS pass costs milliseconds and needs no learning rate, so
 * flowers5-sized sets and cross-validation folds of them keep it.
 */
export const ADAM_MIN_ROWS = 4096;

/**
 * Epochs without a better validation loss before a mini-batch fit stops: an Adam epoch is a whole pass of many
 * updates, worth several L-BFGS iterations, so the job's `early_stopping_patience` (counted in L-BFGS iterations)
 * is capped at this.
 */
export const ADAM_PATIENCE = 3;

/**
 * `auto` uses onnxruntime when one pass over the data is at least this many multiply-adds (rows × parameters). Its
 * sessions are built once per thread (onnx-objective.ts `headSession`), so what remains is ~0.1 ms of overhead per
 * run: below this size (a few hundred rows of 16-d features) plain JS is faster; above it MLAS's GEMMs win (flowers5
 * linear, 300 × 5,765: ~1.2 ms per evaluation against ~3 ms in plain JS, bench/train/head-speed.ts).
 */
const ONNX_MIN_WORK = 200_000;

/** What a fit reads: the standardisation, and the training and validation rows standardised (in span coordinates when `space`). */
interface PreparedRows {
  standardize: Standardization;
  space: RowSpace | null;
  /** [trainIndex.length, fitDim] */
  trainX: Float32Array;
  /** [valIndex.length, fitDim] */
  valX: Float32Array;
  /** xᵀ of `trainX` when the caller asked for it (onnxruntime takes both), written in the same pass. */
  trainXTransposed?: Float32Array;
  /** Nothing gathered: `trainX` is the embeddings as they are, `valX` empty (onnx-objective.ts `RawRows`). */
  raw?: boolean;
}

/**
 * Prepared rows of the last few fits per embeddings matrix: cross-validation fits every candidate on the same folds,
 * and these depend only on the rows, so each worker standardises and projects a fold once, not once per candidate.
 * Kept only for span fits (small data); a handful per matrix (5 folds + a refit).
 */
const preparedCache = new WeakMap<Float32Array, Map<string, PreparedRows>>();
const PREPARED_PER_MATRIX = 8;

/**
 * A fit on raw rows (onnx-objective.ts `RawRows`) computes on every row of the embeddings; it pays when the training
 * and validation rows are most of them (a job's split), not for a cross-validation fold on a subset.
 */
const RAW_ROWS_MIN_COVERAGE = 0.8;

/** Unshared copies of embeddings that live on a SharedArrayBuffer, one per matrix, freed with it. */
const unsharedCopies = new WeakMap<Float32Array, Float32Array>();

/**
 * The embeddings on a plain ArrayBuffer: onnxruntime-node rejects a tensor over a SharedArrayBuffer ("Invalid
 * argument"), and the runner keeps embeddings on one to hand them to the training thread without a copy. A memcpy
 * of 20,000 × 1024 floats, once per matrix (cross-validation folds reuse it), still costs less than a gather.
 */
function unsharedView(embeddings: Float32Array): Float32Array {
  if (!(embeddings.buffer instanceof SharedArrayBuffer)) return embeddings;
  let copy = unsharedCopies.get(embeddings);
  if (!copy) unsharedCopies.set(embeddings, (copy = new Float32Array(embeddings)));
  return copy;
}

function prepareRows(input: HeadTrainingInput, useSpace: boolean, wantTransposed: boolean, allowRaw = false): PreparedRows {
  const { embeddings, dim, trainIndex, valIndex } = input;
  const key = `${dim}|${useSpace}|${trainIndex.join(",")}|${valIndex.join(",")}`;
  const cached = preparedCache.get(embeddings)?.get(key);
  if (cached) return cached;
  const standardize = computeStandardization(embeddings, dim, trainIndex);
  // Fewer rows than features: fit in the span of the training rows (row-space.ts), the same head at a fraction of the cost.
  const inSpace = useSpace && isSpanWorthIt(trainIndex.length, dim);
  const rowCount = embeddings.length / dim;
  if (allowRaw && !inSpace && trainIndex.length + valIndex.length >= RAW_ROWS_MIN_COVERAGE * rowCount) {
    return { standardize, space: null, trainX: unsharedView(embeddings), valX: new Float32Array(0), raw: true };
  }
  const trainXTransposed = wantTransposed && !inSpace ? new Float32Array(trainIndex.length * dim) : undefined;
  const trainFeatures = gatherStandardizedRows(embeddings, dim, trainIndex, standardize, trainXTransposed);
  const valFeatures = gatherStandardizedRows(embeddings, dim, valIndex, standardize);
  const space = inSpace ? rowSpaceOf(trainFeatures, trainIndex.length, dim) : null;
  if (!space) return { standardize, space, trainX: trainFeatures, valX: valFeatures, trainXTransposed };
  const prepared = { standardize, space, trainX: space.coordinates, valX: space.project(valFeatures, valIndex.length) };
  const entries = preparedCache.get(embeddings) ?? new Map<string, PreparedRows>();
  preparedCache.set(embeddings, entries);
  if (entries.size >= PREPARED_PER_MATRIX) entries.delete(entries.keys().next().value!);
  entries.set(key, prepared);
  return prepared;
}

/** Targets [trainRows.length, k] → [rowCount, k], each training row's at its row, zero elsewhere. */
function spreadTargets(trainTargets: Float32Array, trainRows: readonly number[], rowCount: number, classCount: number): Float32Array {
  const targets = new Float32Array(rowCount * classCount);
  trainRows.forEach((row, position) => targets.set(trainTargets.subarray(position * classCount, (position + 1) * classCount), row * classCount));
  return targets;
}

export async function trainHeadLbfgs(input: HeadTrainingInput, config: HeadTrainingConfig, hooks: TrainHeadHooks = {}, options: LbfgsHeadOptions = {}): Promise<TrainHeadResult> {
  const params = config.hyperparameters;
  const { dim, classCount } = input;
  const labelNames = input.labelNames ?? Array.from({ length: classCount }, (_, index) => String(index));
  const hidden = config.head.type === "mlp" ? config.head.hidden : [];
  const trainLabels = Int32Array.from(input.trainIndex, (row) => input.labels[row]!);
  const valLabels = Int32Array.from(input.valIndex, (row) => input.labels[row]!);
  const classWeights = computeClassWeights(trainLabels, classCount, params.class_weighting);
  const trainCount = input.trainIndex.length;
  const valCount = input.valIndex.length;
  const smoothing = params.label_smoothing;

  const backend = options.backend ?? "auto";
  // Judged on the full features (an upper bound of the work in the span).
  const wantOnnx = backend === "onnx" || (backend === "auto" && trainCount * parameterCount(dim, hidden, classCount) >= ONNX_MIN_WORK);
  if (backend === "onnx" && !(await loadOrt())) throw new Error("the onnx objective backend was requested but onnxruntime-node cannot load");
  const useOnnx = wantOnnx && (await loadOrt()) !== null;
  const threads = options.threads ?? 1;
  const firstGradient = options.firstGradient ?? "transA";
  // Linear heads only: an MLP's first-layer gradient is a compute-bound GEMM (256 units), where the rows outside
  // training would cost more than the gather saves.
  const allowRaw = useOnnx && hidden.length === 0 && firstGradient === "transA" && options.rawRows !== false;
  const { standardize, space, trainX, valX, trainXTransposed, raw } = prepareRows(input, options.rowSpace !== false, useOnnx && firstGradient === "xt", allowRaw);
  const fitDim = space ? space.rank : dim;
  const initial = initializeLayers(fitDim, hidden, classCount, createRandom(params.seed));
  // He-uniform scale for d inputs, not r: span coordinates carry the rows' whole norm in r < d values.
  if (space && hidden.length > 0) initial[0]!.weights.forEach((w, i, weights) => (weights[i] = w * Math.sqrt(fitDim / dim)));
  const start = fromDenseLayers(initial);
  const trainTargets = buildTargets(trainLabels, classCount, smoothing, classWeights);
  const objectiveInput: DenseObjectiveInput = {
    x: trainX,
    rows: raw ? input.labels.length : trainCount,
    dim: fitDim,
    targets: raw ? spreadTargets(trainTargets, input.trainIndex, input.labels.length, classCount) : trainTargets,
    labels: raw ? input.labels : trainLabels,
    classCount,
    hidden,
    l2: params.weight_decay,
  };
  const valTargets = buildTargets(valLabels, classCount, smoothing, null);
  const rawRows = raw ? { standardize, trainRows: input.trainIndex } : undefined;
  const onnxObjective = useOnnx ? await OnnxObjective.create(objectiveInput, threads, firstGradient, trainXTransposed, rawRows) : null;
  const onnxLogits = onnxObjective && !raw ? await OnnxLogits.create(fitDim, hidden, classCount, threads) : null;
  const objective: Objective & { lastDataLoss: number; lastCorrect: number } = onnxObjective ?? new DenseObjective(objectiveInput);
  const valLogits = async (theta: Float64Array): Promise<Float32Array> => {
    if (raw) {
      // The validation rows went through the last evaluation's forward pass; evaluate θ again only if it was elsewhere.
      const fromLast = onnxObjective!.logitsOfRows(theta, input.valIndex);
      if (fromLast) return fromLast;
      await onnxObjective!.evaluate(theta, new Float64Array(theta.length));
      return onnxObjective!.logitsOfRows(theta, input.valIndex)!;
    }
    return onnxLogits ? onnxLogits.logits(theta, valX, valCount, fitDim) : denseLogits(theta, valX, valCount, fitDim, hidden, classCount);
  };
  return iterate();

  /** θ in span coordinates → θ on the features: the first kernel lifted, every other parameter as it is. */
  function liftFirstKernel(theta: Float64Array): Float64Array {
    const units = hidden[0] ?? classCount;
    const full = new Float64Array(theta.length + units * (dim - fitDim));
    full.set(space!.lift(theta.subarray(0, units * fitDim), units), 0);
    full.set(theta.subarray(units * fitDim), units * dim);
    return full;
  }

  async function iterate(): Promise<TrainHeadResult> {
    const relativeDecreaseTolerance = hidden.length === 0 ? options.linearRelativeDecreaseTolerance ?? LINEAR_RELATIVE_DECREASE_TOLERANCE : undefined;
    const mlpSolver = options.mlpSolver ?? "auto";
    const wantAdam = hidden.length > 0 && useOnnx && !space && !raw && (mlpSolver === "adam" || (mlpSolver === "auto" && trainCount >= ADAM_MIN_ROWS));
    const adam = wantAdam ? await MinibatchAdam.start(objectiveInput, start, { seed: deriveSeed(params.seed, 1), threads, epochs: options.adamEpochs, learningRate: options.adamLearningRate }) : null;
    const solver = adam ?? (await Lbfgs.start(objective, start, { memory: LBFGS_MEMORY, relativeDecreaseTolerance }));
    // Where the last step's training loss and accuracy are read.
    const progress: { lastDataLoss: number; lastCorrect: number } = adam ?? objective;
    const patience = adam ? Math.min(params.early_stopping_patience, ADAM_PATIENCE) : params.early_stopping_patience;

    const epochs: EpochMetrics[] = [];
    let best: { epoch: number; valLoss: number; theta: Float64Array } | null = null;
    let stopReason: TrainingStopReason = "completed";
    for (let epoch = 1; epoch <= params.epochs; epoch++) {
      // The first "epoch" is the first step; a start that is already optimal (all-zero gradient) reports itself.
      const moved = await solver.step();
      if (!moved && epoch > 1) {
        stopReason = "converged";
        break;
      }
      // After a successful step the objective's last evaluation is the accepted iterate.
      const val = crossEntropySum(await valLogits(solver.x), valTargets, valLabels, classCount);
      const metrics: EpochMetrics = {
        epoch,
        train_loss: progress.lastDataLoss,
        val_loss: val.lossSum / valCount,
        train_accuracy: progress.lastCorrect / trainCount,
        val_accuracy: val.correct / valCount,
      };
      epochs.push(metrics);
      if (!best || metrics.val_loss < best.valLoss) best = { epoch, valLoss: metrics.val_loss, theta: Float64Array.from(solver.x) };
      await hooks.onEpoch?.(metrics);
      if (hooks.shouldStop?.()) {
        stopReason = "stopped_by_caller";
        break;
      }
      if (patience > 0 && epoch - best.epoch >= patience) {
        stopReason = "early_stopping";
        break;
      }
      if (!moved) {
        stopReason = "converged";
        break;
      }
    }
    // No best iterate only if val loss was NaN throughout; the last iterate is all there is.
    const keepLast = config.keep === "last";
    const theta = !keepLast && best && Number.isFinite(best.valLoss) ? best.theta : solver.x;
    const layers = toDenseLayers(space ? liftFirstKernel(theta) : theta, dim, hidden, classCount);
    const head: Head = { inputDim: dim, labels: [...labelNames], standardize, layers };
    return { head, epochs, bestEpoch: keepLast ? epochs.length : best?.epoch ?? epochs.length, stopReason };
  }
}
