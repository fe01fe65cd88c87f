/**
 * The one backbone lowering (shared/backbone/lowering.ts) and its two back ends: the edge's fused tfjs executor
 * (workers/inference/fused-backbone.ts) and the runner's ONNX emitter (gpu-runner/src/engine/onnx/convert.ts), each
 * against the reference, `buildFeatureExtractor` (tfjs-layers), on the tfjs WASM backend in Node.
 */
import assert from "node:assert/strict";
import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { buildFeatureExtractor } from "../../shared/backbone/feature-extractor";
import { foldBatchNorm, lowerBackbone, UnsupportedGraphError } from "../../shared/backbone/lowering";
import { getInputShape } from "../../shared/backbone/model-json";
import { averageEmbeddings } from "../../shared/image/augment";
import { createEngine } from "../../gpu-runner/src/engine/index";
import { createEmbedder } from "../../workers/inference/embedder";
import type { BackboneBundle, FeatureSpec } from "../../shared/backbone/types";
import { compileFusedBackbone } from "../../workers/inference/fused-backbone";
import { convertToOnnx, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME } from "../../gpu-runner/src/engine/onnx/convert";
import { makeImages, makeTinyBundle, maxAbsDiff, referenceEmbeddings, saveAsBundle, TINY_SIZE } from "./engine-fixtures";

const ort = await import("onnxruntime-node").then((m) => (m.default?.InferenceSession ? m.default : m), () => null);
if (!ort) console.warn("skipping the ONNX back end checks: onnxruntime-node is not installed");

const IMAGES = 3;

/** `bundle` with every weight `<layer>/<param>` renamed `<layer>/<scope>/<param>`, as some converters write them. */
function namespaced(bundle: BackboneBundle, scope = "inner_scope"): BackboneBundle {
  const rename = (name: string) => `${name.slice(0, name.lastIndexOf("/"))}/${scope}/${name.slice(name.lastIndexOf("/") + 1)}`;
  const weightsManifest = bundle.modelJson.weightsManifest.map((group) => ({ ...group, weights: group.weights.map((w) => ({ ...w, name: rename(w.name) })) }));
  return { ...bundle, modelJson: { ...bundle.modelJson, weightsManifest } };
}

function byEdge(bundle: BackboneBundle, spec: FeatureSpec, images: Float32Array, n: number): Float32Array {
  const compiled = compileFusedBackbone(tf, bundle.modelJson, bundle.weightData, spec);
  const [h, w] = spec.input_size ?? [TINY_SIZE, TINY_SIZE];
  const perImage = h * w * 3;
  const out = new Float32Array(n * compiled.dim);
  for (let i = 0; i < n; i++) out.set(compiled.embed(images.subarray(i * perImage, (i + 1) * perImage)), i * compiled.dim);
  compiled.dispose();
  return out;
}

async function byOnnx(bundle: BackboneBundle, spec: FeatureSpec, images: Float32Array, n: number): Promise<Float32Array> {
  const conversion = convertToOnnx(bundle, spec);
  const session = await ort!.InferenceSession.create(conversion.bytes, { executionProviders: ["cpu"], intraOpNumThreads: 1 });
  try {
    const [h, w] = spec.input_size ?? [TINY_SIZE, TINY_SIZE];
    const outputs = await session.run({ [ONNX_INPUT_NAME]: new ort!.Tensor("float32", images, [n, h, w, 3]) });
    return outputs[ONNX_OUTPUT_NAME].data as Float32Array;
  } finally {
    await session.release();
  }
}

/** `expected` from the runner's tfjs extractor (when given), the edge's fused compiler and ONNX (when installed). */
async function expectEveryPath(bundle: BackboneBundle, spec: FeatureSpec, images: Float32Array, n: number, expected: Float32Array, runnerTfjs?: Float32Array): Promise<void> {
  if (runnerTfjs) assert.ok(maxAbsDiff(runnerTfjs, expected) < 1e-5, `runner tfjs: max abs diff ${maxAbsDiff(runnerTfjs, expected)}`);
  const edge = byEdge(bundle, spec, images, n);
  assert.ok(maxAbsDiff(edge, expected) < 1e-5, `edge: max abs diff ${maxAbsDiff(edge, expected)}`);
  if (!ort) return;
  const onnx = await byOnnx(bundle, spec, images, n);
  assert.ok(maxAbsDiff(onnx, expected) < 1e-4, `onnx: max abs diff ${maxAbsDiff(onnx, expected)}`);
}

/** A model with what MobileNet lacks: pooling ('same' and 'valid'), padding 'same' cannot express, a dilated conv. */
async function makePoolingBundle(): Promise<BackboneBundle> {
  const input = tf.input({ shape: [TINY_SIZE, TINY_SIZE, 3], name: "input_1" });
  const pad = tf.layers.zeroPadding2d({ padding: [[1, 1], [2, 1]], name: "wide_pad" }).apply(input);
  let x = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: "valid", useBias: false, name: "stem" }).apply(pad);
  x = tf.layers.batchNormalization({ name: "stem_bn" }).apply(x);
  x = tf.layers.reLU({ maxValue: 4, name: "stem_clip" }).apply(x);
  const maxPooled = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: "same", name: "max_pool" }).apply(x);
  const avgPooled = tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: "same", name: "avg_pool" }).apply(x);
  const valid = tf.layers.averagePooling2d({ poolSize: [2, 1], strides: 2, padding: "valid", name: "avg_valid" }).apply(x);
  const dilated = tf.layers.conv2d({ filters: 6, kernelSize: 3, dilationRate: 2, padding: "same", activation: "relu", name: "dilated" }).apply(valid);
  const joined = tf.layers.concatenate({ name: "joined" }).apply([maxPooled as tf.SymbolicTensor, avgPooled as tf.SymbolicTensor, dilated as tf.SymbolicTensor]);
  const head = tf.layers.dense({ units: 2, name: "head" }).apply(tf.layers.flatten({ name: "flat" }).apply(joined)) as tf.SymbolicTensor;
  return saveAsBundle(tf.model({ inputs: input, outputs: head, name: "pooling" }), "pooling-test", 11);
}

/** A Keras Sequential backbone (model.json class_name "Sequential", no inbound_nodes): the layers chained in order. */
async function makeSequentialBundle(): Promise<BackboneBundle> {
  const model = tf.sequential({ name: "chain" });
  model.add(tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], inputShape: [TINY_SIZE, TINY_SIZE, 3], name: "seq_pad" }));
  model.add(tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: "valid", useBias: false, name: "seq_stem" }));
  model.add(tf.layers.batchNormalization({ name: "seq_bn" }));
  model.add(tf.layers.reLU({ maxValue: 6, name: "seq_relu" }));
  model.add(tf.layers.depthwiseConv2d({ kernelSize: 3, padding: "same", name: "seq_dw" }));
  model.add(tf.layers.conv2d({ filters: 8, kernelSize: 1, activation: "relu", name: "seq_project" }));
  model.add(tf.layers.globalAveragePooling2d({ name: "seq_gap" }));
  model.add(tf.layers.dense({ units: 2, name: "seq_head" }));
  return saveAsBundle(model, "sequential-test", 5);
}

/** tfjs' own reading of a Sequential bundle cut at `layer`, mean-pooled over height and width: `[n, channels]`. */
async function sequentialAsTfjsRuns(bundle: BackboneBundle, layer: string, images: Float32Array, n: number): Promise<Float32Array> {
  const model = (await tf.models.modelFromJSON({ modelTopology: bundle.modelJson.modelTopology as tf.io.ModelJSON["modelTopology"] })) as tf.LayersModel;
  model.loadWeights(tf.io.decodeWeights(bundle.weightData, bundle.modelJson.weightsManifest[0]!.weights as tf.io.WeightsManifestEntry[]));
  const cut = tf.model({ inputs: model.inputs, outputs: model.getLayer(layer).output as tf.SymbolicTensor });
  const input = tf.tensor4d(images, [n, TINY_SIZE, TINY_SIZE, 3]);
  const pooled = tf.mean(cut.predict(input) as tf.Tensor, [1, 2]);
  const values = (await pooled.data()) as Float32Array;
  tf.dispose([input, pooled]);
  model.dispose();
  return values;
}

describe("the backbone lowering and its two back ends", () => {
  let plain: BackboneBundle;
  beforeAll(async () => {
    await tf.setBackend("wasm");
    plain = await makeTinyBundle();
  });

  const specs: Array<[string, FeatureSpec]> = [
    ["one layer, avg", { feature_layers: ["out_relu"], pooling: "avg" }],
    ["three layers incl. a pre-BN conv and an Add, avg+max", { feature_layers: ["project", "block_add", "out_relu"], pooling: "avg+max" }],
  ];

  it("lowers a namespaced model (weights named <layer>/<scope>/<param>) to exactly the ops of the plain model", () => {
    for (const [, spec] of specs) {
      const a = lowerBackbone(plain.modelJson, plain.weightData, spec);
      const b = lowerBackbone(namespaced(plain).modelJson, plain.weightData, spec);
      expect(b).toEqual(a);
      // BN folded into every conv it follows; padding absorbed; dropout an alias.
      expect(a.folded).toEqual(expect.arrayContaining(["stem_pad", "stem_bn", "stem_relu", "dw_bn", "dw_relu", "down_relu", "drop"]));
      expect(a.ops.filter((op) => op.kind === "conv")).toHaveLength(6);
    }
  });

  for (const [label, spec] of specs) {
    it(`runs the namespaced model at the edge and on the runner as tfjs-layers runs the plain one: ${label}`, async () => {
      const images = makeImages(IMAGES);
      const expected = await referenceEmbeddings(plain, spec, images, IMAGES);
      const edge = byEdge(namespaced(plain), spec, images, IMAGES);
      assert.ok(maxAbsDiff(edge, expected) < 1e-5, `edge: max abs diff ${maxAbsDiff(edge, expected)}`);
      if (!ort) return;
      const onnx = await byOnnx(namespaced(plain), spec, images, IMAGES);
      assert.ok(maxAbsDiff(onnx, expected) < 1e-4, `onnx: max abs diff ${maxAbsDiff(onnx, expected)}`);
    });
  }

  it("refuses a weight that two namespaced names could be, at both back ends", () => {
    const bundle = namespaced(plain);
    const weights = bundle.modelJson.weightsManifest[0]!.weights;
    const kernel = weights.find((w) => w.name === "stem/inner_scope/kernel")!;
    const doubled = { ...bundle, modelJson: { ...bundle.modelJson, weightsManifest: [{ paths: ["weights.bin"], weights: [...weights, { ...kernel, name: "stem/other_scope/kernel", shape: [0] }] }] } };
    const spec: FeatureSpec = { feature_layers: ["out_relu"], pooling: "avg" };
    expect(() => lowerBackbone(doubled.modelJson, bundle.weightData, spec)).toThrow(/stem: weight kernel is ambiguous/);
    expect(() => compileFusedBackbone(tf, doubled.modelJson, bundle.weightData, spec)).toThrow(UnsupportedGraphError);
    expect(() => convertToOnnx(doubled, spec)).toThrow(UnsupportedGraphError);
  });

  it("runs pooling, padding 'same' cannot express, a ReLU clip and a dilated conv at both back ends as tfjs-layers does", async () => {
    const bundle = await makePoolingBundle();
    const spec: FeatureSpec = { feature_layers: ["joined"], pooling: "avg+max" };
    const lowered = lowerBackbone(bundle.modelJson, bundle.weightData, spec);
    expect(lowered.ops.map((op) => op.kind)).toEqual(["conv", "activation", "pool", "pool", "pool", "conv", "concat"]);
    expect(lowered.ops[0]).toMatchObject({ padding: [[1, 1], [2, 1]], activation: "linear" });
    const images = makeImages(IMAGES);
    const expected = await referenceEmbeddings(bundle, spec, images, IMAGES);
    await expectEveryPath(bundle, spec, images, IMAGES, expected);
  });

  it("runs a Sequential model (no inbound_nodes) at the edge, on the runner's tfjs and ONNX paths as tfjs runs it", async () => {
    const bundle = await makeSequentialBundle();
    expect((bundle.modelJson.modelTopology as any).model_config?.class_name ?? (bundle.modelJson.modelTopology as any).class_name).toBe("Sequential");
    const spec: FeatureSpec = { feature_layers: ["seq_project"], pooling: "avg" };
    const lowered = lowerBackbone(bundle.modelJson, bundle.weightData, spec);
    expect(lowered.ops.map((op) => op.kind)).toEqual(["conv", "conv", "conv"]);
    expect(lowered.folded).toEqual(expect.arrayContaining(["seq_pad", "seq_bn", "seq_relu"]));
    const images = makeImages(IMAGES);
    const expected = await sequentialAsTfjsRuns(bundle, "seq_project", images, IMAGES);
    await expectEveryPath(bundle, spec, images, IMAGES, expected, await referenceEmbeddings(bundle, spec, images, IMAGES));
  });

  it("runs a convolutional trunk at the spec's input_size, not the declared one, on every path as tfjs runs it", async () => {
    // The default backbone, published for 224x224, is served at 288x288 (shared/catalog.ts). Non-square here so that
    // a swapped height and width shows.
    const spec: FeatureSpec = { feature_layers: ["project", "out_relu"], pooling: "avg", input_size: [48, 40] };
    expect(getInputShape(plain.modelJson)).toEqual([TINY_SIZE, TINY_SIZE, 3]);
    expect(getInputShape(plain.modelJson, [48, 40])).toEqual([48, 40, 3]);
    const n = 2;
    const images = Float32Array.from({ length: n * 48 * 40 * 3 }, (_, i) => Math.sin(i * 0.37) * 0.9);
    // The reference: tfjs-layers itself, loading the model with its InputLayer edited to 48x40.
    const edited = structuredClone(plain.modelJson) as any;
    for (const layer of edited.modelTopology.model_config?.config?.layers ?? edited.modelTopology.config.layers) {
      if (layer.config?.batch_input_shape) layer.config.batch_input_shape = [null, 48, 40, 3];
    }
    const full = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: edited.modelTopology, weightSpecs: edited.weightsManifest[0].weights, weightData: plain.weightData }));
    const probe = tf.model({ inputs: full.inputs, outputs: ["project", "out_relu"].map((name) => full.getLayer(name).output as tf.SymbolicTensor) });
    const input = tf.tensor4d(images, [n, 48, 40, 3]);
    const maps = probe.predict(input) as tf.Tensor[];
    const pooled = tf.concat(maps.map((map) => map.mean([1, 2])), 1);
    const expected = (await pooled.data()) as Float32Array;
    tf.dispose([input, pooled, ...maps]);
    full.dispose();

    const extractor = await buildFeatureExtractor(tf, plain, spec);
    expect(extractor.inputShape).toEqual([48, 40, 3]);
    const runnerInput = tf.tensor4d(images, [n, 48, 40, 3]);
    const runnerOut = extractor.embed(runnerInput);
    const runnerTfjs = (await runnerOut.data()) as Float32Array;
    tf.dispose([runnerInput, runnerOut]);
    extractor.dispose();
    await expectEveryPath(plain, spec, images, n, expected, runnerTfjs);
  });

  it("several input sizes: the runner's engine and the edge's embedder both give the mean of each size's embedding", async () => {
    const spec: FeatureSpec = { feature_layers: ["out_relu"], pooling: "avg", input_size: [TINY_SIZE, TINY_SIZE], extra_input_sizes: [[40, 48]] };
    const n = 2;
    const small = makeImages(n);
    const large = Float32Array.from({ length: n * 40 * 48 * 3 }, (_, i) => Math.cos(i * 0.11) * 0.8);
    const single = async (input_size: [number, number], images: Float32Array) => {
      const engine = await createEngine(plain, { ...spec, input_size, extra_input_sizes: undefined }, { engine: "tfjs-cpu" });
      try {
        return await engine.embed(images, n);
      } finally {
        await engine.close();
      }
    };
    const expected = averageEmbeddings(await single([TINY_SIZE, TINY_SIZE], small), await single([40, 48], large));
    // Each image's tensor holds its sizes one after the other (shared/image/preprocess.ts).
    const perImage = [TINY_SIZE * TINY_SIZE * 3, 40 * 48 * 3];
    const batch = new Float32Array(n * (perImage[0]! + perImage[1]!));
    for (let i = 0; i < n; i++) {
      batch.set(small.subarray(i * perImage[0]!, (i + 1) * perImage[0]!), i * (perImage[0]! + perImage[1]!));
      batch.set(large.subarray(i * perImage[1]!, (i + 1) * perImage[1]!), i * (perImage[0]! + perImage[1]!) + perImage[0]!);
    }
    const runner = await createEngine(plain, spec, { engine: "tfjs-cpu" });
    const runnerOut = await runner.embed(batch, n);
    // The same batch already split by size (as embed-dataset.ts builds it): the very same embeddings.
    assert.deepEqual(await runner.embedParts!([small, large], n), runnerOut);
    await expect(runner.embedParts!([small], n)).rejects.toThrow(/expected 2 parts/);
    await runner.close();
    assert.ok(maxAbsDiff(runnerOut, expected) < 1e-6, `runner: max abs diff ${maxAbsDiff(runnerOut, expected)}`);
    await expect(createEngine(plain, spec, { engine: "tfjs-cpu" }).then((engine) => engine.embed(small, n))).rejects.toThrow(/expected 2 x/);

    const edge = await createEmbedder(tf as never, plain, { name: "tiny", feature_layer: "out_relu", input_size: [TINY_SIZE, TINY_SIZE], normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, pooling: "avg", resize: "squash" }, { feature: spec });
    expect(edge.engine).toBe("fused");
    // Both sizes run on one copy of the weights (fused-backbone.ts SharedWeights).
    const oneSize = compileFusedBackbone(tf, plain.modelJson, plain.weightData, { ...spec, extra_input_sizes: undefined });
    expect(edge.weightBytes).toBe(oneSize.weightBytes);
    const tensorsBefore = tf.memory().numTensors;
    oneSize.dispose();
    expect(tf.memory().numTensors).toBeLessThan(tensorsBefore);
    for (let i = 0; i < n; i++) {
      const got = await edge.embed(batch.subarray(i * (perImage[0]! + perImage[1]!), (i + 1) * (perImage[0]! + perImage[1]!)));
      const want = expected.subarray(i * got.length, (i + 1) * got.length);
      assert.ok(maxAbsDiff(got, want) < 1e-5, `edge image ${i}: max abs diff ${maxAbsDiff(got, want)}`);
    }
    const held = tf.memory().numTensors;
    edge.dispose();
    expect(held - tf.memory().numTensors).toBeGreaterThan(0); // the shared weights are freed with the embedder
  });

  it("folds batch norm in float32 with tfjs' float32 rsqrt, for conv and depthwise kernels alike", () => {
    // Two output channels; kernel [1, 1, 1, 2] (conv) or [1, 1, 2, 1] (depthwise): channel = flat index % 2.
    const bn = { gamma: Float32Array.of(2, 0.5), beta: Float32Array.of(1, -1), mean: Float32Array.of(0.5, 0), variance: Float32Array.of(3, 0.25), epsilon: 1e-3 };
    const { kernel, bias } = foldBatchNorm(Float32Array.of(1, 4), Float32Array.of(0.5, 1), bn);
    const inv = bn.variance.map((v) => Math.fround(1 / Math.sqrt(Math.fround(v + bn.epsilon))));
    expect(kernel).toEqual(Float32Array.of(1 * inv[0]! * 2, 4 * inv[1]! * 0.5));
    expect(bias).toEqual(Float32Array.of(0.5 * inv[0]! * 2 + (1 - 0.5 * inv[0]! * 2), 1 * inv[1]! * 0.5 + (-1 - 0)));
  });
});
