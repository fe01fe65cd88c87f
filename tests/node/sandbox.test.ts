/**
 * User models run on runners in a sandbox (gpu-runner/src/engine/sandbox.ts, issue 8): tfjs-wasm worker threads with
 * an empty environment (the runner token is not there), V8 heap limits, a WASM heap cap and a time limit. Written as
 * the hostile model: it cannot see the token, it cannot pick a native engine, and a model that runs away is stopped
 * and fails its job for good instead of hanging it.
 */
import assert from "node:assert/strict";
import { afterAll, beforeAll, describe, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import type { BackboneBundle, FeatureSpec } from "../../shared/backbone/types";
import { backboneSpecSchema, type LeasedJob } from "../../shared/schemas";
import { createEngine } from "../../gpu-runner/src/engine/index";
import { DEFAULT_SANDBOX_LIMITS, SandboxCrashError, SandboxTimeoutError, type SandboxLimits } from "../../gpu-runner/src/engine/sandbox";
import { createWasmPoolEngine } from "../../gpu-runner/src/engine/wasm-pool-engine";
import { runJob } from "../../gpu-runner/src/run-job";
import type { RunnerClient } from "../../gpu-runner/src/api-client";
import { makeImages, makeTinyBundle, maxAbsDiff } from "./engine-fixtures";

const TOKEN = "et_rnr_sandbox_test_secret_0000000000";
const spec: FeatureSpec = { feature_layers: ["out_relu"], pooling: "avg" };

/** Serialises a tfjs model as a bundle, the way a user's upload reaches the runner. */
async function bundleOf(model: tf.LayersModel, name: string): Promise<BackboneBundle> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    saved = artifacts;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
  }));
  model.dispose();
  return {
    name,
    modelJson: { modelTopology: saved!.modelTopology as BackboneBundle["modelJson"]["modelTopology"], weightsManifest: [{ paths: ["weights.bin"], weights: saved!.weightSpecs as BackboneBundle["modelJson"]["weightsManifest"][0]["weights"] }] },
    weightData: saved!.weightData as ArrayBuffer,
    inputRange: [-1, 1],
  };
}

/**
 * A "runaway" model: four 3x3 convolutions of 256 channels at 256x256, about 116 G multiply-adds per image
 * (MobileNetV2 needs 0.3 G): many seconds per image on one WASM thread, at least 20x the 0.5 s limit below on any
 * machine we run on. Small to ship (7 MB of weights), slow to run.
 */
async function makeRunawayBundle(): Promise<BackboneBundle> {
  const input = tf.input({ shape: [256, 256, 3], name: "input_1" });
  let x = tf.layers.conv2d({ filters: 256, kernelSize: 3, padding: "same", name: "wide_0" }).apply(input);
  for (let i = 1; i < 4; i++) x = tf.layers.conv2d({ filters: 256, kernelSize: 3, padding: "same", name: `wide_${i}` }).apply(x);
  const out = tf.layers.reLU({ name: "out_relu" }).apply(x) as tf.SymbolicTensor;
  return bundleOf(tf.model({ inputs: input, outputs: out, name: "runaway" }), "bb_runaway");
}

const shortLimits: SandboxLimits = { ...DEFAULT_SANDBOX_LIMITS, sliceTimeoutMs: 500 };

describe("the sandbox for user models", () => {
  let bundle: BackboneBundle;
  const previousToken = process.env.EDGETUNE_RUNNER_TOKEN;
  beforeAll(async () => {
    await tf.setBackend("wasm");
    bundle = await makeTinyBundle();
    // The runner's own process holds its token in the environment (gpu-runner/src/main.ts reads it from there).
    process.env.EDGETUNE_RUNNER_TOKEN = TOKEN;
  });
  afterAll(() => {
    if (previousToken === undefined) delete process.env.EDGETUNE_RUNNER_TOKEN;
    else process.env.EDGETUNE_RUNNER_TOKEN = previousToken;
  });

  it("runs a user model's embeddings in the sandbox whatever engine is asked for, with the same values as tfjs-wasm", async () => {
    const logs: string[] = [];
    const sandboxed = await createEngine(bundle, spec, { trust: "user", engine: "onnx", threads: 1, log: (line) => logs.push(line) });
    const plain = await createEngine(bundle, spec, { engine: "tfjs-wasm", threads: 1 });
    try {
      assert.match(sandboxed.name, /^tfjs-wasm sandbox/);
      assert.ok(logs.some((line) => line.includes("engine onnx is for builtin backbones")), logs.join("\n"));
      const images = makeImages(3);
      assert.equal(maxAbsDiff(await sandboxed.embed(images, 3), await plain.embed(images, 3)), 0);
    } finally {
      await Promise.all([sandboxed.close(), plain.close()]);
    }
  });

  it("holds no token: the sandbox thread's process.env is empty and its heap is limited (a plain pool thread sees the token)", async () => {
    const probe = async (sandbox: SandboxLimits | undefined) => {
      const engine = await createWasmPoolEngine(bundle, spec, { threads: 1, maxBatch: 8, log: () => {}, sandbox, testHooks: { probeEnvOnBatchOf: 2 } });
      try {
        const error = await engine.embed(makeImages(2), 2).then(() => null, (e: Error & { data?: any }) => e);
        assert.ok(error?.data, "the probe answers what the thread sees");
        return error.data as { env: Record<string, string>; resourceLimits: { maxOldGenerationSizeMb: number } };
      } finally {
        await engine.close();
      }
    };
    const inside = await probe(DEFAULT_SANDBOX_LIMITS);
    assert.deepEqual(inside.env, {});
    assert.ok(!JSON.stringify(inside).includes(TOKEN));
    assert.equal(inside.resourceLimits.maxOldGenerationSizeMb, DEFAULT_SANDBOX_LIMITS.maxOldGenerationSizeMb);
    // The control: without the sandbox a worker thread inherits the environment, token included.
    assert.equal((await probe(undefined)).env.EDGETUNE_RUNNER_TOKEN, TOKEN);
  });

  it("stops a model that allocates past the WASM heap cap with a clear error, not the machine's memory", async () => {
    // 24 MB of WASM heap cannot hold the runaway model's 7 MB of weights plus its 64 MB float activations per conv.
    const limits: SandboxLimits = { ...DEFAULT_SANDBOX_LIMITS, wasmHeapMb: 24 };
    const runaway = await makeRunawayBundle();
    await assert.rejects(createEngine(runaway, { feature_layers: ["out_relu"], pooling: "avg" }, { trust: "user", threads: 1, sandboxLimits: limits }), (error: Error) => {
      assert.ok(error instanceof SandboxCrashError, `${error.name}: ${error.message}`);
      assert.match(error.message, /sandbox/);
      return true;
    });
  });

  it("kills a runaway model at the time limit, and its job fails for good with a clear error instead of hanging", async () => {
    const runaway = await makeRunawayBundle();
    const feature: FeatureSpec = { feature_layers: ["out_relu"], pooling: "avg" };
    // The engine alone: the first run (one image) passes the 0.5 s limit and the thread is killed.
    await assert.rejects(createEngine(runaway, feature, { trust: "user", threads: 1, sandboxLimits: shortLimits }), SandboxTimeoutError);

    // The same model as a leased job's user backbone: the runner reports a permanent failure naming the time limit.
    const modelJson = new TextEncoder().encode(JSON.stringify(runaway.modelJson));
    const weights = new Uint8Array(runaway.weightData);
    const failures: { error: string; retryable?: boolean }[] = [];
    const client = {
      heartbeat: async () => ({ cancel_requested: false, lease_expires_at: new Date(Date.now() + 60_000).toISOString() }),
      getBackboneFile: async (_job: string, _lease: string, name: string) => (name === "model.json" ? modelJson : weights),
      fail: async (_job: string, report: { error: string; retryable?: boolean }) => {
        failures.push(report);
        return "failed";
      },
    } as unknown as RunnerClient;
    const leased = {
      job: { id: "job_runaway", project_id: "prj_a", dataset_id: "ds_a", dataset_version: 1, attempt: 1, max_attempts: 3, config: {}, model_id: "mdl_a" },
      lease: { token: "lease_a", expires_at: new Date(Date.now() + 60_000).toISOString(), lease_ms: 60_000, heartbeat_ms: 10_000 },
      backbone: {
        id: "bb_runaway", name: "runaway", builtin: false, weights_version: "bb_runaway", format: "layers-model",
        spec: backboneSpecSchema.parse({ name: "runaway", feature_layer: "out_relu", input_size: [256, 256], normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } }),
      },
      images: [],
    } as unknown as LeasedJob;
    const outcome = await runJob({
      client, leased, shutdown: new AbortController().signal, log: () => {}, codecs: undefined as never,
      engineFor: (b, f, trust) => createEngine(b, f, { trust, threads: 1, sandboxLimits: shortLimits }),
    });
    assert.equal(outcome, "failed");
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.retryable, false, "another attempt would run the same model again");
    assert.match(failures[0]!.error, /time limit \(0\.5 s/);
  });
});
