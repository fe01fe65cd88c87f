/**
 * The L-BFGS head solver (gpu-runner/src/train/lbfgs.ts, dense-objective.ts, onnx-objective.ts, lbfgs-head.ts):
 * the minimiser on functions with a known minimum, the objective's gradient against finite differences, the
 * onnxruntime objective against the plain-JS one, and the trainer's determinism and hooks.
 *
 * Small sizes throughout (≤ 200 rows, ≤ 16-d) so every case runs in milliseconds.
 */
import assert from "node:assert/strict";
import { describe, it } from "vitest";
import { applyHead } from "../../shared/head";
import { createRandom } from "../../shared/random";
import { splitStratified } from "../../shared/split";
import { DEFAULT_HYPERPARAMETERS } from "../../gpu-runner/src/train/defaults";
import { denseLogits, DenseObjective, parameterCount, type DenseObjectiveInput } from "../../gpu-runner/src/train/dense-objective";
import { Lbfgs, type Objective } from "../../gpu-runner/src/train/lbfgs";
import { ADAM_MIN_ROWS, ADAM_PATIENCE, trainHeadLbfgs } from "../../gpu-runner/src/train/lbfgs-head";
import { ADAM_BATCH_SIZE, ADAM_MIN_UPDATES } from "../../gpu-runner/src/train/minibatch-adam";
import { loadOrt, OnnxObjective } from "../../gpu-runner/src/train/onnx-objective";
import type { HeadTrainingInput } from "../../gpu-runner/src/train/train-head";
import { computeStandardization, gatherStandardizedRows } from "../../gpu-runner/src/train/train-head-common";

const ortAvailable = (await loadOrt()) !== null;

/** Rosenbrock's valley in n dimensions: minimum 0 at (1, ..., 1), a classic test for quasi-Newton methods. */
function rosenbrock(n: number): Objective {
  return {
    dimension: n,
    evaluate(x, g) {
      let f = 0;
      g.fill(0);
      for (let i = 0; i < n - 1; i++) {
        const a = x[i + 1]! - x[i]! * x[i]!;
        const b = 1 - x[i]!;
        f += 100 * a * a + b * b;
        g[i] += -400 * x[i]! * a - 2 * b;
        g[i + 1] += 200 * a;
      }
      return f;
    },
  };
}

/** Random float32 rows, labels and smoothed, weighted targets: a small objective input. */
function makeObjectiveInput(rows: number, dim: number, classCount: number, hidden: number[], seed = 3): DenseObjectiveInput {
  const random = createRandom(seed);
  const x = Float32Array.from({ length: rows * dim }, () => random.nextNormal());
  const labels = Int32Array.from({ length: rows }, () => random.nextInt(classCount));
  const targets = new Float32Array(rows * classCount);
  labels.forEach((label, row) => {
    const weight = 1 + (label % 2); // unequal class weights, as "balanced" weighting gives
    for (let c = 0; c < classCount; c++) targets[row * classCount + c] = weight * ((c === label ? 0.9 : 0) + 0.1 / classCount);
  });
  return { x, rows, dim, targets, labels, classCount, hidden, l2: 0.05 };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** Gaussian clusters (3 classes, 16-d), split 75/25: a HeadTrainingInput. */
function makeClusters(seed = 1): HeadTrainingInput {
  const random = createRandom(seed);
  const classCount = 3, perClass = 60, dim = 16;
  const centres = Array.from({ length: classCount }, () => Float64Array.from({ length: dim }, () => 1.5 * random.nextNormal()));
  const labels = Int32Array.from({ length: classCount * perClass }, (_, row) => row % classCount);
  const embeddings = new Float32Array(labels.length * dim);
  labels.forEach((label, row) => {
    for (let i = 0; i < dim; i++) embeddings[row * dim + i] = 2 + centres[label]![i]! + random.nextNormal();
  });
  const split = splitStratified(labels, 0.25, seed);
  return { embeddings, dim, labels, classCount, trainIndex: split.train, valIndex: split.val };
}

describe("Lbfgs", () => {
  it("finds the minimum of a 10-d Rosenbrock function from the standard start", async () => {
    const start = Float64Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? -1.2 : 1));
    const solver = await Lbfgs.start(rosenbrock(10), start, { gradientTolerance: 1e-8 });
    let steps = 0;
    while (steps < 500 && (await solver.step())) steps++;
    assert.equal(solver.status, "converged");
    assert.ok(maxAbsDiff(solver.x, new Float64Array(10).fill(1)) < 1e-4, `x = ${Array.from(solver.x)}`);
    assert.ok(solver.value < 1e-8);
  });

  it("never accepts a step that raises the value (Armijo line search)", async () => {
    const solver = await Lbfgs.start(rosenbrock(4), Float64Array.from([-1.2, 1, -1.2, 1]));
    let previous = solver.value;
    for (let i = 0; i < 50 && (await solver.step()); i++) {
      assert.ok(solver.value <= previous, `step ${i}: ${previous} → ${solver.value}`);
      previous = solver.value;
    }
  });

  it("reports convergence at once when the start is already a minimum", async () => {
    const solver = await Lbfgs.start(rosenbrock(3), new Float64Array(3).fill(1));
    assert.equal(solver.status, "converged");
    assert.equal(await solver.step(), false);
  });
});

describe("DenseObjective", () => {
  for (const hidden of [[], [6]]) {
    it(`has the gradient of its value, ${hidden.length ? "one hidden layer" : "linear"} (central differences)`, () => {
      const input = makeObjectiveInput(40, 7, 4, hidden);
      const objective = new DenseObjective(input);
      const random = createRandom(9);
      const theta = Float64Array.from({ length: objective.dimension }, () => 0.3 * random.nextNormal());
      const gradient = new Float64Array(objective.dimension);
      objective.evaluate(theta, gradient);
      const scratch = new Float64Array(objective.dimension);
      // Activations are float32, so values carry ~1e-7 relative rounding: a step of 1e-3 keeps the difference
      // quotient's rounding error near 1e-4 while its truncation error stays below that.
      const h = 1e-3;
      for (let i = 0; i < theta.length; i++) {
        const plus = Float64Array.from(theta);
        plus[i] += h;
        const minus = Float64Array.from(theta);
        minus[i] -= h;
        const numeric = (objective.evaluate(plus, scratch) - objective.evaluate(minus, scratch)) / (2 * h);
        assert.ok(Math.abs(numeric - gradient[i]!) < 2e-3, `parameter ${i}: numeric ${numeric}, analytic ${gradient[i]}`);
      }
    });
  }

  it("counts parameters as Σ units · (inputDim + 1)", () => {
    assert.equal(parameterCount(10, [], 3), 33);
    assert.equal(parameterCount(10, [4, 5], 3), 4 * 11 + 5 * 5 + 3 * 6);
  });
});

describe("computeStandardization", () => {
  it("gives the two-pass mean and population std in one pass, even with a mean 10⁴ times the spread", () => {
    const random = createRandom(12);
    const dim = 5;
    const offsets = [0, 3, -40, 1e4, 7];
    const embeddings = Float32Array.from({ length: 90 * dim }, (_, k) => offsets[k % dim]! + 0.5 * random.nextNormal());
    const rows = Array.from({ length: 70 }, (_, k) => (k * 13) % 90);
    const { mean, std } = computeStandardization(embeddings, dim, rows);
    for (let i = 0; i < dim; i++) {
      const values = rows.map((row) => embeddings[row * dim + i]!);
      const reference = values.reduce((a, b) => a + b, 0) / values.length;
      const referenceStd = Math.sqrt(values.reduce((a, b) => a + (b - reference) ** 2, 0) / values.length);
      assert.equal(mean[i], Math.fround(reference), `mean of feature ${i}`);
      assert.ok(Math.abs(std[i]! - referenceStd) <= 1e-6 * referenceStd, `std of feature ${i}: ${std[i]} vs ${referenceStd}`);
    }
  });
});

describe("gatherStandardizedRows", () => {
  it("writes the standardised rows and, when asked, their exact transpose in the same pass", () => {
    const random = createRandom(8);
    const dim = 7;
    const embeddings = Float32Array.from({ length: 150 * dim }, () => 3 + 2 * random.nextNormal());
    const rows = Array.from({ length: 130 }, (_, k) => (k * 37) % 150); // more than one 64-row block, out of order
    const standardize = computeStandardization(embeddings, dim, rows);
    const transposed = new Float32Array(rows.length * dim);
    const x = gatherStandardizedRows(embeddings, dim, rows, standardize, transposed);
    assert.deepEqual(x, gatherStandardizedRows(embeddings, dim, rows, standardize));
    rows.forEach((row, position) => {
      for (let i = 0; i < dim; i++) {
        assert.equal(x[position * dim + i], Math.fround((embeddings[row * dim + i]! - standardize.mean[i]!) / standardize.std[i]!));
        assert.equal(transposed[i * rows.length + position], x[position * dim + i]);
      }
    });
  });
});

describe.skipIf(!ortAvailable)("OnnxObjective (onnxruntime)", () => {
  it("serves objectives of any size from one session per layer count (sizes are symbolic in the graph)", async () => {
    for (const [rows, dim, classCount] of [[40, 9, 3], [31, 13, 5], [12, 4, 2]] as const) {
      const input = makeObjectiveInput(rows, dim, classCount, []);
      const js = new DenseObjective(input);
      const onnx = (await OnnxObjective.create(input, 1))!;
      const theta = Float64Array.from({ length: js.dimension }, (_, i) => Math.sin(i) * 0.3);
      const gJs = new Float64Array(js.dimension);
      const gOnnx = new Float64Array(js.dimension);
      assert.ok(Math.abs(js.evaluate(theta, gJs) - (await onnx.evaluate(theta, gOnnx))) < 1e-5);
      assert.ok(maxAbsDiff(gJs, gOnnx) < 1e-5, `${rows} × ${dim} → ${classCount}: gradient differs by ${maxAbsDiff(gJs, gOnnx)}`);
    }
  });

  for (const [hidden, firstGradient] of [[[], "transA"], [[], "xt"], [[6], "transA"], [[6], "xt"], [[5, 4], "transA"]] as const) {
    it(`matches the plain-JS objective's value and gradient, hidden ${JSON.stringify(hidden)}, first-layer gradient by ${firstGradient}`, async () => {
      const input = makeObjectiveInput(53, 9, 3, [...hidden]);
      const js = new DenseObjective(input);
      const onnx = (await OnnxObjective.create(input, 1, firstGradient))!;
      const random = createRandom(4);
      const theta = Float64Array.from({ length: js.dimension }, () => 0.4 * random.nextNormal());
      const gJs = new Float64Array(js.dimension);
      const gOnnx = new Float64Array(js.dimension);
      const fJs = js.evaluate(theta, gJs);
      const fOnnx = await onnx.evaluate(theta, gOnnx);
      assert.ok(Math.abs(fJs - fOnnx) < 1e-5, `value ${fJs} vs ${fOnnx}`);
      assert.ok(maxAbsDiff(gJs, gOnnx) < 1e-5, `gradient differs by ${maxAbsDiff(gJs, gOnnx)}`);
      assert.equal(onnx.lastCorrect, js.lastCorrect);
    });
  }
});

describe.skipIf(!ortAvailable)("OnnxObjective on raw rows (standardisation folded into the first layer)", () => {
  for (const hidden of [[], [6]]) {
    it(`has the value, gradient and logits of the objective on gathered standardised rows, hidden ${JSON.stringify(hidden)}`, async () => {
      const random = createRandom(17);
      const rowCount = 70, dim = 9, classCount = 3;
      const embeddings = Float32Array.from({ length: rowCount * dim }, (_, k) => 5 * (k % dim) + (1 + (k % 3)) * random.nextNormal());
      const labels = Int32Array.from({ length: rowCount }, () => random.nextInt(classCount));
      const trainRows = Array.from({ length: 50 }, (_, k) => (k * 13) % rowCount); // 50 distinct rows, out of order
      const standardize = computeStandardization(embeddings, dim, trainRows);
      const trainLabels = Int32Array.from(trainRows, (row) => labels[row]!);
      const trainTargets = Float32Array.from({ length: trainRows.length * classCount }, (_, k) => (trainLabels[Math.floor(k / classCount)] === k % classCount ? 0.9 : 0.05));
      const gathered = { x: gatherStandardizedRows(embeddings, dim, trainRows, standardize), rows: trainRows.length, dim, targets: trainTargets, labels: trainLabels, classCount, hidden, l2: 0.05 };
      const spread = new Float32Array(rowCount * classCount);
      trainRows.forEach((row, position) => spread.set(trainTargets.subarray(position * classCount, (position + 1) * classCount), row * classCount));
      const rawInput = { ...gathered, x: embeddings, rows: rowCount, targets: spread, labels };
      const reference = (await OnnxObjective.create(gathered, 1))!;
      const raw = (await OnnxObjective.create(rawInput, 1, "transA", undefined, { standardize, trainRows }))!;
      const theta = Float64Array.from({ length: reference.dimension }, () => 0.3 * random.nextNormal());
      const gReference = new Float64Array(theta.length);
      const gRaw = new Float64Array(theta.length);
      const fReference = await reference.evaluate(theta, gReference);
      const fRaw = await raw.evaluate(theta, gRaw);
      assert.ok(Math.abs(fReference - fRaw) < 1e-5, `value ${fReference} vs ${fRaw}`);
      assert.ok(maxAbsDiff(gReference, gRaw) < 1e-5, `gradient differs by ${maxAbsDiff(gReference, gRaw)}`);
      assert.equal(raw.lastCorrect, reference.lastCorrect);
      const valRows = [1, 2, 4];
      const valLogits = raw.logitsOfRows(theta, valRows)!;
      const expected = denseLogits(theta, gatherStandardizedRows(embeddings, dim, valRows, standardize), valRows.length, dim, hidden, classCount);
      assert.ok(maxAbsDiff(valLogits, expected) < 1e-4, `validation logits differ by ${maxAbsDiff(valLogits, expected)}`);
      assert.equal(raw.logitsOfRows(theta.map((value) => value + 1), valRows), null, "logits at a θ never evaluated");
    });
  }
});

describe("trainHeadLbfgs", () => {
  const config = (overrides: Partial<typeof DEFAULT_HYPERPARAMETERS> = {}) => ({ head: { type: "linear" as const }, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, ...overrides } });

  it("minimises the convex linear-head objective: gradient ~0 at the end, no nearby point lower", async () => {
    const objective = new DenseObjective(makeObjectiveInput(120, 8, 3, []));
    const solver = await Lbfgs.start(objective, new Float64Array(objective.dimension));
    for (let i = 0; i < 500 && (await solver.step()); i++);
    assert.equal(solver.status, "converged");
    assert.ok(Math.max(...solver.gradient.map(Math.abs)) < 1e-5, `max |gradient| ${Math.max(...solver.gradient.map(Math.abs))}`);
    const random = createRandom(11);
    const scratch = new Float64Array(objective.dimension);
    for (let trial = 0; trial < 20; trial++) {
      const nearby = solver.x.map((value) => value + 0.01 * random.nextNormal());
      assert.ok(objective.evaluate(nearby, scratch) >= solver.value);
    }
  });

  it("is deterministic: the same input gives bit-identical heads and metrics, on each backend", async () => {
    const variants = ortAvailable ? ([["js", 1], ["onnx", 1], ["onnx", 2]] as const) : ([["js", 1]] as const);
    // A linear head on onnxruntime fits on raw rows (onnx-objective.ts RawRows), an MLP on gathered ones: both covered.
    for (const head of [{ type: "mlp" as const, hidden: [8], dropout: 0 }, { type: "linear" as const }]) {
      for (const [backend, threads] of variants) {
        const first = await trainHeadLbfgs(makeClusters(), { head, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs: 20 } }, {}, { backend, threads });
        const second = await trainHeadLbfgs(makeClusters(), { head, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs: 20 } }, {}, { backend, threads });
        assert.deepEqual(second.epochs, first.epochs, `${head.type}, ${backend}, ${threads} thread(s)`);
        assert.deepEqual(second.head.layers, first.head.layers, `${head.type}, ${backend}, ${threads} thread(s)`);
      }
    }
  });

  it.skipIf(!ortAvailable)("reaches the same linear head on onnxruntime as in plain JS (within float32 rounding)", async () => {
    const input = makeClusters(2);
    const js = await trainHeadLbfgs(input, config({ early_stopping_patience: 0, epochs: 500 }), {}, { backend: "js" });
    const onnx = await trainHeadLbfgs(input, config({ early_stopping_patience: 0, epochs: 500 }), {}, { backend: "onnx" });
    const rows = new Float32Array(input.embeddings.buffer, 0, 30 * input.dim);
    assert.ok(maxAbsDiff(applyHead(js.head, rows, 30), applyHead(onnx.head, rows, 30)) < 1e-3);
  });

  it("classifies well-separated clusters perfectly with a linear head and stops as converged, not by patience", async () => {
    const random = createRandom(21);
    const classCount = 4, dim = 24, perClass = 80;
    const centres = Array.from({ length: classCount }, () => Float64Array.from({ length: dim }, () => 4 * random.nextNormal()));
    const labels = Int32Array.from({ length: classCount * perClass }, (_, row) => row % classCount);
    const embeddings = new Float32Array(labels.length * dim);
    labels.forEach((label, row) => {
      for (let i = 0; i < dim; i++) embeddings[row * dim + i] = 10 + centres[label]![i]! + 0.5 * random.nextNormal();
    });
    const split = splitStratified(labels, 0.25, 5);
    const input = { embeddings, dim, labels, classCount, trainIndex: split.train, valIndex: split.val };
    for (const backend of ortAvailable ? (["js", "onnx"] as const) : (["js"] as const)) {
      const result = await trainHeadLbfgs(input, config(), {}, { backend });
      assert.equal(result.stopReason, "converged", backend);
      assert.ok(result.epochs.length < DEFAULT_HYPERPARAMETERS.epochs, `${backend}: ${result.epochs.length} iterations`);
      assert.equal(result.epochs[result.bestEpoch - 1]!.val_accuracy, 1, backend);
      const predictions = applyHead(result.head, embeddings, labels.length);
      let correct = 0;
      labels.forEach((label, row) => {
        const scores = predictions.subarray(row * classCount, (row + 1) * classCount);
        if (scores.indexOf(Math.max(...scores)) === label) correct++;
      });
      assert.equal(correct, labels.length, `${backend}: ${correct} of ${labels.length} rows right`);
    }
  });

  it.skipIf(!ortAvailable)("fits the same head on raw rows as on gathered standardised rows (onnxruntime)", async () => {
    const input = makeClusters(3);
    const gathered = await trainHeadLbfgs(input, config(), {}, { backend: "onnx", rawRows: false });
    const raw = await trainHeadLbfgs(input, config(), {}, { backend: "onnx" });
    assert.equal(raw.epochs.length, gathered.epochs.length);
    assert.equal(raw.bestEpoch, gathered.bestEpoch);
    assert.ok(Math.abs(raw.epochs.at(-1)!.val_loss - gathered.epochs.at(-1)!.val_loss) < 1e-4);
    assert.ok(maxAbsDiff(applyHead(raw.head, input.embeddings.subarray(0, 40 * input.dim), 40), applyHead(gathered.head, input.embeddings.subarray(0, 40 * input.dim), 40)) < 1e-3);
  });

  it("fits a linear head on embeddings held in a SharedArrayBuffer (as the runner hands them over), on each backend", async () => {
    const input = makeClusters(4);
    const shared = new Float32Array(new SharedArrayBuffer(input.embeddings.byteLength));
    shared.set(input.embeddings);
    for (const backend of ortAvailable ? (["js", "onnx"] as const) : (["js"] as const)) {
      const onShared = await trainHeadLbfgs({ ...input, embeddings: shared }, config(), {}, { backend });
      const onPlain = await trainHeadLbfgs(input, config(), {}, { backend });
      assert.deepEqual(onShared.head, onPlain.head, backend);
    }
  });

  it.skipIf(!ortAvailable)("trains an MLP on many rows by mini-batch Adam: deterministic on 1 and 2 threads, seeded, accurate, stopped by its schedule or its own patience", async () => {
    // 6,000 rows of 3 overlapping clusters: above ADAM_MIN_ROWS training rows, so `auto` picks Adam.
    const random = createRandom(5);
    const classCount = 3, dim = 16, rows = 6_000;
    const centres = Array.from({ length: classCount }, () => Float64Array.from({ length: dim }, () => 0.4 * random.nextNormal()));
    const labels = Int32Array.from({ length: rows }, (_, row) => row % classCount);
    const embeddings = new Float32Array(rows * dim);
    labels.forEach((label, row) => {
      for (let i = 0; i < dim; i++) embeddings[row * dim + i] = centres[label]![i]! + random.nextNormal();
    });
    const split = splitStratified(labels, 0.2, 3);
    const input: HeadTrainingInput = { embeddings, dim, labels, classCount, trainIndex: split.train, valIndex: split.val };
    assert.ok(input.trainIndex.length >= ADAM_MIN_ROWS);
    const mlp = { head: { type: "mlp" as const, hidden: [128], dropout: 0 }, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs: 300, weight_decay: 0 } };
    const fit = (threads: number, options: Parameters<typeof trainHeadLbfgs>[3] = {}, seed = DEFAULT_HYPERPARAMETERS.seed) =>
      trainHeadLbfgs(input, { ...mlp, hyperparameters: { ...mlp.hyperparameters, seed } }, {}, { backend: "onnx", threads, ...options });
    const first = await fit(1);
    assert.deepEqual((await fit(1)).head.layers, first.head.layers);
    const twoThreads = await fit(2);
    assert.deepEqual(twoThreads.epochs, first.epochs);
    assert.deepEqual(twoThreads.head.layers, first.head.layers);
    assert.notDeepEqual((await fit(1, {}, 7)).head.layers, first.head.layers, "another seed, another shuffle and start");
    // Its schedule ends when the rate reaches 0: 4,800 training rows are 5 batches an epoch, so ADAM_MIN_UPDATES
    // batches take 13 epochs (ADAM_EPOCHS would be 20 updates only).
    assert.equal(first.stopReason, "converged");
    assert.equal(first.epochs.length, Math.ceil(ADAM_MIN_UPDATES / Math.ceil(input.trainIndex.length / ADAM_BATCH_SIZE)));
    // Early stopping still applies, after ADAM_PATIENCE epochs without a better validation loss (not the job's 15).
    const patient = await fit(1, { adamEpochs: 60 });
    assert.ok(patient.stopReason === "early_stopping" && patient.epochs.length - patient.bestEpoch === ADAM_PATIENCE, `${patient.stopReason} after ${patient.epochs.length} epochs, best ${patient.bestEpoch}`);
    // As accurate as the full-batch L-BFGS fit of the same MLP, within a point.
    const lbfgs = await fit(1, { mlpSolver: "lbfgs" });
    const accuracy = (result: typeof first) => result.epochs[result.bestEpoch - 1]!.val_accuracy;
    // Measured: Adam 13 epochs 77.2%, L-BFGS 29 iterations 77.8%.
    assert.ok(accuracy(first) > 0.7 && accuracy(first) >= accuracy(lbfgs) - 0.01, `Adam ${accuracy(first)}, L-BFGS ${accuracy(lbfgs)}`);
  });

  it("reports one epoch per iteration and stops on the caller's request", async () => {
    const seen: number[] = [];
    const result = await trainHeadLbfgs(makeClusters(), config({ epochs: 50, early_stopping_patience: 0 }), {
      onEpoch: (metrics) => void seen.push(metrics.epoch),
      shouldStop: () => seen.length >= 3,
    });
    assert.equal(result.stopReason, "stopped_by_caller");
    assert.deepEqual(seen, [1, 2, 3]);
  });
});
