import assert from "node:assert/strict";
import { beforeAll, describe, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { buildFeatureExtractor } from "../../shared/backbone/feature-extractor";
import { concatWeightBuffers, expectedWeightBytes, getInputShape, getLayerRecords, pruneToFeatureLayers, validateFeatureSpec } from "../../shared/backbone/model-json";
import type { BackboneBundle } from "../../shared/backbone/types";
import { makeImages, makeTinyBundle, maxAbsDiff, TINY_SIZE } from "./engine-fixtures";

describe("backbone feature extractor (tfjs, wasm backend)", () => {
  let bundle: BackboneBundle;
  beforeAll(async () => {
    await tf.setBackend("wasm");
    bundle = await makeTinyBundle();
  });

  it("reads the input shape and checks the weight byte count from model.json", () => {
    assert.deepEqual(getInputShape(bundle.modelJson), [TINY_SIZE, TINY_SIZE, 3]);
    assert.equal(expectedWeightBytes(bundle.modelJson), bundle.weightData.byteLength);
  });

  it("rejects feature specs naming unknown or repeated layers", () => {
    assert.throws(() => validateFeatureSpec(bundle.modelJson, { feature_layers: ["nope"], pooling: "avg" }), /no layer named "nope"/);
    assert.throws(() => validateFeatureSpec(bundle.modelJson, { feature_layers: ["dw_relu", "dw_relu"], pooling: "avg" }), /twice/);
    assert.throws(() => validateFeatureSpec(bundle.modelJson, { feature_layers: [], pooling: "avg" }), /at least one/);
  });

  it("cuts the head: the pruned topology ends at the feature layers", () => {
    const pruned = pruneToFeatureLayers(bundle.modelJson, ["block_add"]);
    const names = getLayerRecords(pruned).map((layer) => layer.name);
    assert.ok(names.includes("dw_relu"));
    assert.ok(!names.includes("head") && !names.includes("gap") && !names.includes("expand"));
  });

  it("maps [n, H, W, 3] to [n, sum of channels] with avg pooling and to twice that with avg+max", async () => {
    const images = tf.tensor4d(makeImages(3), [3, TINY_SIZE, TINY_SIZE, 3]);
    const avg = await buildFeatureExtractor(tf, bundle, { feature_layers: ["dw_relu", "out_relu"], pooling: "avg" });
    const both = await buildFeatureExtractor(tf, bundle, { feature_layers: ["dw_relu", "out_relu"], pooling: "avg+max" });
    assert.deepEqual(avg.layerChannels, [16, 16]);
    assert.equal(avg.dim, 32);
    assert.equal(both.dim, 64);
    const a = avg.embed(images);
    const b = both.embed(images);
    assert.deepEqual(a.shape, [3, 32]);
    assert.deepEqual(b.shape, [3, 64]);
    // avg+max lays out [avg(layer1), max(layer1), avg(layer2), max(layer2)].
    const av = (await a.data()) as Float32Array;
    const bv = (await b.data()) as Float32Array;
    assert.ok(maxAbsDiff(av.subarray(0, 16), bv.subarray(0, 16)) < 1e-6);
    assert.ok(maxAbsDiff(av.subarray(16, 32), bv.subarray(32, 48)) < 1e-6);
    for (let c = 0; c < 16; c++) assert.ok(bv[16 + c]! >= bv[c]! - 1e-6, "max pooling is at least the average");
    tf.dispose([images, a, b]);
    avg.dispose();
    both.dispose();
  });

  it("matches the full model's own intermediate activations (weights really loaded)", async () => {
    const full = await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: bundle.modelJson.modelTopology as object, weightSpecs: bundle.modelJson.weightsManifest[0]!.weights as tf.io.WeightsManifestEntry[], weightData: bundle.weightData }),
    );
    const probe = tf.model({ inputs: full.inputs, outputs: full.getLayer("out_relu").output as tf.SymbolicTensor });
    const images = tf.tensor4d(makeImages(2), [2, TINY_SIZE, TINY_SIZE, 3]);
    const expected = (await (probe.predict(images) as tf.Tensor).mean([1, 2]).data()) as Float32Array;
    const extractor = await buildFeatureExtractor(tf, bundle, { feature_layers: ["out_relu"], pooling: "avg" });
    const got = extractor.embed(images);
    assert.ok(maxAbsDiff((await got.data()) as Float32Array, expected) < 1e-6);
    tf.dispose([images, got]);
    full.dispose();
    extractor.dispose();
  });

  it("flip averaging gives a mirror-invariant embedding", async () => {
    const extractor = await buildFeatureExtractor(tf, bundle, { feature_layers: ["out_relu"], pooling: "avg+max", flip_average: true });
    const images = tf.tensor4d(makeImages(2), [2, TINY_SIZE, TINY_SIZE, 3]);
    const mirrored = tf.reverse(images, 2);
    const a = (await extractor.embed(images).data()) as Float32Array;
    const b = (await extractor.embed(mirrored).data()) as Float32Array;
    assert.ok(maxAbsDiff(a, b) < 1e-5);
    tf.dispose([images, mirrored]);
    extractor.dispose();
  });

  it("concatenates weight files in order", () => {
    const joined = new Uint8Array(concatWeightBuffers([Uint8Array.of(1, 2).buffer, Uint8Array.of(3).buffer]));
    assert.deepEqual([...joined], [1, 2, 3]);
  });
});
