/**
 * Head training (gpu-runner/src/train/train-head.ts) on synthetic embeddings, the head's two stored forms
 * (shared/head.ts: manifest + weights binary, and the tfjs layers export), and the evaluation metrics
 * (shared/metrics.ts) on a hand-computed example.
 *
 * The embeddings are Gaussian clusters drawn from shared/random.ts, so every dataset here is the same on every run;
 * dims stay small (32-d, 3 classes, ~200 rows) so each training run takes well under a second on tfjs's pure-JS cpu
 * backend.
 *
 * Isolation: the tfjs backend is process-global; `before` selects "cpu" and no test changes it. Every test builds
 * its own dataset with the factories below and disposes what it creates (trainHead frees its own tensors).
 */
import assert from "node:assert/strict";
import { beforeAll, describe, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import { applyHead, headToTfjsModel, parseHead, serializeHead, type Head } from "../../shared/head";
import { CALIBRATION_BIN_COUNT, evaluate } from "../../shared/metrics";
import { createRandom } from "../../shared/random";
import type { HeadSpec } from "../../shared/schemas";
import { splitStratified } from "../../shared/split";
import { DEFAULT_HYPERPARAMETERS } from "../../gpu-runner/src/train/defaults";
import { trainHead, type HeadTrainingConfig, type HeadTrainingInput, type TrainingHyperparameters } from "../../gpu-runner/src/train/train-head";

beforeAll(async () => {
  await tf.setBackend("cpu");
  await tf.ready();
});

// ---- factories ----------------------------------------------------------------------------------------------

interface ClusterOptions {
  classCount?: number;
  perClass?: number;
  dim?: number;
  /** Distance of each class centre from the origin; the noise has std 1 per feature. */
  separation?: number;
  /** Replace the labels with seeded random ones: nothing to learn, so validation loss can only get worse. */
  shuffleLabels?: boolean;
  seed?: number;
}

/**
 * `classCount` Gaussian clusters in `dim` dimensions: centre c is a random direction scaled to `separation`, and each
 * row is its centre plus N(0, 1) noise per feature, offset by 5 and scaled by 3 so standardisation has work to do.
 * Split 75/25 per class with splitStratified.
 *
 * @returns a trainHead input: embeddings [classCount·perClass, dim], labels [classCount·perClass].
 */
function makeClusters(options: ClusterOptions = {}): HeadTrainingInput {
  const { classCount = 3, perClass = 64, dim = 32, separation = 6, shuffleLabels = false, seed = 1 } = options;
  const random = createRandom(seed);
  const centres = Array.from({ length: classCount }, () => {
    const direction = Float64Array.from({ length: dim }, () => random.nextNormal());
    const norm = Math.hypot(...direction);
    return direction.map((value) => (value / norm) * separation);
  });
  const count = classCount * perClass;
  const embeddings = new Float32Array(count * dim);
  const labels = new Int32Array(count);
  for (let row = 0; row < count; row++) {
    const label = row % classCount;
    labels[row] = shuffleLabels ? random.nextInt(classCount) : label;
    for (let i = 0; i < dim; i++) embeddings[row * dim + i] = 5 + 3 * (centres[label]![i]! + random.nextNormal());
  }
  const split = splitStratified(labels, 0.25, seed);
  return {
    embeddings, dim, labels, classCount, trainIndex: split.train, valIndex: split.val,
    labelNames: Array.from({ length: classCount }, (_, c) => `class_${c}`),
  };
}

const MLP_HEAD: HeadSpec = { type: "mlp", hidden: [16], dropout: 0.2 };

/** A training config: the job defaults with a shorter schedule, overridden by `overrides` (default solver). */
function makeBaseConfig(head: HeadSpec, overrides: Partial<TrainingHyperparameters> = {}): HeadTrainingConfig {
  return { head, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs: 15, learning_rate: 0.01, ...overrides } };
}

/** Rows `indices` of a [rows, dim] matrix, shape [indices.length, dim]. */
function gatherRows(matrix: Float32Array, dim: number, indices: readonly number[]): Float32Array {
  const out = new Float32Array(indices.length * dim);
  indices.forEach((row, position) => out.set(matrix.subarray(row * dim, (row + 1) * dim), position * dim));
  return out;
}

/** Every float of a head's standardisation and layers, in order: equal arrays mean equal heads. */
function headFloats(head: Head): Float32Array[] {
  return [...(head.standardize ? [head.standardize.mean, head.standardize.std] : []), ...head.layers.flatMap((layer) => [layer.weights, layer.bias])];
}

/** Mean label-smoothed cross-entropy of `probabilities` [n, classCount], the loss trainHead reports as val_loss. */
function smoothedCrossEntropy(probabilities: Float32Array, labels: ArrayLike<number>, classCount: number, smoothing: number): number {
  let total = 0;
  for (let row = 0; row < labels.length; row++) {
    for (let c = 0; c < classCount; c++) {
      const target = (c === labels[row] ? 1 - smoothing : 0) + smoothing / classCount;
      total -= target * Math.log(probabilities[row * classCount + c]!);
    }
  }
  return total / labels.length;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

// ---- trainHead ----------------------------------------------------------------------------------------------

const HEADS = [["linear", { type: "linear" }], ["MLP", MLP_HEAD]] as Array<[string, HeadSpec]>;
for (const [kind, head, solver] of HEADS.flatMap(([kind, head]) => (["lbfgs", "minibatch"] as const).map((solver) => [kind, head, solver] as const))) {
  describe(`trainHead, ${kind} head, ${solver} solver`, () => {
    const makeConfig = (spec: HeadSpec, overrides: Partial<TrainingHyperparameters> = {}): HeadTrainingConfig => ({ ...makeBaseConfig(spec, overrides), solver });

    it("ends with a training loss far below that of uniform predictions (ln 3)", async () => {
      const { epochs } = await trainHead(makeClusters(), makeConfig(head), {}, tf);
      assert.ok(epochs.length >= 2);
      assert.ok(epochs.at(-1)!.train_loss < Math.log(3) * 0.5, `train loss ${epochs[0]!.train_loss} → ${epochs.at(-1)!.train_loss}`);
      // Mini-batch training starts near uniform and visibly descends; L-BFGS's first step already lands near the optimum.
      if (solver === "minibatch") assert.ok(epochs.at(-1)!.train_loss < epochs[0]!.train_loss * 0.8);
    });

    it("classifies well-separated clusters far above chance on the validation rows", async () => {
      const input = makeClusters();
      const result = await trainHead(input, makeConfig(head), {}, tf);
      assert.ok(result.epochs[result.bestEpoch - 1]!.val_accuracy > 0.9);
      // The same, measured independently of trainHead: the returned head applied with applyHead, scored by evaluate.
      const probabilities = applyHead(result.head, gatherRows(input.embeddings, input.dim, input.valIndex), input.valIndex.length);
      const metrics = evaluate(probabilities, input.valIndex.length, 3, input.valIndex.map((row) => input.labels[row]!), result.head.labels);
      assert.ok(metrics.accuracy > 0.9, `accuracy ${metrics.accuracy} (chance is 1/3)`);
      assert.deepEqual(result.head.labels, ["class_0", "class_1", "class_2"]);
    });

    it("gives identical epoch metrics and weights for the same seed and inputs", async () => {
      const first = await trainHead(makeClusters(), makeConfig(head, { seed: 5, epochs: 4 }), {}, tf);
      const second = await trainHead(makeClusters(), makeConfig(head, { seed: 5, epochs: 4 }), {}, tf);
      assert.deepEqual(second.epochs, first.epochs);
      assert.deepEqual(headFloats(second.head), headFloats(first.head));
    });

    it.skipIf(solver === "lbfgs" && kind === "linear")("gives different weights for a different seed", async () => {
      // Same data and split; only the training seed (init, shuffle order, dropout masks) changes.
      const first = await trainHead(makeClusters(), makeConfig(head, { seed: 5, epochs: 4 }), {}, tf);
      const second = await trainHead(makeClusters(), makeConfig(head, { seed: 6, epochs: 4 }), {}, tf);
      assert.notDeepEqual(first.head.layers.map((layer) => layer.weights), second.head.layers.map((layer) => layer.weights));
      assert.deepEqual(first.head.standardize, second.head.standardize, "standardisation depends on the train rows only");
    });
  });
}

const makeConfig = makeBaseConfig;

describe("trainHead, stopping", () => {
  it("stops early once val loss has not improved for `patience` epochs and returns the best epoch's weights", async () => {
    // Random labels and a wide MLP at a high learning rate: it memorises the training rows and the validation loss
    // climbs after the first few epochs.
    const input = makeClusters({ shuffleLabels: true, perClass: 40 });
    const patience = 3;
    const maxEpochs = 200;
    const config = makeConfig({ type: "mlp", hidden: [64], dropout: 0 }, { epochs: maxEpochs, learning_rate: 0.05, early_stopping_patience: patience });
    const result = await trainHead(input, config, {}, tf);

    assert.equal(result.stopReason, "early_stopping");
    assert.ok(result.epochs.length < maxEpochs);
    assert.ok(result.bestEpoch <= result.epochs.length);
    assert.equal(result.bestEpoch, result.epochs.length - patience);
    const valLosses = result.epochs.map((epoch) => epoch.val_loss);
    assert.equal(Math.min(...valLosses), valLosses[result.bestEpoch - 1]);

    // The returned head reproduces the best epoch's val loss, not the last epoch's.
    const probabilities = applyHead(result.head, gatherRows(input.embeddings, input.dim, input.valIndex), input.valIndex.length);
    const headLoss = smoothedCrossEntropy(probabilities, input.valIndex.map((row) => input.labels[row]!), 3, config.hyperparameters.label_smoothing);
    const bestLoss = valLosses[result.bestEpoch - 1]!;
    const lastLoss = valLosses.at(-1)!;
    assert.ok(Math.abs(headLoss - bestLoss) < 1e-4, `head's val loss ${headLoss}, best epoch's ${bestLoss}`);
    assert.ok(Math.abs(headLoss - lastLoss) > 1e-3, `the last epoch (${lastLoss}) must be distinguishable from the best`);
  });

  it("runs every epoch when patience is 0 (early stopping off)", async () => {
    const input = makeClusters({ shuffleLabels: true, perClass: 40 });
    const config = makeConfig({ type: "mlp", hidden: [64], dropout: 0 }, { epochs: 12, learning_rate: 0.05, early_stopping_patience: 0 });
    const result = await trainHead(input, config, {}, tf);
    assert.equal(result.stopReason, "completed");
    assert.equal(result.epochs.length, 12);
  });

  it("stops after the epoch where shouldStop first returns true, reporting every finished epoch to onEpoch", async () => {
    const reported: number[] = [];
    const result = await trainHead(makeClusters(), makeConfig({ type: "linear" }, { epochs: 50 }), {
      onEpoch: (metrics) => void reported.push(metrics.epoch),
      shouldStop: () => reported.length >= 2,
    }, tf);
    assert.equal(result.stopReason, "stopped_by_caller");
    assert.deepEqual(result.epochs.map((epoch) => epoch.epoch), [1, 2]);
    assert.deepEqual(reported, [1, 2]);
    assert.ok(result.bestEpoch >= 1 && result.bestEpoch <= 2);
  });

  it("rejects an empty validation set and rows listed in both train and val", async () => {
    const input = makeClusters({ perClass: 8 });
    await assert.rejects(trainHead({ ...input, valIndex: [] }, makeConfig({ type: "linear" }), {}, tf), /valIndex is empty/);
    await assert.rejects(trainHead({ ...input, valIndex: [input.trainIndex[0]!] }, makeConfig({ type: "linear" }), {}, tf), /appears twice/);
  });
});

// ---- stored forms of a trained head -------------------------------------------------------------------------

describe("trained head, saved and loaded", () => {
  let input: HeadTrainingInput;
  let head: Head;
  let valRows: Float32Array;
  beforeAll(async () => {
    input = makeClusters();
    ({ head } = await trainHead(input, makeConfig(MLP_HEAD, { epochs: 5 }), {}, tf));
    valRows = gatherRows(input.embeddings, input.dim, input.valIndex);
  });

  it("round-trips through serializeHead / parseHead (JSON manifest, copied bytes) to bit-identical predictions", () => {
    const { manifest, weights } = serializeHead(head);
    // What storage does to it: the manifest goes through JSON, the binary is a fresh buffer.
    const loaded = parseHead(JSON.parse(JSON.stringify(manifest)), weights.slice());
    assert.deepEqual(headFloats(loaded), headFloats(head));
    assert.deepEqual(loaded.labels, head.labels);
    const n = input.valIndex.length;
    assert.deepEqual(applyHead(loaded, valRows, n), applyHead(head, valRows, n));
  });

  it("exports a tfjs layers model that predicts applyHead's probabilities within 1e-5", async () => {
    const { modelJson, weightData } = headToTfjsModel(head);
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: modelJson.weightsManifest[0]!.weights, weightData }),
    );
    const n = input.valIndex.length;
    const x = tf.tensor2d(valRows, [n, input.dim]);
    const predicted = model.predict(x) as tf.Tensor2D;
    assert.deepEqual(predicted.shape, [n, 3]);
    const difference = maxAbsDiff((await predicted.data()) as Float32Array, applyHead(head, valRows, n));
    assert.ok(difference < 1e-5, `max |tfjs - applyHead| = ${difference}`);
    assert.deepEqual(modelJson.userDefinedMetadata.labels, head.labels);
    tf.dispose([x, predicted]);
    model.dispose();
  });
});

// ---- evaluate -----------------------------------------------------------------------------------------------

describe("evaluate", () => {
  // Five examples, three classes. Top-1 prediction, confidence and ECE bin (⌈15·confidence⌉ − 1) per row:
  //   row 0: true cat, predicts cat (0.70, bin 10)  correct
  //   row 1: true dog, predicts dog (0.68, bin 10)  correct
  //   row 2: true cat, predicts dog (0.50, bin 7)   wrong
  //   row 3: true fox, predicts fox (0.85, bin 12)  correct
  //   row 4: true fox, cat and dog tie at 0.45: the lower index (cat) wins (bin 6), wrong
  // No confidence sits on a bin edge k/15, so float32 rounding cannot move a row to another bin.
  const labels = ["cat", "dog", "fox"];
  const probabilities = Float32Array.from([
    0.7, 0.2, 0.1,
    0.1, 0.68, 0.22,
    0.2, 0.5, 0.3,
    0.05, 0.1, 0.85,
    0.45, 0.45, 0.1,
  ]);
  const truth = [0, 1, 0, 2, 2];
  const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual}, expected ${expected}`);

  it("computes accuracy, the confusion matrix and per-class precision, recall, F1 and support", () => {
    const metrics = evaluate(probabilities, 5, 3, truth, labels);
    close(metrics.accuracy, 3 / 5, "accuracy");
    // confusion_matrix[true][predicted]
    assert.deepEqual(metrics.confusion_matrix, [
      [1, 1, 0],
      [0, 1, 0],
      [1, 0, 1],
    ]);
    // cat: 1 of 2 predictions right, 1 of 2 cats found; dog: 1 of 2, 1 of 1; fox: 1 of 1, 1 of 2.
    const expected = [
      { label: "cat", precision: 0.5, recall: 0.5, f1: 0.5, support: 2 },
      { label: "dog", precision: 0.5, recall: 1, f1: 2 / 3, support: 1 },
      { label: "fox", precision: 1, recall: 0.5, f1: 2 / 3, support: 2 },
    ];
    expected.forEach((want, c) => {
      const got = metrics.per_class[c]!;
      assert.equal(got.label, want.label);
      assert.equal(got.support, want.support);
      close(got.precision, want.precision, `${want.label} precision`);
      close(got.recall, want.recall, `${want.label} recall`);
      close(got.f1, want.f1, `${want.label} f1`);
    });
    close(metrics.macro_f1, (0.5 + 2 / 3 + 2 / 3) / 3, "macro F1");
    assert.equal(metrics.count, 5);
  });

  it("computes the expected calibration error over 15 confidence bins and the mean cross-entropy", () => {
    const metrics = evaluate(probabilities, 5, 3, truth, labels);
    assert.equal(CALIBRATION_BIN_COUNT, 15);
    // Bin 10 holds rows 0 and 1: accuracy 1, mean confidence 0.69. Bins 7, 12, 6 hold one row each.
    const ece = (2 / 5) * Math.abs(1 - 0.69) + (1 / 5) * (Math.abs(0 - 0.5) + Math.abs(1 - 0.85) + Math.abs(0 - 0.45));
    close(metrics.expected_calibration_error, ece, "ECE");
    close(metrics.loss, -(Math.log(0.7) + Math.log(0.68) + Math.log(0.2) + Math.log(0.85) + Math.log(0.1)) / 5, "loss");
  });

  it("scores a class nobody predicted with precision 0 and leaves a class without examples out of macro F1", () => {
    // Both rows are cats predicted as cat; dog is never predicted and has no examples.
    const metrics = evaluate(Float32Array.from([0.9, 0.1, 0.8, 0.2]), 2, 2, [0, 0], ["cat", "dog"]);
    assert.deepEqual(metrics.per_class[1], { label: "dog", precision: 0, recall: 0, f1: 0, support: 0 });
    assert.equal(metrics.macro_f1, 1);
    const empty = evaluate(new Float32Array(0), 0, 2, [], ["cat", "dog"]);
    assert.deepEqual([empty.accuracy, empty.loss, empty.expected_calibration_error, empty.macro_f1], [0, 0, 0, 0]);
  });

  it("rejects probabilities, labels or names whose sizes do not match", () => {
    assert.throws(() => evaluate(probabilities, 4, 3, truth, labels), /probabilities has 15 values/);
    assert.throws(() => evaluate(probabilities, 5, 3, [0, 1], labels), /trueLabels has 2 values/);
    assert.throws(() => evaluate(probabilities, 5, 3, [0, 1, 0, 2, 3], labels), /trueLabels\[4\]/);
  });
});
