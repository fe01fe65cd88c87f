/**
 * One fit of the cross-validation search: train a candidate on some rows, score it on others. Shared by the worker
 * threads (cv-worker.ts) and by the in-process runner the tests use, so both compute the same numbers. Every fit
 * uses the L-BFGS solver (the runner's default, and what the refit of the winner uses), which needs no tfjs: a
 * worker thread starts without loading it.
 */
import { applyHead } from "../../../shared/head";
import type { Hyperparameters } from "../../../shared/schemas";
import type { FoldTask } from "./select-head";
import { trainHeadLbfgs } from "./lbfgs-head";
import { validateInput } from "./train-head-common";
import { selectColumns, subsetWidth, type FeatureSubset } from "./feature-subset";

export interface FoldData {
  /** Shape [itemCount, dim]. */
  embeddings: Float32Array;
  dim: number;
  labels: Int32Array;
  classCount: number;
  /** The job's hyperparameters; a candidate overrides some of them. */
  hyperparameters: Hyperparameters;
}

export interface FoldResult {
  /** Top-1 accuracy on the held-out rows. */
  accuracy: number;
  /** Shape [heldRows.length, classCount]: the head's probabilities for the held-out rows (out-of-fold predictions). */
  probabilities: Float32Array;
}

/** The candidate trained on `task.trainRows`, applied to `task.heldRows`. */
/** Column subsets of a fold data's embeddings, made once per thread (a subset's folds and candidates share one). */
const subsetMatrices = new WeakMap<FoldData, Map<string, Float32Array>>();

function columnsOf(data: FoldData, subset: FeatureSubset): Float32Array {
  const key = JSON.stringify(subset.ranges);
  const byData = subsetMatrices.get(data) ?? new Map<string, Float32Array>();
  subsetMatrices.set(data, byData);
  if (!byData.has(key)) byData.set(key, selectColumns(data.embeddings, data.dim, subset));
  return byData.get(key)!;
}

export async function fitFold(data: FoldData, task: FoldTask): Promise<FoldResult> {
  const { labels, classCount } = data;
  const subset = task.candidate.features;
  const embeddings = subset ? columnsOf(data, subset) : data.embeddings;
  const dim = subset ? subsetWidth(subset) : data.dim;
  const input = { embeddings, dim, labels, classCount, trainIndex: task.trainRows, valIndex: task.heldRows };
  validateInput(input);
  const trained = await trainHeadLbfgs(
    input,
    // The held-out fold only scores: no early stopping on it, and the final weights are kept (keep "last").
    { head: task.candidate.head, hyperparameters: { ...data.hyperparameters, early_stopping_patience: 0, ...task.candidate.hyperparameters }, keep: "last" },
  );
  const held = new Float32Array(task.heldRows.length * dim);
  task.heldRows.forEach((row, i) => held.set(embeddings.subarray(row * dim, (row + 1) * dim), i * dim));
  const probabilities = applyHead(trained.head, held, task.heldRows.length);
  let correct = 0;
  task.heldRows.forEach((row, i) => {
    let best = 0;
    for (let c = 1; c < classCount; c++) if (probabilities[i * classCount + c]! > probabilities[i * classCount + best]!) best = c;
    if (best === labels[row]) correct++;
  });
  return { accuracy: correct / task.heldRows.length, probabilities };
}

/** Runs tasks one after another on this thread (tests, and runners with one core). */
export function inProcessFoldRunner(data: FoldData) {
  return async (tasks: FoldTask[], onDone?: (done: number) => void): Promise<FoldResult[]> => {
    const out: FoldResult[] = [];
    for (const task of tasks) {
      out.push(await fitFold(data, task));
      onDone?.(out.length);
    }
    return out;
  };
}
