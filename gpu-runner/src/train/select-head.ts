/**
 * `head: {"type": "auto"}`: pick the head and its settings by stratified, seeded k-fold cross-validation on the
 * TRAINING rows only, then refit the winner on all of them. The validation rows are never given to a candidate
 * during the search: they are used once, by the caller, to train-and-report the refit (as for any other head).
 *
 * Steps, in the order `selectHead` runs them:
 * 1. `stratifiedFolds`: each class's training rows are shuffled with the seed and dealt round-robin into k folds
 *    (k = the requested folds, fewer when the smallest class has fewer training rows; at least 2).
 * 2. Every candidate of `candidateGrid` is trained k times, each time on k-1 folds, and scored (top-1 accuracy of
 *    the head as served, `applyHead`) on the fold left out. The k × candidates fits run in worker threads
 *    (cv-pool.ts), so the runner's main thread keeps its lease heartbeats going.
 * 3. The candidate with the best mean CV accuracy wins; a tie goes to the one listed first in the grid (the grid
 *    lists simpler heads first: linear before MLP, stronger L2 before weaker).
 * The left-out fold never steers a fit (no early stopping on it, the final weights are kept), and the caller refits
 * the winner the same way (`keep: "last"`), so the validation split only measures the result.
 */
import { createRandom, deriveSeed } from "../../../shared/random";
import type { HeadSpec, Hyperparameters } from "../../../shared/schemas";
import type { FoldResult } from "./fit-fold";
import type { FeatureSubset } from "./feature-subset";

/** One point of the search: a trainable head and the hyperparameters that differ from the job's. */
export interface Candidate {
  head: HeadSpec;
  /** Overrides of the job's hyperparameters (the rest, e.g. seed, epochs, class weighting, are the job's). */
  hyperparameters: Partial<Hyperparameters>;
  /** Only some of the embedding's feature layers (feature-subset.ts); absent: all of them. */
  features?: FeatureSubset;
}

export interface CandidateResult extends Candidate {
  cv_accuracy_mean: number;
  /** Population standard deviation of the k fold accuracies. */
  cv_accuracy_std: number;
  fold_accuracies: number[];
}

/**
 * `metrics.selection` of a model whose job asked for `auto` (API.md "Training choices and evaluation"). A type, not an
 * interface, so it fits the open (passthrough) `selection` of the /complete request's validated metrics.
 */
export type Selection = {
  strategy: "cv";
  folds: number;
  seed: number;
  candidates: Array<Omit<CandidateResult, "fold_accuracies">>;
  /** The winner, as listed in `candidates`. */
  chosen: Omit<CandidateResult, "fold_accuracies">;
  /** Its index in `candidates`. */
  chosen_index: number;
  search_ms: number;
};

/**
 * L-BFGS iterations per fit in the search and in the refit of the winner (same budget, so the refit is the model
 * that was cross-validated). Linear heads on flowers5 (1152-d, 240 rows) converge in 45 to 90 iterations; 50 stops
 * the weakly regularised candidates a little early, which regularises them further, identically in CV and refit.
 * Fits run in the span of the training rows (row-space.ts: 240 coordinates instead of 1,152) and each worker
 * prepares a fold once for all candidates: bench/train/cv-search.ts, same grid, same load (~14 on 2 cores):
 * 26.9 s before, 11.3 s after (10.8 s before on a quiet box).
 */
export const SEARCH_MAX_ITERATIONS = 50;

/**
 * The search grid, simplest first (ties go to the earlier entry). With the full-batch L-BFGS solver no learning rate
 * is searched (its line search sets the step); L2 strength spans two decades because the right amount depends on
 * the feature dimension and the number of images; label smoothing on/off; one MLP as the only non-linear candidate,
 * small (64 hidden units: 256 cost 4x the time here for the same CV accuracy on flowers5), since on frozen ImageNet
 * features an MLP rarely beats a well-regularised linear head below a few thousand images. Every candidate trains
 * for at most `SEARCH_MAX_ITERATIONS` (fewer if the job asks for fewer epochs) without early stopping: the held-out
 * fold only scores. With `subsets` (the backbone joins several feature layers), linear heads on each subset too.
 */
export function candidateGrid(job: Pick<Hyperparameters, "epochs"> = { epochs: SEARCH_MAX_ITERATIONS }, subsets: readonly FeatureSubset[] = []): Candidate[] {
  const budget = { epochs: Math.min(job.epochs, SEARCH_MAX_ITERATIONS), early_stopping_patience: 0 };
  const linear: Candidate[] = [];
  for (const weight_decay of [1, 0.1, 0.01]) {
    for (const label_smoothing of [0.1, 0]) linear.push({ head: { type: "linear" }, hyperparameters: { weight_decay, label_smoothing, ...budget } });
  }
  const mlp: Candidate[] = [{ head: { type: "mlp", hidden: [64], dropout: 0.2 }, hyperparameters: { weight_decay: 0.1, label_smoothing: 0.1, ...budget } }];
  // Feature-layer combinations, when the backbone's embedding joins several layers: a linear head on each subset
  // (label smoothing on), listed after the heads on every layer so that a tie keeps all of them.
  const subsetHeads: Candidate[] = subsets.flatMap((features) =>
    [1, 0.1, 0.01].map((weight_decay): Candidate => ({ head: { type: "linear" }, hyperparameters: { weight_decay, label_smoothing: 0.1, ...budget }, features })),
  );
  return [...linear, ...mlp, ...subsetHeads];
}

/** How many folds a training set supports: the request, capped by the smallest class's training rows; at least 2. */
export function foldCountFor(requested: number, trainLabels: ArrayLike<number>): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < trainLabels.length; i++) counts.set(trainLabels[i]!, (counts.get(trainLabels[i]!) ?? 0) + 1);
  const smallest = Math.min(...counts.values());
  return Math.max(2, Math.min(requested, smallest));
}

/**
 * Stratified, seeded folds over `rows` (which must be the training rows only).
 *
 * @param labels class per dataset row (indexed by the values of `rows`).
 * @param rows the training rows, each once.
 * @returns k arrays of rows, disjoint, covering `rows`, each sorted ascending; every class's rows spread so that
 *   fold sizes per class differ by at most one. Same inputs and seed → same folds.
 */
export function stratifiedFolds(labels: ArrayLike<number>, rows: readonly number[], k: number, seed: number): number[][] {
  if (!Number.isInteger(k) || k < 2) throw new RangeError(`k must be an integer ≥ 2, got ${k}`);
  const byClass = new Map<number, number[]>();
  for (const row of [...rows].sort((a, b) => a - b)) {
    const label = labels[row]!;
    if (!byClass.has(label)) byClass.set(label, []);
    byClass.get(label)!.push(row);
  }
  const folds: number[][] = Array.from({ length: k }, () => []);
  // Each class starts dealing where the previous one stopped, so leftover rows do not all land in fold 0.
  let next = 0;
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = createRandom(deriveSeed(seed, label)).shuffleInPlace(byClass.get(label)!);
    for (const row of members) {
      folds[next]!.push(row);
      next = (next + 1) % k;
    }
  }
  for (const fold of folds) fold.sort((a, b) => a - b);
  return folds;
}

/** One fit of the search: train on `trainRows`, score on `heldRows`. */
export interface FoldTask {
  candidate: Candidate;
  trainRows: number[];
  heldRows: number[];
}

/** Runs fold tasks (in worker threads in the runner; in-process in tests), answering each in task order. */
export type FoldRunner = (tasks: FoldTask[], onDone?: (done: number) => void) => Promise<FoldResult[]>;

export interface SelectHeadInput {
  labels: Int32Array;
  /** Training rows only (images, not their augmentation views): the validation rows must not be here. */
  trainIndex: number[];
  /**
   * Augmentation: a training row's view rows (augment-set.ts). They train every fit whose training folds hold their
   * image and are never scored: folds are dealt over images, so no view of a held-out image is fitted on.
   */
  viewRows?: ReadonlyMap<number, readonly number[]>;
}

export interface SelectHeadOptions {
  folds: number;
  seed: number;
  /** Default: `candidateGrid(jobEpochs)`. */
  candidates?: Candidate[];
  /** The job's epoch budget (caps the search's iterations). */
  jobEpochs?: number;
  /** Feature-layer subsets to try (`featureSubsets`), for the default grid. */
  featureSubsets?: readonly FeatureSubset[];
  runFolds: FoldRunner;
  onProgress?: (done: number, total: number) => void;
}

/** Cross-validates every candidate and picks the winner (see the file comment). Deterministic for a seed. */
export async function selectHead(input: SelectHeadInput, options: SelectHeadOptions): Promise<{ selection: Selection; chosen: Candidate }> {
  const started = performance.now();
  const candidates = options.candidates ?? candidateGrid({ epochs: options.jobEpochs ?? SEARCH_MAX_ITERATIONS }, options.featureSubsets);
  const trainLabels = Int32Array.from(input.trainIndex, (row) => input.labels[row]!);
  const k = foldCountFor(options.folds, trainLabels);
  const folds = stratifiedFolds(input.labels, input.trainIndex, k, options.seed);
  const withViews = (rows: number[]) => rows.flatMap((row) => [row, ...(input.viewRows?.get(row) ?? [])]);
  const fitRows = folds.map((_, f) => withViews(folds.flatMap((fold, g) => (g === f ? [] : fold))).sort((a, b) => a - b));
  const tasks: FoldTask[] = candidates.flatMap((candidate) => folds.map((heldRows, f) => ({ candidate, heldRows, trainRows: fitRows[f]! })));
  const accuracies = (await options.runFolds(tasks, (done) => options.onProgress?.(done, tasks.length))).map((result) => result.accuracy);
  const results: CandidateResult[] = candidates.map((candidate, c) => {
    const foldAccuracies = accuracies.slice(c * k, (c + 1) * k);
    const mean = foldAccuracies.reduce((a, b) => a + b, 0) / k;
    const std = Math.sqrt(foldAccuracies.reduce((a, b) => a + (b - mean) ** 2, 0) / k);
    return { ...candidate, cv_accuracy_mean: mean, cv_accuracy_std: std, fold_accuracies: foldAccuracies };
  });
  const chosen = pickBest(results.map((r) => r.cv_accuracy_mean));
  const listed = results.map(({ fold_accuracies: _folds, ...rest }) => rest);
  return {
    selection: {
      strategy: "cv",
      folds: k,
      seed: options.seed,
      candidates: listed,
      chosen: listed[chosen]!,
      chosen_index: chosen,
      search_ms: Math.round(performance.now() - started),
    },
    chosen: candidates[chosen]!,
  };
}

/** Index of the highest mean; ties (within 1e-9: fold accuracies are exact fractions) go to the lowest index. */
export function pickBest(means: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < means.length; i++) if (means[i]! > means[best]! + 1e-9) best = i;
  return best;
}
