/**
 * Data shaping for the dashboard's views: pure functions from API answers to what a chart or table draws. No DOM here,
 * so tests/node/dashboard-shaping.test.ts checks them in Node.
 */

export interface EpochMetrics {
  epoch: number;
  train_loss: number;
  val_loss: number;
  train_accuracy: number;
  val_accuracy: number;
}

/** Series for uPlot: x (epochs) then four y series, aligned; a missing value is null (a gap, not a zero). */
export interface Curves {
  epoch: number[];
  trainLoss: (number | null)[];
  valLoss: (number | null)[];
  trainAccuracy: (number | null)[];
  valAccuracy: (number | null)[];
}

const finite = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/**
 * Loss and accuracy curves from a job's epochs, as they arrive: the job's `metrics.epochs` and then one SSE `metrics`
 * event per epoch. The same epoch may come twice (the stream resumes after a reconnect, or a retried attempt starts
 * over): the last report of an epoch wins, and epochs are sorted.
 */
export function curvesFromEpochs(epochs: Iterable<Partial<EpochMetrics> | null | undefined>): Curves {
  const byEpoch = new Map<number, Partial<EpochMetrics>>();
  for (const e of epochs) {
    if (!e || typeof e.epoch !== "number" || !Number.isFinite(e.epoch)) continue;
    byEpoch.set(e.epoch, e);
  }
  const sorted = [...byEpoch.keys()].sort((a, b) => a - b);
  const pick = (key: keyof EpochMetrics) => sorted.map((k) => finite(byEpoch.get(k)![key]));
  return { epoch: sorted, trainLoss: pick("train_loss"), valLoss: pick("val_loss"), trainAccuracy: pick("train_accuracy"), valAccuracy: pick("val_accuracy") };
}

export interface HeatCell {
  row: number;
  col: number;
  count: number;
  /** count / row total: the share of images of the true label (row) predicted as col; 0 for an empty row. */
  share: number;
  /** Background lightness step 0..5 (CSS classes), and whether the text must be light to keep 4.5:1 contrast. */
  level: number;
  darkText: boolean;
  correct: boolean;
}

export interface Heatmap {
  labels: string[];
  rows: HeatCell[][];
  rowTotals: number[];
  colTotals: number[];
  total: number;
  correct: number;
}

/**
 * The confusion matrix (rows: true label, columns: predicted) as heat-map cells. Colour follows the row share, not the
 * raw count, so a rare class's confusions show as clearly as a common one's. Ragged or negative input is an error:
 * a heat map that silently drops cells would mislead.
 */
export function heatmapFromMatrix(matrix: number[][], labels: string[]): Heatmap {
  const n = labels.length;
  if (matrix.length !== n || matrix.some((row) => row.length !== n)) {
    throw new Error(`confusion matrix is ${matrix.length}x${matrix[0]?.length ?? 0}, expected ${n}x${n} for ${n} labels`);
  }
  if (matrix.some((row) => row.some((v) => !Number.isInteger(v) || v < 0))) throw new Error("confusion matrix entries must be non-negative integers");
  const rowTotals = matrix.map((row) => row.reduce((s, v) => s + v, 0));
  const colTotals = labels.map((_, c) => matrix.reduce((s, row) => s + row[c], 0));
  const rows = matrix.map((row, r) =>
    row.map((count, c) => {
      const share = rowTotals[r] > 0 ? count / rowTotals[r] : 0;
      const level = count === 0 ? 0 : Math.min(5, 1 + Math.floor(share * 5));
      return { row: r, col: c, count, share, level, darkText: level < 4, correct: r === c };
    }),
  );
  return { labels, rows, rowTotals, colTotals, total: rowTotals.reduce((s, v) => s + v, 0), correct: matrix.reduce((s, row, i) => s + row[i], 0) };
}

export interface ReliabilityBin {
  /** Mean confidence of the predictions in the bin, and how often they were right. */
  confidence: number;
  accuracy: number;
  count: number;
  lower?: number;
  upper?: number;
}

/**
 * Reliability bins from a model card's `metrics.calibration`, which may be a list of bins or `{bins: [...]}`, with
 * field names `confidence`/`mean_confidence`/`avg_confidence` and `accuracy`. Empty bins are dropped.
 */
export function reliabilityBins(calibration: unknown): ReliabilityBin[] {
  const list = Array.isArray(calibration) ? calibration : Array.isArray((calibration as any)?.bins) ? (calibration as any).bins : [];
  const out: ReliabilityBin[] = [];
  for (const bin of list) {
    if (!bin || typeof bin !== "object") continue;
    const confidence = finite(bin.confidence ?? bin.mean_confidence ?? bin.avg_confidence);
    const accuracy = finite(bin.accuracy ?? bin.mean_accuracy);
    const count = finite(bin.count ?? bin.n ?? bin.support) ?? 0;
    if (confidence === null || accuracy === null || count <= 0) continue;
    out.push({ confidence, accuracy, count, lower: finite(bin.lower ?? bin.lo) ?? undefined, upper: finite(bin.upper ?? bin.hi) ?? undefined });
  }
  return out.sort((a, b) => a.confidence - b.confidence);
}

/** Expected calibration error from a model card: `ece` (API.md), else `expected_calibration_error`, else from the bins. */
export function calibrationError(metrics: Record<string, unknown> | null | undefined): number | null {
  if (!metrics) return null;
  const direct = finite(metrics.ece) ?? finite(metrics.expected_calibration_error);
  if (direct !== null) return direct;
  const bins = reliabilityBins(metrics.calibration);
  const n = bins.reduce((s, b) => s + b.count, 0);
  return n > 0 ? bins.reduce((s, b) => s + (b.count / n) * Math.abs(b.accuracy - b.confidence), 0) : null;
}

import type { Misclassified } from "../../shared/metrics";
export type { Misclassified };

/** The misclassified validation images behind one confusion-matrix cell (true label `row`, predicted `col`). */
export function imagesForCell(misclassified: Misclassified[] | undefined, labels: string[], row: number, col: number): Misclassified[] {
  if (!misclassified) return [];
  return misclassified.filter((m) => m.label === labels[row] && m.predicted === labels[col]);
}

/** Per-label bars for the dataset chart: labels in the dataset's order with train and val counts. */
export function labelBars(labels: { name: string; count: number; train: number; val: number }[]) {
  return { x: labels.map((_, i) => i), names: labels.map((l) => l.name), train: labels.map((l) => l.train), val: labels.map((l) => l.val), max: Math.max(0, ...labels.map((l) => l.count)) };
}

export { formatBytes } from "../../shared/format-bytes";

export const percent = (v: number | null | undefined, digits = 1) => (typeof v === "number" && Number.isFinite(v) ? `${(v * 100).toFixed(digits)}%` : "–");

/** Phase and progress in words, e.g. "embedding images: 120 of 400 (30%)". */
export function describeProgress(progress: { phase: string | null; done: number; total: number } | undefined): string {
  if (!progress || !progress.phase) return "waiting for a runner";
  const phase = progress.phase.replace(/_/g, " ");
  if (progress.total > 0) return `${phase}: ${progress.done} of ${progress.total} (${Math.round((100 * progress.done) / progress.total)}%)`;
  return phase;
}

/**
 * Items per second from two progress samples of the same phase (for "embedding 41 img/s"); null when it cannot be
 * told (a new phase, no time passed, no progress).
 */
export function rate(prev: { phase: string | null; done: number; at: number } | null, next: { phase: string | null; done: number; at: number }): number | null {
  if (!prev || prev.phase !== next.phase || next.at <= prev.at || next.done < prev.done) return null;
  return ((next.done - prev.done) * 1000) / (next.at - prev.at);
}
