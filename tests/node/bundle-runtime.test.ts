/**
 * The bundle's runtime as users get it: bundle/build.mjs writes edgetune.mjs (esbuild) and the decoders' .wasm into
 * a folder; with a backbone, a head and edgetune.json beside them, `loadBundle(tf, readFile).predict(bytes)` must
 * answer what the API's pipeline computes for the same bytes (shared/image decode + preprocess with the Node-compiled
 * decoders, the shared feature extractor, applyHead, topK), here on images with an EXIF rotation and with alpha.
 * The same folder exported from a trained model, against the API's own answers, in Node and Chromium:
 * tests/e2e/bundle.test.ts.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { buildBundleRuntime } from "../../bundle/build.mjs";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { buildAnyFeatureExtractor } from "../../shared/backbone/any-feature-extractor";
import { BUNDLE_FORMAT, BUNDLE_FORMAT_FINE_TUNED, BUNDLE_RUNTIME_FILES, type BundleManifest } from "../../shared/bundle/manifest";
import { featureSpecOf, preprocessSpecOf } from "../../shared/catalog";
import { applyHead, parseHead, serializeHead, topK, type Head } from "../../shared/head";
import { averageEmbeddings, mirrorInputTensor } from "../../shared/image/augment";
import { decodeImage } from "../../shared/image/decode";
import { PREPROCESS_VERSION, preprocessImage } from "../../shared/image/preprocess";
import type { BackboneSpec } from "../../shared/schemas";
import { FIXTURE_JPEG_BASE64, FIXTURE_PNG_BASE64 } from "../fixtures/parity-images";
import { makeColouredPng, makeJpeg } from "../fixtures/images";
import { buildTinyGraphModel, buildTinyModel, type TinyModel } from "../fixtures/tiny-model";
import { fineTunedFixture } from "../fixtures/tiny-mobilenet-v1";

const SPEC: BackboneSpec = { name: "tiny", feature_layer: "relu1", input_size: [32, 32], normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, pooling: "avg", resize: "squash" };
/** The tiny graph model (a converted TF SavedModel: a GraphModel in plain tfjs), its conv node pooled, center-cropped. */
const GRAPH_SPEC: BackboneSpec = { ...SPEC, name: "tiny-graph", feature_layer: "conv/Conv2D", resize: "center_crop", normalization: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } };
const LABELS = ["cat", "dog", "bird"];
const IMAGES: Record<string, Uint8Array> = {
  "exif-rotated.jpg": Buffer.from(FIXTURE_JPEG_BASE64, "base64"),
  "alpha.png": Buffer.from(FIXTURE_PNG_BASE64, "base64"),
  "small.jpg": makeJpeg("small"),
  "red.png": makeColouredPng(48, 40, [200, 40, 40], 3),
};

/** A 3-class linear head over the tiny backbone's 8 features, standardised, with fixed weights. */
function fixedHead(tta?: "flip"): Head {
  const dim = 8;
  const weights = Float32Array.from({ length: dim * LABELS.length }, (_, i) => Math.sin(i * 1.7) * 0.8);
  return {
    inputDim: dim,
    labels: LABELS,
    standardize: { mean: Float32Array.from({ length: dim }, (_, i) => 0.05 * i), std: Float32Array.from({ length: dim }, (_, i) => 0.2 + 0.05 * i) },
    layers: [{ type: "dense", inputDim: dim, units: LABELS.length, activation: "softmax", weights, bias: Float32Array.of(0.1, -0.2, 0.05) }],
    ...(tta ? { tta } : {}),
  };
}

/** Writes backbone, head and edgetune.json into `folder`, as the export does. */
function writeModelFiles(folder: string, tiny: TinyModel, spec: BackboneSpec, format: "layers-model" | "graph-model", head = fixedHead(), labels = LABELS) {
  fs.mkdirSync(path.join(folder, "backbone"), { recursive: true });
  fs.mkdirSync(path.join(folder, "head"), { recursive: true });
  fs.writeFileSync(path.join(folder, "backbone", "model.json"), JSON.stringify({ ...tiny.modelJson, weightsManifest: [{ paths: ["weights.bin"], weights: tiny.modelJson.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights) }] }));
  fs.writeFileSync(path.join(folder, "backbone", "weights.bin"), tiny.weightData);
  const { manifest, weights } = serializeHead(head);
  fs.writeFileSync(path.join(folder, "head", "head.json"), JSON.stringify(manifest));
  fs.writeFileSync(path.join(folder, "head", "head.bin"), weights);
  const bundleManifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    model_id: "mdl_runtime_test",
    labels,
    backbone: { id: "bb_tiny", name: spec.name, format },
    feature_spec: featureSpecOf(spec),
    preprocessing: { version: PREPROCESS_VERSION, ...preprocessSpecOf(spec) },
    top_k: 5,
    entry: "edgetune.mjs",
    paths: { backbone_model: "backbone/model.json", backbone_weights: "backbone/weights.bin", head_manifest: "head/head.json", head_weights: "head/head.bin", jpeg_decoder: "mozjpeg_dec.wasm", png_decoder: "squoosh_png_bg.wasm" },
    files: [],
  };
  fs.writeFileSync(path.join(folder, "edgetune.json"), JSON.stringify(bundleManifest));
}

let dir: string;
let runtimeFiles: { name: string; bytes: number }[];

beforeAll(async () => {
  await tf.setBackend("cpu");
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bundle-"));
  runtimeFiles = await buildBundleRuntime({ outdir: dir, quiet: true });
  writeModelFiles(dir, buildTinyModel(), SPEC, "layers-model");
});

/** The API's pipeline in Node (services/inference.ts predict, layers path): decode, preprocess, embed, head, top-k. */
async function referencePredictions(images: Uint8Array[], tiny = buildTinyModel(), spec = SPEC, head = fixedHead()) {
  const extractor = await buildAnyFeatureExtractor(tf as any, { name: "tiny", modelJson: tiny.modelJson as any, weightData: tiny.weightData.slice().buffer, inputRange: [0, 1] }, featureSpecOf(spec));
  const codecs = await getNodeCodecs();
  const embeddings = new Float32Array(images.length * head.inputDim);
  const embed = async (pixels: Float32Array) => Float32Array.from((await extractor.embedAsync(tf.tensor4d(pixels, [1, 32, 32, 3]))).dataSync() as Float32Array);
  for (const [index, bytes] of images.entries()) {
    const pixels = preprocessImage(await decodeImage(bytes, codecs), preprocessSpecOf(spec));
    // services/inference.ts: a flip-TTA head gets the mean of the image's and its mirror's embedding.
    const embedding = head.tta === "flip" ? averageEmbeddings(await embed(pixels), await embed(mirrorInputTensor(pixels, 32, 32))) : await embed(pixels);
    embeddings.set(embedding, index * head.inputDim);
  }
  extractor.dispose();
  const probabilities = applyHead(head, embeddings, images.length);
  return images.map((_, row) => topK(probabilities.subarray(row * 3, row * 3 + 3), 5, head.labels));
}

describe("bundle runtime (edgetune.mjs built by bundle/build.mjs)", () => {
  it("writes the predict module, both decoders and the examples, and the module is small", () => {
    expect(runtimeFiles.map((f) => f.name).sort()).toEqual([...BUNDLE_RUNTIME_FILES].sort());
    const moduleBytes = runtimeFiles.find((f) => f.name === "edgetune.mjs")!.bytes;
    expect(moduleBytes).toBeLessThan(150_000);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    expect(pkg.dependencies["@tensorflow/tfjs"]).toBe(JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, "../../package.json"), "utf8")).dependencies["@tensorflow/tfjs"]);
  });

  it("predict(bytes) answers the API pipeline's top labels and probabilities for EXIF-rotated, transparent and plain images", async () => {
    const { loadBundle } = await import(pathToFileURL(path.join(dir, "edgetune.mjs")).href);
    const folder = pathToFileURL(`${dir}/`);
    const model = await loadBundle(tf, (file: string) => fs.promises.readFile(new URL(file, folder)));
    expect(model.labels).toEqual(LABELS);
    const images = Object.values(IMAGES);
    const result = await model.predict(images);
    const expected = await referencePredictions(images);
    expect(result.model_id).toBe("mdl_runtime_test");
    expect(result.predictions.map((p: { label: string }[]) => p.map((x) => x.label))).toEqual(expected.map((p) => p.map((x) => x.label)));
    result.predictions.forEach((prediction: { probability: number }[], row: number) => {
      prediction.forEach((entry, k) => expect(Math.abs(entry.probability - expected[row]![k]!.probability)).toBeLessThan(1e-6));
    });
    // One image alone gives the same answer as in the batch, and top_k applies.
    const single = await model.predict(IMAGES["exif-rotated.jpg"], { topK: 1 });
    expect(single.predictions).toEqual([result.predictions[0].slice(0, 1)]);
    model.dispose();
  });

  it("runs a graph-model backbone (a converted SavedModel) with plain tfjs, center-cropped, as the API does", async () => {
    const graphDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bundle-graph-"));
    for (const name of ["edgetune.mjs", "mozjpeg_dec.wasm", "squoosh_png_bg.wasm"]) fs.copyFileSync(path.join(dir, name), path.join(graphDir, name));
    const graph = buildTinyGraphModel();
    writeModelFiles(graphDir, graph, GRAPH_SPEC, "graph-model");
    const { loadBundle } = await import(pathToFileURL(path.join(graphDir, "edgetune.mjs")).href);
    const model = await loadBundle(tf, (file: string) => fs.promises.readFile(path.join(graphDir, file)));
    const images = Object.values(IMAGES);
    const result = await model.predict(images);
    const expected = await referencePredictions(images, graph, GRAPH_SPEC);
    result.predictions.forEach((prediction: { label: string; probability: number }[], row: number) => {
      expect(prediction.map((p) => p.label)).toEqual(expected[row]!.map((p) => p.label));
      prediction.forEach((entry, k) => expect(Math.abs(entry.probability - expected[row]![k]!.probability)).toBeLessThan(1e-6));
    });
    model.dispose();
  });

  it("a head trained with flip TTA averages each image's and its mirror's embedding, as the edge does", async () => {
    const ttaDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bundle-tta-"));
    for (const name of ["edgetune.mjs", "mozjpeg_dec.wasm", "squoosh_png_bg.wasm"]) fs.copyFileSync(path.join(dir, name), path.join(ttaDir, name));
    writeModelFiles(ttaDir, buildTinyModel(), SPEC, "layers-model", fixedHead("flip"));
    const { loadBundle } = await import(pathToFileURL(path.join(ttaDir, "edgetune.mjs")).href);
    const model = await loadBundle(tf, (file: string) => fs.promises.readFile(path.join(ttaDir, file)));
    const images = Object.values(IMAGES);
    const result = await model.predict(images);
    const expected = await referencePredictions(images, buildTinyModel(), SPEC, fixedHead("flip"));
    const withoutTta = await referencePredictions(images);
    let differsFromPlain = false;
    result.predictions.forEach((prediction: { label: string; probability: number }[], row: number) => {
      expect(prediction.map((p) => p.label)).toEqual(expected[row]!.map((p) => p.label));
      prediction.forEach((entry, k) => expect(Math.abs(entry.probability - expected[row]![k]!.probability)).toBeLessThan(1e-6));
      if (Math.abs(prediction[0]!.probability - withoutTta[row]![0]!.probability) > 1e-4) differsFromPlain = true;
    });
    expect(differsFromPlain).toBe(true); // the mirror changed something: the test would notice TTA being skipped
    model.dispose();
  });

  it("refuses what the API refuses, with the API's error code", async () => {
    const { loadBundle } = await import(pathToFileURL(path.join(dir, "edgetune.mjs")).href);
    const model = await loadBundle(tf, (file: string) => fs.promises.readFile(path.join(dir, file)));
    await expect(model.predict(new TextEncoder().encode("not an image"))).rejects.toMatchObject({ code: "not_an_image" });
    model.dispose();
  });

  it("runs a fine-tuned model (edgetune-bundle/3): the backbone to the cut, the model's blocks, the head, as the edge does", async () => {
    // fineTunedFixture's blocks are the tiny MobileNet's own last two blocks (BN folded): through them, the cut map must
    // give what the whole backbone pools at the blocks' output layer. So the fine-tuned bundle is checked against a
    // head-only bundle of the same backbone pooled at that layer, not against its own code.
    const fixture = fineTunedFixture();
    const tiny = { modelJson: fixture.modelJson, weightData: new Uint8Array(fixture.weightData) } as unknown as TinyModel;
    const spec: BackboneSpec = { name: "tiny-mobilenet", feature_layer: fixture.stack.outputLayer, input_size: [16, 16], normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, pooling: "avg", resize: "squash" };
    const head = parseHead(JSON.parse(JSON.stringify(fixture.manifest)), fixture.headBin.slice().buffer as ArrayBuffer);
    const { blocks: _blocks, ...headOnly } = head;
    const plainDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bundle-plain-"));
    const tunedDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bundle-tuned-"));
    for (const folder of [plainDir, tunedDir]) await buildBundleRuntime({ outdir: folder, quiet: true });
    writeModelFiles(plainDir, tiny, spec, "layers-model", headOnly, ["a", "b", "c"]);
    // Its feature_spec names another layer (12 features too): a runtime that ran the feature_spec instead of the
    // blocks would answer other embeddings.
    writeModelFiles(tunedDir, tiny, { ...spec, feature_layer: "conv_pw_2_relu" }, "layers-model", headOnly, ["a", "b", "c"]);
    // What the export writes for a fine-tuned model: the stored head.json (with `blocks`), blocks.bin, format /3.
    fs.writeFileSync(path.join(tunedDir, "head", "head.json"), JSON.stringify(fixture.manifest));
    fs.writeFileSync(path.join(tunedDir, "head", "head.bin"), fixture.headBin);
    fs.writeFileSync(path.join(tunedDir, "head", "blocks.bin"), fixture.blocksBin);
    const tunedManifest = JSON.parse(fs.readFileSync(path.join(tunedDir, "edgetune.json"), "utf8"));
    fs.writeFileSync(path.join(tunedDir, "edgetune.json"), JSON.stringify({ ...tunedManifest, format: BUNDLE_FORMAT_FINE_TUNED, paths: { ...tunedManifest.paths, head_blocks: "head/blocks.bin" } }));

    const load = async (folder: string) => (await import(pathToFileURL(path.join(folder, "edgetune.mjs")).href)).loadBundle(tf, (file: string) => fs.promises.readFile(path.join(folder, file)));
    const plain = await load(plainDir);
    const tuned = await load(tunedDir);
    expect(tuned.dim).toBe(12);
    const images = Object.values(IMAGES);
    for (const image of images) {
      const [a, b] = [await plain.embed(image), await tuned.embed(image)];
      expect(b.length).toBe(12);
      b.forEach((value: number, i: number) => expect(Math.abs(value - a[i]!)).toBeLessThan(1e-5));
    }
    const [plainResult, tunedResult] = [await plain.predict(images), await tuned.predict(images)];
    expect(tunedResult.predictions.map((p: { label: string }[]) => p.map((x) => x.label))).toEqual(plainResult.predictions.map((p: { label: string }[]) => p.map((x) => x.label)));
    plain.dispose();
    tuned.dispose();

    // The manifest and head.json must agree: a /2 manifest over a head with blocks, or /3 without head_blocks, is refused.
    const reading = (edits: Record<string, unknown>) => async (file: string) =>
      file === "edgetune.json" ? new TextEncoder().encode(JSON.stringify({ ...tunedManifest, ...edits })) : fs.promises.readFile(path.join(tunedDir, file));
    const { loadBundle } = await import(pathToFileURL(path.join(tunedDir, "edgetune.mjs")).href);
    await expect(loadBundle(tf, reading({ format: BUNDLE_FORMAT }))).rejects.toThrow(/disagree/);
    await expect(loadBundle(tf, reading({ format: BUNDLE_FORMAT_FINE_TUNED }))).rejects.toThrow(/disagree/);
  });

  it("refuses an edgetune.json from another release of the image pipeline instead of predicting differently", async () => {
    const { loadBundle } = await import(pathToFileURL(path.join(dir, "edgetune.mjs")).href);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "edgetune.json"), "utf8"));
    const read = async (file: string) => (file === "edgetune.json" ? new TextEncoder().encode(JSON.stringify({ ...manifest, preprocessing: { ...manifest.preprocessing, version: "img-0" } })) : fs.promises.readFile(path.join(dir, file)));
    await expect(loadBundle(tf, read)).rejects.toThrow(/image pipeline img-0/);
  });
});
