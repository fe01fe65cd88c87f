/**
 * `head: {"type": "auto"}` (gpu-runner/src/train/select-head.ts): the folds are stratified, seeded and built from
 * the training rows only; the search is deterministic for a seed, in-process and in worker threads alike; the
 * winner is the best mean CV accuracy with ties going to the simpler (earlier) candidate.
 *
 * Isolation: synthetic embeddings from a seeded generator; the worker-thread test starts and terminates its own pool.
 */
import { describe, expect, it } from "vitest";
import { createRandom } from "../../shared/random";
import { workerFoldRunner } from "../../gpu-runner/src/train/cv-pool";
import { inProcessFoldRunner, type FoldData } from "../../gpu-runner/src/train/fit-fold";
import { foldCountFor, pickBest, selectHead, stratifiedFolds, type Candidate } from "../../gpu-runner/src/train/select-head";
import { hyperparametersSchema } from "../../shared/schemas";

/** `perClass` rows per class around well-separated class centres in `dim` dimensions. */
function makeBlobs(classCount: number, perClass: number, dim: number, seed: number, spread = 0.6) {
  const random = createRandom(seed);
  const centres = Array.from({ length: classCount }, () => Array.from({ length: dim }, () => random.nextNormal()));
  const n = classCount * perClass;
  const embeddings = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let row = 0; row < n; row++) {
    const label = row % classCount; // interleaved, so position says nothing about class
    labels[row] = label;
    for (let d = 0; d < dim; d++) embeddings[row * dim + d] = centres[label]![d]! + spread * random.nextNormal();
  }
  return { embeddings, labels, dim, classCount, n };
}

const FAST = hyperparametersSchema.parse({ epochs: 15, early_stopping_patience: 0, batch_size: 64, learning_rate: 0.01 });
const SMALL_GRID: Candidate[] = [
  { head: { type: "linear" }, hyperparameters: { weight_decay: 1e-2 } },
  { head: { type: "linear" }, hyperparameters: { weight_decay: 1e-4, label_smoothing: 0 } },
];

describe("stratifiedFolds", () => {
  const labels = Int32Array.from({ length: 103 }, (_, i) => (i % 10 < 6 ? 0 : i % 10 < 9 ? 1 : 2)); // 3 classes, lopsided
  const validation = new Set([0, 5, 17, 42, 99, 100]);
  const train = Array.from({ length: labels.length }, (_, i) => i).filter((i) => !validation.has(i));

  it("partitions exactly the training rows: disjoint, covering, never a validation row", () => {
    const folds = stratifiedFolds(labels, train, 5, 7);
    const all = folds.flat();
    expect(all.length).toBe(train.length);
    expect(new Set(all).size).toBe(train.length);
    expect([...all].sort((a, b) => a - b)).toEqual(train);
    for (const row of all) expect(validation.has(row)).toBe(false);
  });

  it("spreads every class so that fold sizes per class differ by at most one", () => {
    const folds = stratifiedFolds(labels, train, 5, 7);
    for (const label of [0, 1, 2]) {
      const counts = folds.map((fold) => fold.filter((row) => labels[row] === label).length);
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    }
    const sizes = folds.map((fold) => fold.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it("is a function of the seed: same seed same folds, another seed other folds", () => {
    expect(stratifiedFolds(labels, train, 5, 7)).toEqual(stratifiedFolds(labels, train, 5, 7));
    expect(stratifiedFolds(labels, train, 5, 8)).not.toEqual(stratifiedFolds(labels, train, 5, 7));
  });

  it("uses fewer folds when the smallest class has fewer training rows, but never fewer than 2", () => {
    expect(foldCountFor(5, [0, 0, 0, 1, 1, 1, 1, 1, 1])).toBe(3);
    expect(foldCountFor(5, [0, 1, 1, 1])).toBe(2);
    expect(foldCountFor(5, Int32Array.from({ length: 100 }, (_, i) => i % 2))).toBe(5);
    expect(() => stratifiedFolds(labels, train, 1, 0)).toThrow(RangeError);
  });
});

describe("pickBest", () => {
  it("takes the highest mean and sends ties to the earlier (simpler) candidate", () => {
    expect(pickBest([0.8, 0.9, 0.85])).toBe(1);
    expect(pickBest([0.9, 0.9, 0.85])).toBe(0);
    expect(pickBest([0.7, 0.9, 0.9])).toBe(1);
  });
});

describe("selectHead", () => {
  const blobs = makeBlobs(3, 30, 16, 11);
  const data: FoldData = { ...blobs, hyperparameters: FAST };
  const trainIndex = Array.from({ length: blobs.n }, (_, i) => i).filter((i) => i % 5 !== 0);

  it("reports every candidate's mean and std over the folds, and refits nothing on validation rows", async () => {
    const seen = new Set<number>();
    const runner = inProcessFoldRunner(data);
    const { selection, chosen } = await selectHead({ labels: blobs.labels, trainIndex }, {
      folds: 4, seed: 3, candidates: SMALL_GRID,
      runFolds: (tasks, onDone) => {
        for (const task of tasks) for (const row of [...task.trainRows, ...task.heldRows]) seen.add(row);
        return runner(tasks, onDone);
      },
    });
    expect(selection.strategy).toBe("cv");
    expect(selection.folds).toBe(4);
    expect(selection.candidates).toHaveLength(2);
    for (const candidate of selection.candidates) {
      expect(candidate.cv_accuracy_mean).toBeGreaterThan(0.8); // well-separated blobs
      expect(candidate.cv_accuracy_std).toBeGreaterThanOrEqual(0);
    }
    expect(selection.chosen).toEqual(selection.candidates[selection.chosen_index]);
    expect(chosen.head.type).toBe("linear");
    expect([...seen].sort((a, b) => a - b)).toEqual(trainIndex); // the validation rows (i % 5 === 0) never appear
  });

  it("is deterministic for a seed, and worker threads give the same numbers as the main thread", async () => {
    const options = { folds: 3, seed: 5, candidates: SMALL_GRID };
    const inProcess = await selectHead({ labels: blobs.labels, trainIndex }, { ...options, runFolds: inProcessFoldRunner(data) });
    const again = await selectHead({ labels: blobs.labels, trainIndex }, { ...options, runFolds: inProcessFoldRunner(data) });
    const workers = await selectHead({ labels: blobs.labels, trainIndex }, { ...options, runFolds: workerFoldRunner(data, { maxWorkers: 2 }) });
    const strip = (s: typeof inProcess.selection) => ({ ...s, search_ms: 0 });
    expect(strip(again.selection)).toEqual(strip(inProcess.selection));
    expect(strip(workers.selection)).toEqual(strip(inProcess.selection));
  });
});
