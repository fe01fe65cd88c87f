import assert from "node:assert/strict";
import { afterAll, beforeAll, describe, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import type { BackboneBundle, FeatureSpec } from "../../shared/backbone/types";
import { createEngine, type EmbeddingEngine } from "../../gpu-runner/src/engine/index";
import { convertToOnnx } from "../../gpu-runner/src/engine/onnx/convert";
import { makeImages, makeTinyBundle, maxAbsDiff, referenceEmbeddings } from "./engine-fixtures";

const ortAvailable = await import("onnxruntime-node").then(
  () => true,
  () => false,
);
const skipOnnx = !ortAvailable;
if (skipOnnx) console.warn("skipping the onnx engine tests: onnxruntime-node is not installed");

const SPECS: Array<[string, FeatureSpec]> = [
  ["one layer, avg", { feature_layers: ["out_relu"], pooling: "avg" }],
  ["three layers incl. a pre-BN conv and an Add, avg+max", { feature_layers: ["project", "block_add", "out_relu"], pooling: "avg+max" }],
  ["flip averaging", { feature_layers: ["joined"], pooling: "avg", flip_average: true }],
];

describe("onnx engine (in-house tfjs → ONNX converter)", () => {
  let bundle: BackboneBundle;
  beforeAll(async () => {
    await tf.setBackend("wasm");
    bundle = await makeTinyBundle();
  });

  it("refuses layer types it does not convert, naming the layer", () => {
    assert.throws(() => convertToOnnx(bundle, { feature_layers: ["head"], pooling: "avg" }), /gap: GlobalAveragePooling2D|head: Dense/);
  });

  for (const [label, spec] of SPECS) {
    it(`matches tfjs-wasm within 1e-4: ${label}`, { skip: skipOnnx }, async () => {
      const n = 5;
      const images = makeImages(n);
      const expected = await referenceEmbeddings(bundle, spec, images, n);
      const engine = await createEngine(bundle, spec, { engine: "onnx", threads: 1 });
      try {
        const got = await engine.embed(images, n);
        assert.equal(got.length, expected.length);
        assert.equal(engine.dim * n, expected.length);
        const diff = maxAbsDiff(got, expected);
        assert.ok(diff < 1e-4, `max abs diff ${diff}`);
      } finally {
        await engine.close();
      }
    });
  }

  it("splits batches larger than maxBatch without changing results", { skip: skipOnnx }, async () => {
    const spec: FeatureSpec = { feature_layers: ["out_relu"], pooling: "avg+max" };
    const images = makeImages(7);
    const whole = await createEngine(bundle, spec, { engine: "onnx", threads: 1 });
    const split = await createEngine(bundle, spec, { engine: "onnx", threads: 1, maxBatch: 3 });
    try {
      assert.ok(maxAbsDiff(await whole.embed(images, 7), await split.embed(images, 7)) < 1e-6);
    } finally {
      await Promise.all([whole.close(), split.close()]);
    }
  });

  it("rejects a batch whose length does not match n", { skip: skipOnnx }, async () => {
    const engine = await createEngine(bundle, { feature_layers: ["out_relu"], pooling: "avg" }, { engine: "onnx", threads: 1 });
    try {
      assert.throws(() => engine.embed(new Float32Array(10), 1), /expected 1 x 32x32x3/);
    } finally {
      await engine.close();
    }
  });
});

describe("tfjs-wasm engine (worker pool) and auto", () => {
  let bundle: BackboneBundle;
  let pool: EmbeddingEngine | undefined;
  const spec: FeatureSpec = { feature_layers: ["block_add", "out_relu"], pooling: "avg+max" };
  beforeAll(async () => {
    await tf.setBackend("wasm");
    bundle = await makeTinyBundle();
  });
  afterAll(async () => {
    await pool?.close();
  });

  it("splits a batch over 2 workers and matches the in-process extractor", async () => {
    pool = await createEngine(bundle, spec, { engine: "tfjs-wasm", threads: 2 });
    const n = 5;
    const images = makeImages(n);
    const got = await pool.embed(images, n);
    const expected = await referenceEmbeddings(bundle, spec, images, n);
    assert.equal(pool.dim, 48); // (8 + 16 channels) x avg, max
    assert.ok(maxAbsDiff(got, expected) < 1e-6, `max abs diff ${maxAbsDiff(got, expected)}`);
  });

  it("auto logs why each faster engine was skipped and starts one", async () => {
    const lines: string[] = [];
    const engine = await createEngine(bundle, spec, { engine: "auto", threads: 1, log: (line) => lines.push(line) });
    try {
      const skipped = lines.filter((line) => line.startsWith("engine auto: skip"));
      assert.ok(lines.some((line) => line.startsWith(`engine auto: using ${engine.name}`)), lines.join("\n"));
      // Every engine before the chosen one is accounted for with a reason.
      assert.ok(skipped.every((line) => /unavailable: |failed: /.test(line)), skipped.join("\n"));
      if (ortAvailable) assert.match(engine.name, /^(onnx|tfjs-node-gpu|webgpu)/);
      const out = await engine.embed(makeImages(2), 2);
      assert.equal(out.length, 2 * engine.dim);
    } finally {
      await engine.close();
    }
  });
});
