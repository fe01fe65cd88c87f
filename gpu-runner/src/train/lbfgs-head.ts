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
import type { Head } from "../../../shared/head";
import { createRandom } from "../../../shared/random";
import { denseLogits, DenseObjective, fromDenseLayers, toDenseLayers, type DenseObjectiveInput } from "./dense-objective";
import { Lbfgs, type Objective } from "./lbfgs";
import { crossEntropySum, loadOrt, OnnxLogits, OnnxObjective } from "./onnx-objective";
import type { EpochMetrics, HeadTrainingConfig, HeadTrainingInput, TrainHeadHooks, TrainHeadResult, TrainingStopReason } from "./train-head";
import { buildTargets, computeClassWeights, computeStandardization, gatherStandardizedRows, initializeLayers } from "./train-head-common";

/** Correction pairs: 10 is the textbook default; 20 cut the iterations to converge by ~10% on flowers5, not worth 2x memory. */
const LBFGS_MEMORY = 10;

/** Where the objective is computed: "onnx" (onnxruntime's GEMMs), "js" (plain TypeScript), "auto" (see below). */
export type ObjectiveBackend = "auto" | "onnx" | "js";

export interface LbfgsHeadOptions {
  backend?: ObjectiveBackend;
  /** onnxruntime intra-op threads (default 1). */
  threads?: number;
}

/**
 * `auto` uses onnxruntime when one pass over the data is at least this many multiply-adds (rows × parameters). Its
 * sessions are built once per thread (onnx-objective.ts `headSession`), so what remains is ~0.1 ms of overhead per
 * run: below this size (a few hundred rows of 16-d features) plain JS is faster; above it MLAS's GEMMs win (flowers5
 * linear, 300 × 5,765: ~1.2 ms per evaluation against ~3 ms in plain JS, bench/train/head-speed.ts).
 */
const ONNX_MIN_WORK = 200_000;

export async function trainHeadLbfgs(input: HeadTrainingInput, config: HeadTrainingConfig, hooks: TrainHeadHooks = {}, options: LbfgsHeadOptions = {}): Promise<TrainHeadResult> {
  const params = config.hyperparameters;
  const { dim, classCount } = input;
  const labelNames = input.labelNames ?? Array.from({ length: classCount }, (_, index) => String(index));
  const hidden = config.head.type === "mlp" ? config.head.hidden : [];
  const standardize = computeStandardization(input.embeddings, dim, input.trainIndex);
  const trainLabels = Int32Array.from(input.trainIndex, (row) => input.labels[row]!);
  const valLabels = Int32Array.from(input.valIndex, (row) => input.labels[row]!);
  const classWeights = computeClassWeights(trainLabels, classCount, params.class_weighting);
  const trainCount = input.trainIndex.length;
  const valCount = input.valIndex.length;
  const smoothing = params.label_smoothing;

  const start = fromDenseLayers(initializeLayers(dim, hidden, classCount, createRandom(params.seed)));
  const backend = options.backend ?? "auto";
  const wantOnnx = backend === "onnx" || (backend === "auto" && trainCount * start.length >= ONNX_MIN_WORK);
  if (backend === "onnx" && !(await loadOrt())) throw new Error("the onnx objective backend was requested but onnxruntime-node cannot load");
  const useOnnx = wantOnnx && (await loadOrt()) !== null;
  const threads = options.threads ?? 1;
  // onnxruntime also takes xᵀ: written in the same pass as x.
  const xTransposed = useOnnx ? new Float32Array(trainCount * dim) : undefined;
  const objectiveInput: DenseObjectiveInput = {
    x: gatherStandardizedRows(input.embeddings, dim, input.trainIndex, standardize, xTransposed),
    rows: trainCount,
    dim,
    targets: buildTargets(trainLabels, classCount, smoothing, classWeights),
    labels: trainLabels,
    classCount,
    hidden,
    l2: params.weight_decay,
  };
  const valX = gatherStandardizedRows(input.embeddings, dim, input.valIndex, standardize);
  const valTargets = buildTargets(valLabels, classCount, smoothing, null);
  const onnxObjective = useOnnx ? await OnnxObjective.create(objectiveInput, threads, xTransposed) : null;
  const onnxLogits = onnxObjective ? await OnnxLogits.create(dim, hidden, classCount, threads) : null;
  const objective: Objective & { lastDataLoss: number; lastCorrect: number } = onnxObjective ?? new DenseObjective(objectiveInput);
  const valLogits = async (theta: Float64Array) =>
    onnxLogits ? onnxLogits.logits(theta, valX, valCount, dim) : denseLogits(theta, valX, valCount, dim, hidden, classCount);
  return iterate();

  async function iterate(): Promise<TrainHeadResult> {
    const solver = await Lbfgs.start(objective, start, { memory: LBFGS_MEMORY });

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
        train_loss: objective.lastDataLoss,
        val_loss: val.lossSum / valCount,
        train_accuracy: objective.lastCorrect / trainCount,
        val_accuracy: val.correct / valCount,
      };
      epochs.push(metrics);
      if (!best || metrics.val_loss < best.valLoss) best = { epoch, valLoss: metrics.val_loss, theta: Float64Array.from(solver.x) };
      await hooks.onEpoch?.(metrics);
      if (hooks.shouldStop?.()) {
        stopReason = "stopped_by_caller";
        break;
      }
      if (params.early_stopping_patience > 0 && epoch - best.epoch >= params.early_stopping_patience) {
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
    const head: Head = { inputDim: dim, labels: [...labelNames], standardize, layers: toDenseLayers(theta, dim, hidden, classCount) };
    return { head, epochs, bestEpoch: keepLast ? epochs.length : best?.epoch ?? epochs.length, stopReason };
  }
}
