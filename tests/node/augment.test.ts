/**
 * Augmentation (shared/image/augment.ts, gpu-runner/src/augment-set.ts, `viewRows` in select-head.ts): views are
 * deterministic and the same in Node as in workerd (digests shared with tests/workers/image-codecs.test.ts), view 0
 * is the plain input and view 1 its exact mirror, flip averaging is one formula, and view rows train only the folds
 * and refits of their own training image, never the validation images.
 *
 * Isolation: fixture bytes from tests/fixtures/parity-images.ts and seeded synthetic embeddings.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "vitest";
import { AUGMENT_VERSION, averageEmbeddings, MAX_VIEWS, mirrorInputSizes, mirrorInputTensor, viewTransform } from "../../shared/image/augment";
import { decodeImage } from "../../shared/image/decode";
import { inputSizes, inputTensorLength, preprocessImage } from "../../shared/image/preprocess";
import { createRandom } from "../../shared/random";
import { hyperparametersSchema } from "../../shared/schemas";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { augmentTrainingSet } from "../../gpu-runner/src/augment-set";
import { inProcessFoldRunner } from "../../gpu-runner/src/train/fit-fold";
import { selectHead, type FoldTask } from "../../gpu-runner/src/train/select-head";
import { EXPECTED, EXPECTED_VIEWS, FIXTURE_JPEG_BASE64, FIXTURE_PNG_BASE64, SPECS } from "../fixtures/parity-images";

const sha256 = (values: Float32Array) => createHash("sha256").update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)).digest("hex");
const fixture = async (format: "jpeg" | "png") => decodeImage(Buffer.from(format === "jpeg" ? FIXTURE_JPEG_BASE64 : FIXTURE_PNG_BASE64, "base64"), await getNodeCodecs());

describe("augmentation views", () => {
  it("were digested for the current augmentation version", () => {
    assert.equal(AUGMENT_VERSION, "aug-1");
  });

  for (const format of ["jpeg", "png"] as const) {
    it(`views 1 to 3 of the ${format} fixture match the digests workerd must match`, async () => {
      const image = await fixture(format);
      for (const spec of ["crop", "squash"] as const) {
        assert.deepEqual([1, 2, 3].map((view) => sha256(preprocessImage(image, { ...SPECS[spec]!, view }))), EXPECTED_VIEWS[format][spec]);
      }
    });
  }

  it("view 0 is the plain input and view 1 exactly its mirror", async () => {
    const image = await fixture("jpeg");
    const spec = SPECS.squash!;
    const plain = preprocessImage(image, spec);
    assert.equal(sha256(preprocessImage(image, { ...spec, view: 0 })), EXPECTED.jpeg.squash);
    assert.deepEqual(preprocessImage(image, { ...spec, view: 1 }), mirrorInputTensor(plain, spec.input_size[0], spec.input_size[1]));
    assert.deepEqual(mirrorInputTensor(mirrorInputTensor(plain, 24, 24), 24, 24), plain);
  });

  it("several input sizes: the tensor is each size's input in turn, for every view, and view 1 mirrors each part", async () => {
    const image = await fixture("jpeg");
    const spec = { ...SPECS.squash!, input_size: [24, 24] as [number, number], extra_input_sizes: [[30, 18]] as [number, number][] };
    assert.deepEqual(inputSizes(spec), [[24, 24], [30, 18]]);
    assert.equal(inputTensorLength(spec), 24 * 24 * 3 + 30 * 18 * 3);
    for (const view of [0, 1, 2]) {
      const single = (input_size: [number, number]) => preprocessImage(image, { ...SPECS.squash!, input_size, view });
      const both = preprocessImage(image, { ...spec, view });
      assert.deepEqual(both, Float32Array.from([...single([24, 24]), ...single([30, 18])]));
    }
    assert.deepEqual(preprocessImage(image, { ...spec, view: 1 }), mirrorInputSizes(preprocessImage(image, spec), inputSizes(spec)));
    assert.throws(() => preprocessImage(image, spec, new Float32Array(24 * 24 * 3)), /24x24x3 \+ 30x18x3/);
  });

  it("averages any number of embeddings value by value, two exactly as (a + b) / 2", () => {
    const a = Float32Array.of(1, 2, 0.1), b = Float32Array.of(3, -2, 0.2), c = Float32Array.of(0.5, 7, -1);
    assert.deepEqual(averageEmbeddings(a), a);
    assert.deepEqual(averageEmbeddings(a, b), Float32Array.from(a, (v, i) => (v + b[i]!) / 2));
    assert.deepEqual(averageEmbeddings(a, b, c), Float32Array.from(a, (v, i) => (v + b[i]! + c[i]!) / 3));
    assert.throws(() => averageEmbeddings(a, Float32Array.of(1)), /differ in length/);
  });

  it("gives every view its own crop and colours inside the documented bounds, the same on every call", () => {
    const seen = new Set<string>();
    for (let view = 2; view <= MAX_VIEWS; view++) {
      const t = viewTransform(view);
      assert.deepEqual(viewTransform(view), t);
      const area = (t.crop.x1 - t.crop.x0) * (t.crop.y1 - t.crop.y0);
      assert.ok(area >= 0.6 * 0.99 && area <= 1 + 1e-9 && t.crop.x0 >= 0 && t.crop.y0 >= 0 && t.crop.x1 <= 1 + 1e-12 && t.crop.y1 <= 1 + 1e-12, JSON.stringify(t));
      assert.ok(Math.abs(t.brightness) <= 0.08 && t.contrast >= 0.9 && t.contrast <= 1.1 && t.gains.every((g) => g >= 0.95 && g <= 1.05));
      seen.add(JSON.stringify(t));
    }
    assert.equal(seen.size, MAX_VIEWS - 1);
    assert.throws(() => viewTransform(MAX_VIEWS + 1), RangeError);
  });

  it("averages two embeddings as (a + b) / 2 rounded once to float32", () => {
    assert.deepEqual(averageEmbeddings(Float32Array.of(1, 2, 0.1), Float32Array.of(3, -2, 0.2)), Float32Array.of(2, 0, (Math.fround(0.1) + Math.fround(0.2)) / 2));
  });
});

describe("augmented training set", () => {
  const dim = 6;
  const n = 40;
  const random = createRandom(4);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
  const embeddings = Float32Array.from({ length: n * dim }, (_, i) => labels[Math.floor(i / dim)]! * 2 + random.nextNormal());
  const shas = Array.from({ length: n }, (_, i) => `sha${i}`);
  const val = [3, 8, 13, 18, 23, 28, 33, 38];
  const train = Array.from({ length: n }, (_, i) => i).filter((i) => !val.includes(i));
  const viewOf = (view: number) => new Map(shas.map((sha, i) => [sha, Float32Array.from({ length: dim }, (_, d) => embeddings[i * dim + d]! + view * 0.01)]));
  const views = new Map([1, 2].map((view) => [view, viewOf(view)]));

  it("adds one row per view per training image, none for validation images, labelled as their image", () => {
    const set = augmentTrainingSet({ shas, labels, split: { train, val }, embeddings, dim }, { views: 2, tta: "none" }, views);
    assert.equal(set.viewRowCount, 2 * train.length);
    assert.equal(set.split.train.length, 3 * train.length);
    assert.deepEqual(set.split.val, val);
    for (const row of val) assert.equal(set.viewRows.has(row), false);
    for (const [image, rows] of set.viewRows) for (const row of rows) assert.equal(set.labels[row], labels[image]);
    // Rows of the images are untouched without flip averaging.
    assert.deepEqual(set.embeddings.subarray(0, n * dim), embeddings);
  });

  it("with tta flip, every image's row (validation included) is the mean of its and its mirror's embedding", () => {
    const set = augmentTrainingSet({ shas, labels, split: { train, val }, embeddings, dim }, { views: 0, tta: "flip" }, views);
    assert.equal(set.viewRowCount, 0);
    for (const row of [0, 3]) assert.deepEqual(set.embeddings.subarray(row * dim, (row + 1) * dim), averageEmbeddings(embeddings.subarray(row * dim, (row + 1) * dim), views.get(1)!.get(shas[row]!)!));
  });

  it("cross-validation fits a fold on its images' views only and scores only images", async () => {
    const set = augmentTrainingSet({ shas, labels, split: { train, val }, embeddings, dim }, { views: 2, tta: "none" }, views);
    const seen: FoldTask[] = [];
    const inner = inProcessFoldRunner({ embeddings: set.embeddings, dim, labels: set.labels, classCount: 2, hyperparameters: hyperparametersSchema.parse({ epochs: 5 }) });
    const run = async (tasks: FoldTask[]) => (seen.push(...tasks), inner(tasks));
    const options = { folds: 4, seed: 9, runFolds: run, candidates: [{ head: { type: "linear" as const }, hyperparameters: {} }] };
    const first = await selectHead({ labels: set.labels, trainIndex: train, viewRows: set.viewRows }, options);
    for (const task of seen) {
      const held = new Set(task.heldRows);
      for (const row of task.heldRows) assert.ok(row < n && !val.includes(row), `held row ${row} is an image of the training split`);
      for (const row of task.trainRows) {
        assert.ok(!val.includes(row));
        const image = row < n ? row : [...set.viewRows].find(([, rows]) => rows.includes(row))![0];
        assert.equal(held.has(image), false, `row ${row} (of image ${image}) is fitted while its image is held out`);
      }
      assert.equal(task.trainRows.length, 3 * (train.length - task.heldRows.length));
    }
    const again = await selectHead({ labels: set.labels, trainIndex: train, viewRows: set.viewRows }, options);
    assert.deepEqual(again.selection.candidates, first.selection.candidates);
  });
});

describe("a head trained with flip averaging", () => {
  it("says so in its stored manifest, and a head without the field reads as no averaging", async () => {
    const { parseHead, serializeHead } = await import("../../shared/head");
    const head = { inputDim: 2, labels: ["a", "b"], standardize: null, layers: [{ type: "dense" as const, inputDim: 2, units: 2, activation: "softmax" as const, weights: Float32Array.of(1, 0, 0, 1), bias: Float32Array.of(0, 0) }] };
    const flipped = serializeHead({ ...head, tta: "flip" });
    assert.equal(flipped.manifest.tta, "flip");
    assert.equal(parseHead(flipped.manifest, flipped.weights).tta, "flip");
    const plain = serializeHead(head);
    assert.equal("tta" in plain.manifest, false);
    assert.equal(parseHead(plain.manifest, plain.weights).tta, undefined);
  });
});

describe("training on an augmented set", () => {
  it("fits on onnxruntime from the SharedArrayBuffer the set lives on (onnxruntime refuses shared memory)", async () => {
    const { trainHeadLbfgs } = await import("../../gpu-runner/src/train/lbfgs-head");
    const { loadOrt } = await import("../../gpu-runner/src/train/onnx-objective");
    if (!(await loadOrt())) return console.log("skipped: onnxruntime-node does not load here");
    const dim = 6, n = 60, random = createRandom(8);
    const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
    const embeddings = Float32Array.from({ length: n * dim }, (_, i) => labels[Math.floor(i / dim)]! + random.nextNormal());
    const shas = Array.from({ length: n }, (_, i) => `s${i}`);
    const val = [0, 1, 2, 3, 4, 5];
    const train = Array.from({ length: n }, (_, i) => i).filter((i) => !val.includes(i));
    const views = new Map([[1, new Map(shas.map((sha, i) => [sha, embeddings.slice(i * dim, (i + 1) * dim)]))]]);
    const set = augmentTrainingSet({ shas, labels, split: { train, val }, embeddings, dim }, { views: 1, tta: "none" }, views);
    assert.ok(set.embeddings.buffer instanceof SharedArrayBuffer);
    const trained = await trainHeadLbfgs(
      { embeddings: set.embeddings, dim, labels: set.labels, classCount: 3, trainIndex: set.split.train, valIndex: set.split.val },
      { head: { type: "linear" }, hyperparameters: hyperparametersSchema.parse({ epochs: 10 }), keep: "last" },
      {},
      { backend: "onnx" },
    );
    assert.ok(trained.epochs.length >= 1 && Number.isFinite(trained.epochs.at(-1)!.val_loss));
  });
});
