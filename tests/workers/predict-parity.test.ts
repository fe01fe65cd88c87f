/**
 * The fused backbone (workers/inference/fused-backbone.ts) against the runner's code path (buildFeatureExtractor,
 * tfjs-layers) inside workerd, on the real builtin MobileNetV2 (nsfwjs, from node_modules) and on the tiny fixture:
 * same images in, the same embedding out within float32 rounding, and class probabilities within 1e-4.
 *
 * Isolation: one module graph per test file (vitest pool), so tfjs is initialised once here; the pool spends about
 * 10 s transforming the tfjs packages on the first import (a bundled Worker does not).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { NSFWJS_MOBILENET_V2 } from "../../shared/catalog";
import { backboneSpecSchema } from "../../shared/schemas";
import { applyHead, type Head } from "../../shared/head";
import { decodeImage } from "../../shared/image/decode";
import { preprocessImage } from "../../shared/image/preprocess";
import { averageEmbeddings, MIRROR_VIEW, mirrorInputTensor } from "../../shared/image/augment";
import { getWorkerCodecs } from "../../workers/inference/codecs";
import { createEmbedder, type Embedder } from "../../workers/inference/embedder";
import { compileFusedBackbone, UnsupportedGraphError } from "../../workers/inference/fused-backbone";
import { ensureTfjsWasm, type Tfjs } from "../../workers/inference/tfjs-wasm";
import { makeJpeg, makePng } from "../fixtures/images";
import { buildTinyModel, tinySpec } from "../fixtures/tiny-model";
import { loadNsfwjsFiles, seededHead, standardizationOf } from "./predict-fixtures";

let tf: Tfjs;
beforeAll(async () => {
  tf = await ensureTfjsWasm();
}, 120_000);

const builtin = NSFWJS_MOBILENET_V2;

/** 224x224 inputs: the fixture photos resized by the serving code, plus synthetic patterns with fine detail. */
async function builtinInputs(): Promise<Float32Array[]> {
  const codecs = await getWorkerCodecs();
  const spec = { input_size: builtin.spec.input_size, mean: builtin.spec.normalization.mean, std: builtin.spec.normalization.std, resize: builtin.spec.resize };
  const images = [makeJpeg("small"), makeJpeg("other"), makePng(64, 48, 3), makePng(40, 40, 9)];
  const inputs = await Promise.all(images.map(async (bytes) => preprocessImage(await decodeImage(bytes, codecs), spec)));
  for (const seed of [1, 2, 3, 4]) {
    const values = new Float32Array(224 * 224 * 3);
    let k = 0;
    for (let y = 0; y < 224; y++)
      for (let x = 0; x < 224; x++)
        for (let c = 0; c < 3; c++) values[k++] = ((x * (7 + seed) + y * 13 + c * 29 * seed + ((x * y) >> (4 + seed))) % 256) / 255;
    inputs.push(values);
  }
  return inputs;
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

describe("the fused MobileNetV2 (builtin backbone) in workerd", () => {
  let fused: Embedder;
  let layers: Embedder;
  let inputs: Float32Array[];
  beforeAll(async () => {
    const files = await loadNsfwjsFiles();
    fused = await createEmbedder(tf, files, builtin.spec, { engine: "fused" });
    layers = await createEmbedder(tf, files, builtin.spec, { engine: "runner" });
    inputs = await builtinInputs();
  }, 120_000);

  it("compiles the cut MobileNetV2 into fused ops with the embedding length of the runner's extractor", () => {
    expect(fused.engine).toBe("fused");
    expect(layers.engine).toBe("layers");
    expect(fused.dim).toBe(layers.dim);
    expect(fused.inputShape).toEqual([224, 224, 3]);
  });

  it("gives the embedding buildFeatureExtractor gives, within 1e-5 of its scale, for every image", async () => {
    let worst = 0;
    for (const input of inputs) {
      const a = await layers.embed(input);
      const b = await fused.embed(input);
      const scale = a.reduce((max, v) => Math.max(max, Math.abs(v)), 0);
      expect(scale).toBeGreaterThan(0.01);
      expect(maxAbsDifference(a, b)).toBeLessThan(1e-5 * Math.max(1, scale));
      worst = Math.max(worst, maxAbsDifference(a, b) / Math.max(1, scale));
    }
    console.log(`fused vs layers embedding: max |difference| ${worst.toExponential(2)} (relative to max(1, max |value|)) over ${inputs.length} images`);
  });

  it("gives class probabilities within 1e-4 of the runner's path through a standardised head", async () => {
    const reference: Float32Array[] = [];
    for (const input of inputs) reference.push(await layers.embed(input));
    const byFused: Float32Array[] = [];
    for (const input of inputs) byFused.push(await fused.embed(input));
    const standardize = standardizationOf(reference, layers.dim);
    for (const [classes, hidden] of [[5, []], [20, []], [3, [64]]] as const) {
      const head: Head = { ...seededHead(layers.dim, classes, [...hidden], 7), standardize };
      const flatten = (rows: Float32Array[]) => Float32Array.from(rows.flatMap((row) => Array.from(row)));
      const expected = applyHead(head, flatten(reference), reference.length);
      const actual = applyHead(head, flatten(byFused), inputs.length);
      expect(maxAbsDifference(expected, actual)).toBeLessThan(1e-4);
      console.log(`fused vs layers probabilities, ${classes} classes, hidden [${hidden.join(", ")}]: max |difference| ${maxAbsDifference(expected, actual).toExponential(2)}`);
    }
  });

  it("flip averaging at the edge (mirrorInputTensor of the served input) gives the runner's flip-averaged probabilities (its cached view 1) within 1e-4", async () => {
    const codecs = await getWorkerCodecs();
    const spec = { input_size: builtin.spec.input_size, mean: builtin.spec.normalization.mean, std: builtin.spec.normalization.std, resize: builtin.spec.resize };
    const [height, width] = spec.input_size;
    const runner: Float32Array[] = [];
    const edge: Float32Array[] = [];
    for (const bytes of [makeJpeg("small"), makeJpeg("other"), makePng(64, 48, 3)]) {
      const image = await decodeImage(bytes, codecs);
      // The runner: view 0 and view 1 preprocessed and embedded separately (as cached), then averaged.
      runner.push(averageEmbeddings(await layers.embed(preprocessImage(image, { ...spec, view: 0 })), await layers.embed(preprocessImage(image, { ...spec, view: MIRROR_VIEW }))));
      // The edge (services/inference.ts): the served input and its mirror through the fused backbone.
      const pixels = preprocessImage(image, spec);
      edge.push(averageEmbeddings(await fused.embed(pixels), await fused.embed(mirrorInputTensor(pixels, height, width))));
    }
    const head: Head = { ...seededHead(layers.dim, 5, [], 3), standardize: standardizationOf(runner, layers.dim), tta: "flip" };
    const flatten = (rows: Float32Array[]) => Float32Array.from(rows.flatMap((row) => Array.from(row)));
    const difference = maxAbsDifference(applyHead(head, flatten(runner), runner.length), applyHead(head, flatten(edge), edge.length));
    expect(difference).toBeLessThan(1e-4);
    console.log(`flip-averaged probabilities, edge vs runner: max |difference| ${difference.toExponential(2)}`);
  });

  it("holds no tensors between calls beyond its weights", async () => {
    await fused.embed(inputs[0]!);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await fused.embed(inputs[i]!);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("the fused compiler on other graphs", () => {
  it("matches buildFeatureExtractor on the tiny fixture (conv + bias + batch norm + relu)", async () => {
    const model = buildTinyModel();
    const files = { modelJson: model.modelJson as never, weightData: model.weightData.slice().buffer };
    const spec = backboneSpecSchema.parse(tinySpec({ pooling: "avg+max" }));
    const fused = await createEmbedder(tf, files, spec, { engine: "fused" });
    const layers = await createEmbedder(tf, files, spec, { engine: "runner" });
    const input = Float32Array.from({ length: 32 * 32 * 3 }, (_, i) => Math.sin(i * 0.37));
    expect(fused.dim).toBe(16);
    expect(maxAbsDifference(await fused.embed(input), await layers.embed(input))).toBeLessThan(1e-5);
    fused.dispose();
    layers.dispose();
  });

  it("refuses layers it does not compile with UnsupportedGraphError, and createEmbedder falls back to tfjs-layers", async () => {
    const model = buildTinyModel();
    const json = structuredClone(model.modelJson) as any;
    json.modelTopology.model_config.config.layers.find((l: { name: string }) => l.name === "relu1").class_name = "LeakyReLU";
    json.modelTopology.model_config.config.layers.find((l: { name: string }) => l.name === "relu1").config = { name: "relu1", alpha: 0.3 };
    const files = { modelJson: json, weightData: model.weightData.slice().buffer };
    expect(() => compileFusedBackbone(tf, json, files.weightData, { feature_layers: ["relu1"], pooling: "avg" })).toThrow(UnsupportedGraphError);
    const embedder = await createEmbedder(tf, files, backboneSpecSchema.parse(tinySpec()));
    expect(embedder.engine).toBe("layers");
    expect(embedder.fallbackReason).toMatch(/LeakyReLU/);
    expect((await embedder.embed(new Float32Array(32 * 32 * 3))).length).toBe(8);
    embedder.dispose();
  });
});
