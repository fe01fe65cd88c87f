/**
 * Dataset diagnostics from (cached) embeddings (API.md "Dataset contents and diagnostics"): near duplicates (leaks
 * across train and val first), suspected mislabels with a suggested label, outliers. Built to flag what a person
 * should look at, not a tenth of the dataset: every list needs two signals or a robust threshold, and is capped.
 *
 * Steps, in the order `computeDiagnostics` runs them:
 * 1. Centre the embeddings (subtract the dataset mean) and scale each row to unit length: cosine similarity of
 *    centred features separates "the same picture" from "a similar picture" far better than raw ReLU features (on
 *    flowers5 with MobileNet v1 0.75: median nearest-neighbour similarity 0.85 raw, 0.54 centred).
 * 2. All pairs (O(n²·d), in row blocks that yield to the event loop so lease heartbeats keep flowing): pairs at or
 *    above `nearDuplicateSimilarity` are near duplicates; every row keeps its `NEIGHBOURS` most similar rows.
 * 3. Out-of-fold probabilities: a linear head trained by stratified k-fold over ALL images (each image scored by a
 *    head that never saw it). An image is a suspected mislabel when that head prefers another label by at least
 *    `MISLABEL_MARGIN` AND most of its nearest neighbours carry that other label: two independent signals.
 * 4. Outliers: 1 − mean similarity to the `OUTLIER_NEIGHBOURS` nearest rows, flagged when its robust z-score
 *    (median and MAD) reaches `OUTLIER_Z` (Iglewicz and Hoaglin's 3.5), at most `MAX_OUTLIER_SHARE` of the images.
 */
import { hyperparametersSchema, type Hyperparameters } from "../../shared/schemas";
import type { FoldResult } from "./train/fit-fold";
import { foldCountFor, stratifiedFolds, type FoldRunner } from "./train/select-head";

export interface DiagnosticsImage {
  sha256: string;
  path: string;
  label: string;
  split: "train" | "val";
}

export interface NearDuplicate {
  a: DiagnosticsImage;
  b: DiagnosticsImage;
  similarity: number;
  /** One in train, one in val: the validation score is inflated by it. */
  leak: boolean;
}

export interface SuspectedMislabel extends DiagnosticsImage {
  suggested_label: string;
  /** Out-of-fold probability of the suggested label minus that of the given one, in (0, 1]. */
  score: number;
  given_probability: number;
  suggested_probability: number;
  /** Share of the nearest neighbours labelled `suggested_label`. */
  neighbour_agreement: number;
}

export interface Outlier extends DiagnosticsImage {
  /** 1 − mean cosine similarity (centred features) to the nearest images. */
  score: number;
  robust_z: number;
}

export interface DiagnosticsFindings {
  near_duplicates: NearDuplicate[];
  near_duplicate_count: number;
  suspected_mislabels: SuspectedMislabel[];
  outliers: Outlier[];
  thresholds: { near_duplicate_similarity: number; mislabel_margin: number; outlier_z: number; folds: number };
}

/**
 * Centred cosine similarity at or above which two files are reported as the same picture. Measured on flowers5
 * (MobileNet v1 0.75, conv_pw_9 + conv_pw_13): its two real duplicate pairs score 0.999 and 1.0; the next pair, two
 * different tulip photos from one shoot, 0.931; 99% of images have no neighbour above 0.932.
 */
export const NEAR_DUPLICATE_SIMILARITY = 0.95;
export const NEIGHBOURS = 10;
export const OUTLIER_NEIGHBOURS = 5;
export const MISLABEL_MARGIN = 0.5;
export const OUTLIER_Z = 3.5;
export const MAX_OUTLIER_SHARE = 0.01;
/** Lists are capped so a report stays a few hundred KB even for a dataset full of copies. */
export const MAX_NEAR_DUPLICATES = 1000;
export const MAX_MISLABELS = 500;
/** Rows per block of the all-pairs pass between yields to the event loop. */
const ROWS_PER_YIELD = 64;

export interface DiagnosticsInput {
  /** Shape [images.length, dim]. */
  embeddings: Float32Array;
  dim: number;
  images: DiagnosticsImage[];
}

export interface DiagnosticsOptions {
  seed: number;
  /** Runs the out-of-fold fits (worker threads on a runner, in-process in tests). */
  runFolds: FoldRunner;
  nearDuplicateSimilarity?: number;
  folds?: number;
  onProgress?: (phase: string, done: number, total: number) => void;
}

/** Rows centred on the column means and scaled to unit length, shape [n, dim]. */
export function centredUnitRows(embeddings: Float32Array, n: number, dim: number): Float32Array {
  const mean = new Float64Array(dim);
  for (let row = 0; row < n; row++) for (let d = 0; d < dim; d++) mean[d] += embeddings[row * dim + d]!;
  for (let d = 0; d < dim; d++) mean[d]! /= n;
  const out = new Float32Array(n * dim);
  for (let row = 0; row < n; row++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      const value = embeddings[row * dim + d]! - mean[d]!;
      out[row * dim + d] = value;
      norm += value * value;
    }
    const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let d = 0; d < dim; d++) out[row * dim + d]! *= scale;
  }
  return out;
}

/** Keeps the `k` most similar rows, most similar first (small k: insertion into a sorted array). */
class TopK {
  readonly rows: Int32Array;
  readonly sims: Float32Array;
  size = 0;
  constructor(readonly k: number) {
    this.rows = new Int32Array(k);
    this.sims = new Float32Array(k);
  }
  offer(row: number, sim: number): void {
    if (this.size === this.k && sim <= this.sims[this.k - 1]!) return;
    let at = Math.min(this.size, this.k - 1);
    while (at > 0 && this.sims[at - 1]! < sim) {
      this.sims[at] = this.sims[at - 1]!;
      this.rows[at] = this.rows[at - 1]!;
      at--;
    }
    this.sims[at] = sim;
    this.rows[at] = row;
    if (this.size < this.k) this.size++;
  }
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function computeDiagnostics(input: DiagnosticsInput, options: DiagnosticsOptions): Promise<DiagnosticsFindings> {
  const { dim, images } = input;
  const n = images.length;
  const threshold = options.nearDuplicateSimilarity ?? NEAR_DUPLICATE_SIMILARITY;
  const unit = centredUnitRows(input.embeddings, n, dim);

  // 2. All pairs.
  const neighbours = Array.from({ length: n }, () => new TopK(Math.min(NEIGHBOURS, Math.max(1, n - 1))));
  const pairs: Array<{ i: number; j: number; similarity: number }> = [];
  for (let i = 0; i < n; i++) {
    const base = i * dim;
    for (let j = i + 1; j < n; j++) {
      let dot = 0;
      const other = j * dim;
      for (let d = 0; d < dim; d++) dot += unit[base + d]! * unit[other + d]!;
      neighbours[i]!.offer(j, dot);
      neighbours[j]!.offer(i, dot);
      if (dot >= threshold) pairs.push({ i, j, similarity: dot });
    }
    if (i % ROWS_PER_YIELD === ROWS_PER_YIELD - 1) {
      options.onProgress?.("similarity", i + 1, n);
      await yieldToEventLoop();
    }
  }
  const leak = (i: number, j: number) => images[i]!.split !== images[j]!.split;
  pairs.sort((p, q) => Number(leak(q.i, q.j)) - Number(leak(p.i, p.j)) || q.similarity - p.similarity || p.i - q.i || p.j - q.j);
  const nearDuplicates = pairs.slice(0, MAX_NEAR_DUPLICATES).map(({ i, j, similarity }) => ({ a: images[i]!, b: images[j]!, similarity, leak: leak(i, j) }));

  // 3. Out-of-fold probabilities of a linear head, all images.
  const labelNames = [...new Set(images.map((image) => image.label))].sort();
  const classCount = labelNames.length;
  const labelIndex = new Map(labelNames.map((name, index) => [name, index]));
  const labels = Int32Array.from(images, (image) => labelIndex.get(image.label)!);
  const suspected: SuspectedMislabel[] = [];
  let folds = 0;
  if (classCount >= 2) {
    const allRows = Array.from({ length: n }, (_, row) => row);
    folds = foldCountFor(options.folds ?? 5, labels);
    const foldRows = stratifiedFolds(labels, allRows, folds, options.seed);
    const tasks = foldRows.map((heldRows, f) => ({
      candidate: { head: { type: "linear" as const }, hyperparameters: {} },
      heldRows,
      trainRows: foldRows.flatMap((fold, g) => (g === f ? [] : fold)).sort((a, b) => a - b),
    }));
    const results: FoldResult[] = await options.runFolds(tasks, (done) => options.onProgress?.("out_of_fold", done, tasks.length));
    const oof = new Float32Array(n * classCount);
    tasks.forEach((task, f) => task.heldRows.forEach((row, i) => oof.set(results[f]!.probabilities.subarray(i * classCount, (i + 1) * classCount), row * classCount)));
    for (let row = 0; row < n; row++) {
      const given = labels[row]!;
      let best = given;
      for (let c = 0; c < classCount; c++) if (oof[row * classCount + c]! > oof[row * classCount + best]!) best = c;
      if (best === given) continue;
      const margin = oof[row * classCount + best]! - oof[row * classCount + given]!;
      if (margin < MISLABEL_MARGIN) continue;
      const top = neighbours[row]!;
      let agree = 0;
      for (let k = 0; k < top.size; k++) if (labels[top.rows[k]!] === best) agree++;
      const agreement = top.size ? agree / top.size : 0;
      if (agreement <= 0.5) continue;
      suspected.push({
        ...images[row]!,
        suggested_label: labelNames[best]!,
        score: margin,
        given_probability: oof[row * classCount + given]!,
        suggested_probability: oof[row * classCount + best]!,
        neighbour_agreement: agreement,
      });
    }
    suspected.sort((a, b) => b.score - a.score || (a.sha256 < b.sha256 ? -1 : 1));
  }

  // 4. Outliers.
  const scores = neighbours.map((top) => {
    const k = Math.min(OUTLIER_NEIGHBOURS, top.size);
    let sum = 0;
    for (let i = 0; i < k; i++) sum += top.sims[i]!;
    return k ? 1 - sum / k : 0;
  });
  const centre = median(scores);
  const mad = median(scores.map((score) => Math.abs(score - centre))) * 1.4826;
  const outliers: Outlier[] = mad > 0
    ? scores
        .map((score, row) => ({ ...images[row]!, score, robust_z: (score - centre) / mad }))
        .filter((entry) => entry.robust_z >= OUTLIER_Z)
        .sort((a, b) => b.robust_z - a.robust_z || (a.sha256 < b.sha256 ? -1 : 1))
        .slice(0, Math.max(1, Math.floor(n * MAX_OUTLIER_SHARE)))
    : [];

  return {
    near_duplicates: nearDuplicates,
    near_duplicate_count: pairs.length,
    suspected_mislabels: suspected.slice(0, MAX_MISLABELS),
    outliers,
    thresholds: { near_duplicate_similarity: threshold, mislabel_margin: MISLABEL_MARGIN, outlier_z: OUTLIER_Z, folds },
  };
}

/** Default hyperparameters for the out-of-fold heads (the job schema's defaults). */
export const DIAGNOSTICS_HYPERPARAMETERS: Hyperparameters = hyperparametersSchema.parse({});
