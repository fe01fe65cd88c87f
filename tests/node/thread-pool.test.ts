/**
 * The runner's worker-thread pools survive their workers' faults (issue 7, "the runner survives its own faults"):
 * a crashed worker rejects its task and is replaced, a stuck task times out, a worker that cannot start rejects
 * instead of leaving callers pending. Then the two pools built on it: the tfjs-wasm engine (a crash mid-batch rejects
 * `embed`, the next batch works) and the decode pool (bit-identical to decoding in this thread).
 */
import assert from "node:assert/strict";
import { afterAll, beforeAll, describe, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { imageToTensorInput, type PreprocessSpec } from "../../shared/image/preprocess";
import type { BackboneBundle, FeatureSpec } from "../../shared/backbone/types";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { DecodePool } from "../../gpu-runner/src/decode/decode-pool";
import { createWasmPoolEngine } from "../../gpu-runner/src/engine/wasm-pool-engine";
import { PoolTaskTimeoutError, PoolWorkerCrashedError, ThreadPool } from "../../gpu-runner/src/threads/pool";
import { makeImages, makeTinyBundle } from "./engine-fixtures";
import { makeJpeg, makePng, makeTruncatedJpeg } from "../fixtures/images";

const WORKER = new URL("./fixtures/pool-test-worker.ts", import.meta.url);

describe("ThreadPool", () => {
  it("runs tasks on its workers and transfers results back", async () => {
    const pool = new ThreadPool<unknown, unknown>(WORKER, { name: "test pool", size: 2 });
    try {
      await pool.ready;
      const answers = await Promise.all([1, 2, 3, 4, 5].map((value) => pool.run({ op: "echo", value })));
      assert.deepEqual(answers, [1, 2, 3, 4, 5]);
      const values = Float32Array.from([1, 2, 3]);
      assert.deepEqual(await pool.run({ op: "double", values }, [values.buffer]), Float32Array.from([2, 4, 6]));
      assert.equal(values.length, 0, "the request buffer was transferred, not copied");
    } finally {
      await pool.close();
    }
  });

  it("rejects the task of a worker that crashes, replaces the worker and keeps serving", async () => {
    const pool = new ThreadPool<unknown, unknown>(WORKER, { name: "test pool", size: 1 });
    try {
      await assert.rejects(pool.run({ op: "crash" }), PoolWorkerCrashedError);
      assert.equal(await pool.run({ op: "echo", value: "after" }), "after");
      assert.equal(pool.respawns, 1);
    } finally {
      await pool.close();
    }
  });

  it("times out a task that never answers, restarts its worker and serves the queue", async () => {
    const pool = new ThreadPool<unknown, unknown>(WORKER, { name: "test pool", size: 1, taskTimeoutMs: 300 });
    try {
      const stuck = pool.run({ op: "hang" });
      const queued = pool.run({ op: "echo", value: "queued" });
      await assert.rejects(stuck, PoolTaskTimeoutError);
      assert.equal(await queued, "queued");
    } finally {
      await pool.close();
    }
  });

  it("passes a task's own error back without harming the worker", async () => {
    const pool = new ThreadPool<unknown, unknown>(WORKER, { name: "test pool", size: 1 });
    try {
      await assert.rejects(pool.run({ op: "throw" }), (error: Error & { data?: unknown }) => error.name === "RequestError" && (error.data as { hint: number }).hint === 42);
      assert.equal(await pool.run({ op: "echo", value: 1 }), 1);
      assert.equal(pool.respawns, 0);
    } finally {
      await pool.close();
    }
  });

  it("rejects ready and every task when its workers cannot start", async () => {
    const pool = new ThreadPool<unknown, unknown>(WORKER, { name: "test pool", size: 1, workerData: { failInit: true }, maxStartFailures: 2 });
    await assert.rejects(pool.ready, /init refused on purpose/);
    await assert.rejects(pool.run({ op: "echo", value: 1 }), /init refused on purpose|closed/);
  });
});

describe("tfjs-wasm pool engine faults", () => {
  let bundle: BackboneBundle;
  const spec: FeatureSpec = { feature_layers: ["out_relu"], pooling: "avg" };
  beforeAll(async () => {
    await tf.setBackend("wasm");
    bundle = await makeTinyBundle();
  });

  it("rejects embed when a worker crashes mid-batch, then embeds the next batch with a fresh worker", async () => {
    const engine = await createWasmPoolEngine(bundle, spec, { threads: 1, maxBatch: 8, log: () => {}, testHooks: { crashOnBatchOf: 3 } });
    try {
      await assert.rejects(engine.embed(makeImages(3), 3), PoolWorkerCrashedError);
      const out = await engine.embed(makeImages(2), 2);
      assert.equal(out.length, 2 * engine.dim);
      assert.equal(engine.respawns, 1);
    } finally {
      await engine.close();
    }
  });

  it("rejects embed when a slice runs past its timeout", async () => {
    const engine = await createWasmPoolEngine(bundle, spec, { threads: 1, maxBatch: 8, log: () => {}, sliceTimeoutMs: 500, testHooks: { hangOnBatchOf: 4 } });
    try {
      await assert.rejects(engine.embed(makeImages(4), 4), PoolTaskTimeoutError);
      assert.equal((await engine.embed(makeImages(1), 1)).length, engine.dim);
    } finally {
      await engine.close();
    }
  });
});

describe("DecodePool", () => {
  const pool = new DecodePool({ threads: 2 });
  afterAll(() => pool.close());
  const preprocess: PreprocessSpec = { input_size: [24, 24], mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3], resize: "squash" };

  it("decodes bit-identically to the in-thread pipeline (the edge's code)", async () => {
    const codecs = await getNodeCodecs();
    for (const bytes of [makeJpeg("small"), makeJpeg("other"), makePng(40, 30, 5)]) {
      const expected = await imageToTensorInput(bytes, preprocess, codecs, { maxPixels: 1e7 });
      const result = await pool.decode(bytes.slice(), preprocess, 1e7);
      assert.ok("pixels" in result);
      assert.deepEqual(new Uint8Array(result.pixels.buffer), new Uint8Array(expected.buffer));
    }
  });

  it("answers a broken image with its rejection code instead of failing", async () => {
    const result = await pool.decode(makeTruncatedJpeg(), preprocess, 1e7);
    assert.ok("rejected" in result, JSON.stringify(result));
    assert.match(result.rejected.code, /^[a-z_]+$/);
  });
});
