/**
 * Graph-model backbones (shared/backbone/graph-feature-extractor.ts and the format dispatcher): the graph helpers of
 * model-json.ts, embedding shapes and pooling semantics on the tiny graph fixture (tests/fixtures/tiny-model.ts),
 * agreement with the tiny layers fixture whose first conv has the same kernel, the engines' handling of graph
 * bundles (ONNX declines, `auto` falls back to tfjs), and, when it is on this machine, a real TF-Hub graph model
 * (MobileNet v1 0.25, 224) through the tfjs-wasm and tfjs-cpu engines.
 *
 * Isolation: in-process tfjs runs on the "cpu" backend, selected in `before`; the tfjs-cpu engine selects the same
 * backend and the tfjs-wasm engine runs in its own worker threads, so no test changes what another sees. Every
 * test builds its own bundles and disposes its extractors and engines.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, it } from "vitest";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { buildAnyFeatureExtractor } from "../../shared/backbone/any-feature-extractor";
import { buildFeatureExtractor } from "../../shared/backbone/feature-extractor";
import { buildGraphFeatureExtractor } from "../../shared/backbone/graph-feature-extractor";
import { getGraphInputNode, getInputShape, isGraphModel, validateFeatureSpec } from "../../shared/backbone/model-json";
import type { BackboneBundle, FeatureSpec, LayersModelJson } from "../../shared/backbone/types";
import { backboneSpecSchema } from "../../shared/schemas";
import { featureSpecOf } from "../../shared/catalog";
import { createEngine, EngineUnavailableError } from "../../gpu-runner/src/engine/index";
import { loadBundleFromDir } from "../../gpu-runner/src/backbones/load-bundle";
import { createOnnxEngine } from "../../gpu-runner/src/engine/onnx-engine";
import { buildTinyGraphModel, buildTinyModel, tinySpec, type TinyModel, type TinyModelOptions } from "../fixtures/tiny-model";
import { makeImages } from "./engine-fixtures";

const here = path.dirname(fileURLToPath(import.meta.url));
const SHARED = process.env.EDGETUNE_SHARED_DIR ?? path.resolve(here, "../../../shared");
const MOBILENET_GRAPH_DIR = path.join(SHARED, "backbones", "mobilenet_v1_025_224", "imagenet");
const MOBILENET_NODES = [
  "module_apply_default/MobilenetV1/MobilenetV1/Conv2d_11_pointwise/Relu6",
  "module_apply_default/MobilenetV1/MobilenetV1/Conv2d_12_pointwise/Relu6",
];

/** Channels of the tiny fixtures' conv (graph conv/Conv2D, layers conv1). */
const FILTERS = 8;
const SIZE = 32;

beforeAll(async () => {
  await tf.setBackend("cpu");
  await tf.ready();
});

// ---- factories ----------------------------------------------------------------------------------------------

/** A tiny fixture as the runner holds it: model.json parsed, weights as one ArrayBuffer. */
function toBundle(model: TinyModel, name: string): BackboneBundle {
  const { weightData } = model;
  return {
    name,
    modelJson: model.modelJson as LayersModelJson,
    weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength) as ArrayBuffer,
    inputRange: [-1, 1],
  };
}

const tinyGraphBundle = (options?: TinyModelOptions) => toBundle(buildTinyGraphModel(options), "tiny-graph");
const tinyLayersBundle = () => toBundle(buildTinyModel(), "tiny-layers");


/** Runs `extractor.embed` on flat images and returns the flat `[n, dim]` result. */
async function embedFlat(extractor: { embed(images: tf.Tensor4D): tf.Tensor2D }, images: Float32Array, n: number, size = SIZE): Promise<Float32Array> {
  const input = tf.tensor4d(images, [n, size, size, 3]);
  const output = extractor.embed(input);
  const values = (await output.data()) as Float32Array;
  tf.dispose([input, output]);
  return values;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** Columns `[from, to)` of each row of a flat `[n, dim]` matrix, concatenated. */
function columns(matrix: Float32Array, dim: number, from: number, to: number): Float32Array {
  const n = matrix.length / dim;
  const out = new Float32Array(n * (to - from));
  for (let row = 0; row < n; row++) out.set(matrix.subarray(row * dim + from, row * dim + to), row * (to - from));
  return out;
}

// ---- model.json helpers -------------------------------------------------------------------------------------

describe("model-json helpers on graph models", () => {
  it("tells graph models from layers models, with or without a format field", () => {
    const graph = tinyGraphBundle().modelJson;
    assert.equal(isGraphModel(graph), true);
    assert.equal(isGraphModel({ ...graph, format: undefined }), true, "TF-Hub conversions carry no format");
    assert.equal(isGraphModel(tinyLayersBundle().modelJson), false);
  });

  it("reads the input shape from the graph's Placeholder", () => {
    assert.deepEqual(getInputShape(tinyGraphBundle().modelJson), [SIZE, SIZE, 3]);
    assert.deepEqual(getInputShape(tinyGraphBundle({ inputSize: [48, 40] }).modelJson), [48, 40, 3]);
  });

  it("takes a free height and width (-1) from the spec's input size and refuses to guess without one", () => {
    const free = tinyGraphBundle({ inputSize: [null, null] }).modelJson;
    assert.deepEqual(getInputShape(free, [64, 48]), [64, 48, 3]);
    assert.throws(() => getInputShape(free), /leaves its height or width free; pass the backbone spec's input_size/);
    // A size fixed in the model wins over the spec's.
    assert.deepEqual(getInputShape(tinyGraphBundle().modelJson, [64, 64]), [SIZE, SIZE, 3]);
  });

  it("rejects a graph without exactly one Placeholder input", () => {
    const modelJson = tinyGraphBundle().modelJson;
    const nodes = modelJson.modelTopology.node as Array<{ name: string; op: string }>;
    const twoInputs = { ...modelJson, modelTopology: { ...modelJson.modelTopology, node: [...nodes, { ...nodes[0]!, name: "second_input" }] } };
    assert.throws(() => getGraphInputNode(twoInputs), /2 Placeholder inputs \("input", "second_input"\)/);
  });

  it("checks feature specs against node names", () => {
    const modelJson = tinyGraphBundle().modelJson;
    validateFeatureSpec(modelJson, { feature_layers: ["conv/Conv2D"], pooling: "avg" });
    assert.throws(() => validateFeatureSpec(modelJson, { feature_layers: ["conv1"], pooling: "avg" }), /no node named "conv1"/);
    assert.throws(() => validateFeatureSpec(modelJson, { feature_layers: ["Identity", "Identity"], pooling: "avg" }), /node "Identity" is listed twice/);
  });
});

// ---- the graph feature extractor ----------------------------------------------------------------------------

describe("buildGraphFeatureExtractor (tiny graph fixture, cpu backend)", () => {
  it("maps [n, H, W, 3] to [n, c] with avg pooling and [n, 2c] with avg+max, and reports its shapes", async () => {
    const avg = await buildGraphFeatureExtractor(tf, tinyGraphBundle(), { feature_layers: ["conv/Conv2D"], pooling: "avg" });
    const both = await buildGraphFeatureExtractor(tf, tinyGraphBundle(), { feature_layers: ["conv/Conv2D"], pooling: "avg+max" });
    assert.equal(avg.format, "graph-model");
    assert.deepEqual(avg.inputShape, [SIZE, SIZE, 3]);
    assert.deepEqual(avg.layerChannels, [FILTERS]);
    assert.equal(avg.dim, FILTERS);
    assert.equal(both.dim, 2 * FILTERS);
    assert.equal(avg.needsAsync, false);
    const images = tf.tensor4d(makeImages(3), [3, SIZE, SIZE, 3]);
    const a = avg.embed(images);
    const b = both.embed(images);
    assert.deepEqual(a.shape, [3, FILTERS]);
    assert.deepEqual(b.shape, [3, 2 * FILTERS]);
    tf.dispose([images, a, b]);
    avg.dispose();
    both.dispose();
  });

  it("pools each node's activation: per channel, the mean (then the max) over height and width", async () => {
    const bundle = tinyGraphBundle();
    const extractor = await buildGraphFeatureExtractor(tf, bundle, { feature_layers: ["conv/Conv2D"], pooling: "avg+max" });
    const images = makeImages(2);
    const embedding = await embedFlat(extractor, images, 2);
    // The raw activation [2, 32, 32, 8] straight from the graph, pooled here by hand.
    const input = tf.tensor4d(images, [2, SIZE, SIZE, 3]);
    const activation = extractor.model.execute({ input }, "conv/Conv2D") as tf.Tensor4D;
    const values = (await activation.data()) as Float32Array;
    tf.dispose([input, activation]);
    const pixels = SIZE * SIZE;
    for (let n = 0; n < 2; n++) {
      for (let c = 0; c < FILTERS; c++) {
        let sum = 0;
        let max = -Infinity;
        for (let p = 0; p < pixels; p++) {
          const v = values[(n * pixels + p) * FILTERS + c]!;
          sum += v;
          max = Math.max(max, v);
        }
        assert.ok(Math.abs(embedding[n * 2 * FILTERS + c]! - sum / pixels) < 1e-5, `avg of image ${n}, channel ${c}`);
        assert.ok(Math.abs(embedding[n * 2 * FILTERS + FILTERS + c]! - max) < 1e-6, `max of image ${n}, channel ${c}`);
      }
    }
    extractor.dispose();
  });

  it("concatenates feature nodes in spec order as [avg(node 1), max(node 1), avg(node 2), max(node 2)]", async () => {
    // Identity reads conv/Conv2D, so both halves must be equal; the avg-only extractor gives each avg block.
    const both = await buildGraphFeatureExtractor(tf, tinyGraphBundle(), { feature_layers: ["conv/Conv2D", "Identity"], pooling: "avg+max" });
    const avg = await buildGraphFeatureExtractor(tf, tinyGraphBundle(), { feature_layers: ["conv/Conv2D"], pooling: "avg" });
    assert.deepEqual(both.layerChannels, [FILTERS, FILTERS]);
    assert.equal(both.dim, 4 * FILTERS);
    const images = makeImages(2);
    const b = await embedFlat(both, images, 2);
    const a = await embedFlat(avg, images, 2);
    const block = (k: number) => columns(b, 4 * FILTERS, k * FILTERS, (k + 1) * FILTERS);
    assert.deepEqual(block(2), block(0), "avg of the second node");
    assert.deepEqual(block(3), block(1), "max of the second node");
    assert.ok(maxAbsDiff(block(0), a) < 1e-6);
    for (let i = 0; i < block(0).length; i++) assert.ok(block(1)[i]! >= block(0)[i]! - 1e-6, "max pooling is at least the average");
    both.dispose();
    avg.dispose();
  });

  it("computes what the layers model computes with the same conv kernel (weights really loaded)", async () => {
    // The tiny layers model's conv1 has the graph's kernel plus a bias b, so per channel its average is the graph's
    // average + b and its maximum the graph's maximum + b.
    const layers = tinyLayersBundle();
    const bias = new Float32Array(layers.weightData.slice(3 * 3 * 3 * FILTERS * 4, (3 * 3 * 3 * FILTERS + FILTERS) * 4));
    const graphExtractor = await buildGraphFeatureExtractor(tf, tinyGraphBundle(), { feature_layers: ["conv/Conv2D"], pooling: "avg+max" });
    const layersExtractor = await buildFeatureExtractor(tf, layers, { feature_layers: ["conv1"], pooling: "avg+max" });
    const images = makeImages(3);
    const fromGraph = await embedFlat(graphExtractor, images, 3);
    const fromLayers = await embedFlat(layersExtractor, images, 3);
    const shifted = fromGraph.map((value, i) => value + bias[i % FILTERS]!);
    assert.ok(maxAbsDiff(shifted, fromLayers) < 1e-5, `max |graph + bias - layers| = ${maxAbsDiff(shifted, fromLayers)}`);
    assert.ok(maxAbsDiff(fromGraph, fromLayers) > 1e-3, "the bias is not zero, so the comparison is not vacuous");
    graphExtractor.dispose();
    layersExtractor.dispose();
  });

  it("gives bit-identical embeddings across builds, and an image's embedding does not depend on its batch", async () => {
    const spec: FeatureSpec = { feature_layers: ["conv/Conv2D"], pooling: "avg+max" };
    const first = await buildGraphFeatureExtractor(tf, tinyGraphBundle(), spec);
    const second = await buildGraphFeatureExtractor(tf, tinyGraphBundle(), spec);
    const images = makeImages(3);
    const batch = await embedFlat(first, images, 3);
    assert.deepEqual(await embedFlat(second, images, 3), batch);
    const perImage = SIZE * SIZE * 3;
    const alone = await embedFlat(first, images.subarray(perImage, 2 * perImage), 1);
    assert.ok(maxAbsDiff(alone, batch.subarray(2 * FILTERS, 4 * FILTERS)) < 1e-6);
    first.dispose();
    second.dispose();
  });

  it("flip averaging gives a mirror-invariant embedding", async () => {
    const extractor = await buildGraphFeatureExtractor(tf, tinyGraphBundle(), { feature_layers: ["conv/Conv2D"], pooling: "avg+max", flip_average: true });
    const images = tf.tensor4d(makeImages(2), [2, SIZE, SIZE, 3]);
    const mirrored = tf.reverse(images, 2) as tf.Tensor4D;
    const a = await embedFlat(extractor, (await images.data()) as Float32Array, 2);
    const b = await embedFlat(extractor, (await mirrored.data()) as Float32Array, 2);
    assert.ok(maxAbsDiff(a, b) < 1e-5);
    tf.dispose([images, mirrored]);
    extractor.dispose();
  });

  it("builds at the spec's input size when the graph leaves it free", async () => {
    const extractor = await buildGraphFeatureExtractor(tf, tinyGraphBundle({ inputSize: [null, null] }), { feature_layers: ["conv/Conv2D"], pooling: "avg", input_size: [40, 40] });
    assert.deepEqual(extractor.inputShape, [40, 40, 3]);
    assert.equal((await embedFlat(extractor, makeImages(1, 40), 1, 40)).length, FILTERS);
    extractor.dispose();
  });

  it("rejects a feature node whose output is not [n, h, w, c], naming it", async () => {
    // At a 1 × 1 input the conv outputs [n, 1, 1, 8]; an appended Squeeze drops the spatial axes, leaving [n, 8],
    // which has nothing to pool over.
    const model = buildTinyGraphModel({ inputSize: [1, 1] });
    const nodes = model.modelJson.modelTopology.node as object[];
    model.modelJson.modelTopology.node = [
      ...nodes,
      { name: "squeezed", op: "Squeeze", input: ["conv/Conv2D"], attr: { T: { type: "DT_FLOAT" }, squeeze_dims: { list: { i: ["1", "2"] } } } },
    ];
    await assert.rejects(
      buildGraphFeatureExtractor(tf, toBundle(model, "tiny-graph-squeezed"), { feature_layers: ["squeezed"], pooling: "avg" }),
      /feature node squeezed outputs shape \[1,8\], expected \[n, h, w, c\]/,
    );
  });
});

// ---- format dispatch ----------------------------------------------------------------------------------------

describe("buildAnyFeatureExtractor", () => {
  it("builds a graph extractor for a graph model and a layers extractor for a layers model", async () => {
    const graph = await buildAnyFeatureExtractor(tf, tinyGraphBundle(), { feature_layers: ["conv/Conv2D"], pooling: "avg" });
    const layers = await buildAnyFeatureExtractor(tf, tinyLayersBundle(), { feature_layers: ["relu1"], pooling: "avg" });
    assert.equal(graph.format, "graph-model");
    assert.equal(layers.format, "layers-model");
    assert.deepEqual([graph.dim, layers.dim], [FILTERS, FILTERS]);
    graph.dispose();
    layers.dispose();
  });

  it("is the only builder that takes both: each direct builder names the right one for the other format", async () => {
    await assert.rejects(buildFeatureExtractor(tf, tinyGraphBundle(), { feature_layers: ["conv/Conv2D"], pooling: "avg" }), /is a graph model; build it with buildGraphFeatureExtractor/);
    await assert.rejects(buildGraphFeatureExtractor(tf, tinyLayersBundle(), { feature_layers: ["relu1"], pooling: "avg" }), /is not a graph model; build it with buildFeatureExtractor/);
  });
});

// ---- engines ------------------------------------------------------------------------------------------------

describe("engines on graph backbones", () => {
  const spec: FeatureSpec = { feature_layers: ["conv/Conv2D", "Identity"], pooling: "avg+max", input_size: [SIZE, SIZE] };

  it("onnx declines a graph model with EngineUnavailableError, which auto treats as skip-and-continue", async () => {
    await assert.rejects(createOnnxEngine(tinyGraphBundle(), spec, { threads: 1, maxBatch: 8, log: () => {} }), (error: unknown) => {
      assert.ok(error instanceof EngineUnavailableError);
      assert.equal(error.engine, "onnx");
      assert.equal(error.message, "onnx unavailable: graph models are not converted to ONNX");
      return true;
    });
  });

  it("auto logs why onnx was skipped and falls back to a tfjs engine that embeds like the extractor", async () => {
    const logs: string[] = [];
    const engine = await createEngine(tinyGraphBundle(), spec, { engine: "auto", threads: 1, log: (message) => logs.push(message) });
    try {
      assert.ok(logs.includes("engine auto: skip onnx unavailable: graph models are not converted to ONNX"), logs.join("\n"));
      assert.match(engine.name, /^tfjs/);
      assert.equal(engine.dim, 4 * FILTERS);
      const images = makeImages(3);
      const reference = await buildGraphFeatureExtractor(tf, tinyGraphBundle(), spec);
      const expected = await embedFlat(reference, images, 3);
      reference.dispose();
      // Whichever tfjs engine auto picked (tfjs-wasm where tfjs-node is not installed), the same graph gives the same
      // features as the in-process cpu extractor up to float rounding.
      assert.ok(maxAbsDiff(await engine.embed(images, 3), expected) < 1e-5);
    } finally {
      await engine.close();
    }
  });

  it("tfjs-cpu checks batch sizes against the graph's input shape and keeps row order across maxBatch chunks", async () => {
    const engine = await createEngine(tinyGraphBundle(), spec, { engine: "tfjs-cpu", maxBatch: 2 });
    try {
      assert.throws(() => engine.embed(new Float32Array(10), 1), /expected 1 x 32x32x3 = 3072 floats, got 10/);
      // maxBatch 2 splits 3 images into two runs; the rows come back in order.
      const images = makeImages(3);
      const all = await engine.embed(images, 3);
      const last = await engine.embed(images.subarray(2 * SIZE * SIZE * 3), 1);
      assert.ok(maxAbsDiff(all.subarray(2 * engine.dim), last) < 1e-6);
    } finally {
      await engine.close();
    }
  });

  it("runs a free-size graph at the size of the backbone spec the API stored (featureSpecOf carries input_size)", async () => {
    const stored = backboneSpecSchema.parse(tinySpec({ name: "tiny-graph", feature_layer: "conv/Conv2D", input_size: [48, 40] }));
    const feature = featureSpecOf(stored);
    assert.deepEqual(feature, { feature_layers: ["conv/Conv2D"], pooling: "avg", input_size: [48, 40] });
    const engine = await createEngine(tinyGraphBundle({ inputSize: [null, null] }), feature, { engine: "tfjs-cpu" });
    try {
      const images = new Float32Array(2 * 48 * 40 * 3).fill(0.25);
      const embeddings = await engine.embed(images, 2);
      assert.equal(embeddings.length, 2 * FILTERS);
      assert.ok(embeddings.every(Number.isFinite));
    } finally {
      await engine.close();
    }
  });
});

// ---- a real graph model -------------------------------------------------------------------------------------

describe("MobileNet v1 0.25 224 (TF-Hub graph model, input `images` in [0, 1])", () => {
  const skip = !existsSync(path.join(MOBILENET_GRAPH_DIR, "model.json"));
  if (skip) console.warn(`skipping: ${MOBILENET_GRAPH_DIR}/model.json not found (set EDGETUNE_SHARED_DIR to the folder holding backbones/)`);
  const feature: FeatureSpec = { feature_layers: MOBILENET_NODES, pooling: "avg+max", input_size: [224, 224] };
  /** 2 images in [0, 1]: a smooth gradient and a checkerboard, [2, 224, 224, 3]. */
  const makeMobilenetImages = () => {
    const out = new Float32Array(2 * 224 * 224 * 3);
    for (let y = 0; y < 224; y++) {
      for (let x = 0; x < 224; x++) {
        for (let c = 0; c < 3; c++) {
          out[(y * 224 + x) * 3 + c] = (x + y + 50 * c) / 600;
          out[224 * 224 * 3 + (y * 224 + x) * 3 + c] = ((x >> 4) + (y >> 4)) % 2 === c % 2 ? 0.9 : 0.1;
        }
      }
    }
    return out;
  };

  it("embeds through the tfjs-wasm and tfjs-cpu engines to [n, 768] finite Relu6 features that agree", { skip }, async () => {
    const bundle = await loadBundleFromDir(MOBILENET_GRAPH_DIR, { inputRange: [0, 1] });
    assert.equal(isGraphModel(bundle.modelJson), true);
    const images = makeMobilenetImages();
    const wasm = await createEngine(bundle, feature, { engine: "tfjs-wasm", threads: 1 });
    let fromWasm: Float32Array;
    try {
      // Conv2d_11_pointwise has 128 channels and Conv2d_12_pointwise 256 (1024 × 0.25); avg+max doubles them.
      assert.equal(wasm.dim, 2 * (128 + 256));
      fromWasm = await wasm.embed(images, 2);
    } finally {
      await wasm.close();
    }
    assert.equal(fromWasm.length, 2 * 768);
    assert.ok(fromWasm.every((value) => Number.isFinite(value) && value >= 0 && value <= 6), "Relu6 outputs lie in [0, 6]");
    assert.ok(maxAbsDiff(fromWasm.subarray(0, 768), fromWasm.subarray(768)) > 0.05, "two different images give different embeddings");

    const cpu = await createEngine(bundle, feature, { engine: "tfjs-cpu" });
    try {
      const fromCpu = await cpu.embed(images, 2);
      assert.ok(maxAbsDiff(fromCpu, fromWasm) < 1e-4, `max |cpu - wasm| = ${maxAbsDiff(fromCpu, fromWasm)}`);
    } finally {
      await cpu.close();
    }
  });
});
