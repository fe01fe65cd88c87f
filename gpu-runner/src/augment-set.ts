/**
 * A job's training matrix with its augmentation (`augmentation: {"views": K, "tta": "none" | "flip"}`):
 * - rows 0..n-1 are the images as before; with `tta: "flip"` each is the mean of the image's embedding and its
 *   mirror's (view 1), exactly what the edge computes for the same image;
 * - then, per view 1..K, one row per TRAINING image (its view's embedding, its label). Validation images never get
 *   view rows: they only measure.
 * `viewRows` maps each training row to its view rows, so cross-validation keeps an image's views in the image's
 * fold (a view of a held-out image would otherwise leak into the fit that scores it).
 */
import { averageEmbeddings, MIRROR_VIEW } from "../../shared/image/augment";
import type { Augmentation } from "../../shared/schemas";

export interface AugmentableSet {
  /** sha256 per row 0..n-1. */
  shas: readonly string[];
  labels: Int32Array;
  split: { train: number[]; val: number[] };
  /** [n, dim] */
  embeddings: Float32Array;
  dim: number;
}

export interface AugmentedSet {
  labels: Int32Array;
  split: { train: number[]; val: number[] };
  /** [n + K·train, dim], on a SharedArrayBuffer (the training thread reads it without a copy). */
  embeddings: Float32Array;
  /** Training row → its view rows (empty map without views). */
  viewRows: Map<number, number[]>;
  /** Training rows that are views (not images). */
  viewRowCount: number;
}

/**
 * @param views view number → sha256 → embedding; must hold view 1 for every row when `tta` is "flip" and views
 *   1..K for every training row (rows whose view is missing, e.g. an image that stopped decoding, get none).
 */
export function augmentTrainingSet(set: AugmentableSet, augmentation: Augmentation, views: ReadonlyMap<number, ReadonlyMap<string, Float32Array>>): AugmentedSet {
  const { dim, shas } = set;
  const n = shas.length;
  const extra: Array<{ of: number; values: Float32Array }> = [];
  for (let view = 1; view <= augmentation.views; view++) {
    const byView = views.get(view);
    for (const row of set.split.train) {
      const values = byView?.get(shas[row]!);
      if (values) extra.push({ of: row, values });
    }
  }
  const total = n + extra.length;
  const embeddings = new Float32Array(new SharedArrayBuffer(total * dim * 4));
  const mirrors = augmentation.tta === "flip" ? views.get(MIRROR_VIEW) : undefined;
  for (let row = 0; row < n; row++) {
    const plain = set.embeddings.subarray(row * dim, (row + 1) * dim);
    const mirror = mirrors?.get(shas[row]!);
    if (augmentation.tta === "flip" && !mirror) throw new Error(`flip averaging: no mirror embedding for image ${shas[row]}`);
    embeddings.set(mirror ? averageEmbeddings(plain, mirror) : plain, row * dim);
  }
  const labels = new Int32Array(total);
  labels.set(set.labels.subarray(0, n));
  const viewRows = new Map<number, number[]>();
  const train = [...set.split.train];
  extra.forEach(({ of, values }, index) => {
    const row = n + index;
    embeddings.set(values, row * dim);
    labels[row] = set.labels[of]!;
    train.push(row);
    if (!viewRows.has(of)) viewRows.set(of, []);
    viewRows.get(of)!.push(row);
  });
  return { labels, split: { train, val: [...set.split.val] }, embeddings, viewRows, viewRowCount: extra.length };
}
