/**
 * Fine-tune jobs end to end on the real local platform (wrangler dev: workerd + local D1/R2) with real runner
 * processes (gpu-runner/src/main.ts), on datasets generated here: a dataset uploaded, trained, its model and metrics
 * checked; a retrain reusing every cached embedding; a runner given SIGTERM and one killed with SIGKILL mid-embedding
 * while another finishes the job; a cancel reaching a running job.
 *
 * Slow runners (`--engine tfjs-wasm --threads 1`, about 10 img/s at 224x224) make "mid-embedding" a window of
 * seconds on any machine; the runner that finishes uses the default (fastest) engine.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, test } from "vitest";
import { zipSync } from "fflate";
import { ROOT } from "../../scripts/platform.mjs";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { loadVendoredBundle } from "../../gpu-runner/src/backbones/builtin-vendored";
import { createEngine } from "../../gpu-runner/src/engine/index";
import { DEFAULT_BACKBONE, featureSpecOf, preprocessSpecOf, singleSizeSpec } from "../../shared/catalog";
import { applyHead, parseBlocks, parseHead } from "../../shared/head";
import * as tfjs from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { embedWithBlocks } from "../../gpu-runner/src/train/fine-tune";
import { averageEmbeddings } from "../../shared/image/augment";
import { imageToTensorInput } from "../../shared/image/preprocess";
import { makeColouredPng, makeUndecodablePng } from "../fixtures/images";
import { buildTinyGraphModel, buildTinyModel, tinySpec } from "../fixtures/tiny-model";
import { api, platformLogTail, startTestPlatform, waitFor, type Platform } from "./platform";

const COLOURS: Record<string, [number, number, number]> = { red: [200, 40, 40], green: [40, 180, 60], blue: [40, 60, 200] };

let platform: Platform;
const runners: ChildProcess[] = [];

interface RunnerProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startRunner(args: string[] = []): RunnerProcess {
  // `node --import tsx`, not the tsx CLI: the CLI runs the script in a child process, which a SIGKILL would orphan.
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "gpu-runner/src/main.ts"), "--api", platform.url, ...args], {
    // The token travels in the environment, never on the command line (where `ps` shows it to every local user).
    cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, EDGETUNE_RUNNER_TOKEN: platform.runnerToken },
  });
  runners.push(child);
  let text = "";
  child.stdout!.on("data", (chunk) => (text += chunk));
  child.stderr!.on("data", (chunk) => (text += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => text, exited };
}

async function stopRunner(runner: RunnerProcess): Promise<void> {
  if (runner.child.exitCode !== null || runner.child.signalCode !== null) return;
  runner.child.kill("SIGTERM");
  await runner.exited;
}

/** A ready dataset of `perLabel` coloured PNGs per label (+ `extra` files), uploaded as one zip. */
let nextSeed = 1; // every image of every dataset here is distinct: no embedding is cached by accident
async function createDataset(name: string, perLabel: number, size: number, extra: Record<string, Uint8Array> = {}) {
  const files: Record<string, Uint8Array> = { ...extra };
  let seed = nextSeed;
  nextSeed += perLabel * Object.keys(COLOURS).length;
  for (const [label, rgb] of Object.entries(COLOURS)) for (let i = 0; i < perLabel; i++) files[`${label}/${label}-${i}.png`] = makeColouredPng(size, size, rgb, seed++);
  const dataset = await api(platform, "POST", "/v1/datasets", { json: { name } });
  assert.equal(dataset.status, 201);
  const upload = await api(platform, "POST", `/v1/datasets/${dataset.body.id}/archive`, { body: zipSync(files, { level: 1 }), headers: { "content-type": "application/zip" } });
  assert.equal(upload.status, 202, JSON.stringify(upload.body));
  return waitFor(`dataset ${name} ready`, async () => {
    const d = await api(platform, "GET", `/v1/datasets/${dataset.body.id}`);
    return d.body.status === "ready" ? d.body : d.body.status === "failed" ? assert.fail(JSON.stringify(d.body)) : null;
  }, 60_000);
}

const finished = (status: string) => ["succeeded", "failed", "canceled"].includes(status);

async function waitForJob(jobId: string, what: (job: any) => boolean, label: string, timeoutMs = 120_000) {
  try {
    return await waitFor(label, async () => {
      const job = (await api(platform, "GET", `/v1/jobs/${jobId}`)).body;
      return what(job) ? job : null;
    }, timeoutMs);
  } catch (error) {
    const job = (await api(platform, "GET", `/v1/jobs/${jobId}`)).body;
    throw new Error(`${(error as Error).message}; job now ${JSON.stringify(job).slice(0, 600)}\n${platformLogTail(platform, 15)}`);
  }
}

beforeAll(async () => {
  platform = await startTestPlatform({ runner: false });
});
afterAll(async () => {
  for (const child of runners) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await platform?.stop();
});

describe("a fine-tune job on the local platform", () => {
  let runner: RunnerProcess;
  let datasetId: string;
  let firstJob: any;
  beforeAll(async () => {
    runner = startRunner();
    const dataset = await createDataset("colours", 8, 40);
    datasetId = dataset.id;
    // Passes the header checks at upload, fails to decode at train time: skipped and reported on the job.
    const bad = await api(platform, "PUT", `/v1/datasets/${datasetId}/images/red/broken.png`, { body: makeUndecodablePng() as Uint8Array<ArrayBuffer>, headers: { "content-type": "image/png" } });
    assert.equal(bad.status, 201, JSON.stringify(bad.body));
  });
  afterAll(async () => {
    await stopRunner(runner);
  });

  test("with no backbone and no head given, trains an `auto` head on the default builtin backbone and registers an evaluated model", async () => {
    const created = await api(platform, "POST", "/v1/jobs", { json: { dataset_id: datasetId, hyperparameters: { epochs: 30, seed: 7 } } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const job = await waitForJob(created.body.id, (j) => finished(j.status), "the job to finish");
    assert.equal(job.status, "succeeded", `${job.error}\n${runner.output().slice(-2000)}`);
    firstJob = job;
    assert.equal(job.attempt, 1);
    assert.ok(job.metrics.epochs.length >= 1 && job.metrics.epochs.length <= 30);
    for (const epoch of job.metrics.epochs) for (const key of ["train_loss", "val_loss", "train_accuracy", "val_accuracy"]) assert.equal(typeof epoch[key], "number");
    assert.deepEqual(job.skipped.map((s: any) => [s.path, s.code]), [["red/broken.png", "corrupt_image"]]);

    const model = (await api(platform, "GET", `/v1/models/${job.model_id}`)).body;
    assert.equal(model.job_id, job.id);
    assert.deepEqual(model.labels, ["blue", "green", "red"]);
    assert.equal(model.dataset_version, job.dataset_version);
    // Solid colours are trivially separable: every validation image right.
    assert.equal(model.metrics.accuracy, 1, JSON.stringify(model.metrics));
    assert.equal(model.metrics.per_class.length, 3);
    for (const row of model.metrics.per_class) assert.ok(row.support >= 1 && row.f1 === 1);
    assert.deepEqual(model.metrics.confusion_matrix.map((row: number[]) => row.length), [3, 3, 3]);
    assert.equal(typeof model.metrics.expected_calibration_error, "number");
    assert.equal(model.metrics.ece, model.metrics.expected_calibration_error);
    assert.ok(Array.isArray(model.metrics.calibration) && model.metrics.calibration.length >= 1);
    assert.deepEqual(model.metrics.misclassified, []);
    // `auto`: every candidate cross-validated on the training images, the chosen one named.
    const selection = model.metrics.selection;
    assert.equal(selection.strategy, "cv");
    assert.ok(selection.folds >= 2);
    assert.ok(selection.candidates.length >= 2);
    for (const candidate of selection.candidates) assert.equal(typeof candidate.cv_accuracy_mean, "number");
    assert.deepEqual(selection.chosen, selection.candidates[selection.chosen_index]);
    const evaluation = (await api(platform, "GET", `/v1/models/${job.model_id}/files/evaluation.json`)).body;
    assert.equal((typeof evaluation === "string" ? JSON.parse(evaluation) : evaluation).images.length, model.metrics.per_class.reduce((n: number, row: any) => n + row.support, 0));

    const card = (await api(platform, "GET", `/v1/models/${job.model_id}/files/card.json`)).body;
    const parsedCard = typeof card === "string" ? JSON.parse(card) : card;
    assert.equal(parsedCard.backbone.id, DEFAULT_BACKBONE.id);
    assert.equal(parsedCard.images, 24);
    assert.match(parsedCard.content_hashes_sha256, /^[0-9a-f]{64}$/);
    assert.equal(parsedCard.preprocessing.input_size.join("x"), "288x288"); // the default backbone's CV-chosen size
    const headManifest = await api(platform, "GET", `/v1/models/${job.model_id}/files/head.json`);
    assert.equal(headManifest.status, 200);
  });

  test("the edge endpoint answers the same class probabilities as the runner's evaluation path, within 1e-4", async () => {
    assert.ok(firstJob, "needs the first job");
    const modelId = firstJob.model_id;
    const [manifest, weights] = await Promise.all([
      fetch(`${platform.url}/v1/models/${modelId}/files/head.json`, { headers: { authorization: `Bearer ${platform.adminKey}` } }).then((r) => r.json()),
      fetch(`${platform.url}/v1/models/${modelId}/files/head.bin`, { headers: { authorization: `Bearer ${platform.adminKey}` } }).then((r) => r.arrayBuffer()),
    ]);
    const head = parseHead(manifest, weights);
    // The runner's path: Node decoders, shared preprocessing, the runner's default engine, the stored head.
    const bundle = await loadVendoredBundle(DEFAULT_BACKBONE);
    const engine = await createEngine(bundle, featureSpecOf(DEFAULT_BACKBONE.spec), { engine: "auto" });
    let informative = 0; // probabilities away from 0 and 1, where a mismatch would show
    try {
      for (const [index, image] of [makeColouredPng(40, 40, COLOURS.red!, 9001), makeColouredPng(57, 31, [120, 120, 60], 9002), makeColouredPng(64, 64, [40, 120, 130], 9003)].entries()) {
        const tensor = await imageToTensorInput(image, preprocessSpecOf(DEFAULT_BACKBONE.spec), await getNodeCodecs());
        const expected = applyHead(head, await engine.embed(tensor, 1), 1);
        const edge = await api(platform, "POST", `/v1/models/${modelId}/predict?top_k=3`, { body: image as Uint8Array<ArrayBuffer>, headers: { "content-type": "image/png" } });
        assert.equal(edge.status, 200, JSON.stringify(edge.body));
        const predicted: Array<{ label: string; probability: number }> = edge.body.predictions[0];
        assert.equal(predicted.length, 3);
        for (const { label, probability } of predicted) {
          const want = expected[head.labels.indexOf(label)]!;
          assert.ok(Math.abs(probability - want) <= 1e-4, `image ${index} ${label}: edge ${probability} vs runner ${want} (${engine.name})`);
          if (want > 0.01 && want < 0.99) informative++;
        }
      }
    } finally {
      await engine.close();
    }
    assert.ok(informative >= 2, `only ${informative} probabilities between 0.01 and 0.99: the comparison would not catch a mismatch`);
  });

  test("a second job on the same dataset computes no embedding and gives the same metrics for the same seed", async () => {
    assert.ok(firstJob, "needs the first job");
    const created = await api(platform, "POST", "/v1/jobs", { json: { dataset_id: datasetId, hyperparameters: { epochs: 30, seed: 7 } } });
    const job = await waitForJob(created.body.id, (j) => finished(j.status), "the retrain to finish");
    assert.equal(job.status, "succeeded", job.error);
    assert.equal(job.metrics.embeddings.computed, 0);
    assert.equal(job.metrics.embeddings.cached, 24);
    assert.deepEqual(job.metrics.epochs, firstJob.metrics.epochs);
  });

  test("augmentation: views of the training images and flip averaging are embedded once, a second job computes none, and the edge averages as the runner did", async () => {
    const request = { dataset_id: datasetId, hyperparameters: { epochs: 30, seed: 7 }, augmentation: { views: 2, tta: "flip" } };
    const first = await waitForJob((await api(platform, "POST", "/v1/jobs", { json: request })).body.id, (j) => finished(j.status), "the augmented job to finish");
    assert.equal(first.status, "succeeded", `${first.error}\n${runner.output().slice(-2000)}`);
    const model = (await api(platform, "GET", `/v1/models/${first.model_id}`)).body;
    const trainImages = 24 - model.metrics.per_class.reduce((n: number, row: any) => n + row.support, 0);
    // View 1 (the mirror) of all 24 images for flip averaging, view 2 of the training images only.
    assert.deepEqual(first.metrics.embeddings.views, { views: 2, tta: "flip", cached: 0, computed: 24 + trainImages });

    const again = await waitForJob((await api(platform, "POST", "/v1/jobs", { json: request })).body.id, (j) => finished(j.status), "the second augmented job to finish");
    assert.equal(again.status, "succeeded", again.error);
    assert.equal(again.metrics.embeddings.computed, 0);
    assert.deepEqual(again.metrics.embeddings.views, { views: 2, tta: "flip", cached: 24 + trainImages, computed: 0 });
    assert.deepEqual(again.metrics.epochs, first.metrics.epochs);

    const [manifest, weights] = await Promise.all([
      fetch(`${platform.url}/v1/models/${first.model_id}/files/head.json`, { headers: { authorization: `Bearer ${platform.adminKey}` } }).then((r) => r.json()),
      fetch(`${platform.url}/v1/models/${first.model_id}/files/head.bin`, { headers: { authorization: `Bearer ${platform.adminKey}` } }).then((r) => r.arrayBuffer()),
    ]);
    const head = parseHead(manifest, weights);
    assert.equal(head.tta, "flip");
    // The runner's path for a flip-averaged head: view 0 and view 1 embedded separately, then averaged.
    const engine = await createEngine(await loadVendoredBundle(DEFAULT_BACKBONE), featureSpecOf(DEFAULT_BACKBONE.spec), { engine: "auto" });
    try {
      for (const [index, image] of [makeColouredPng(57, 31, [120, 120, 60], 9102), makeColouredPng(64, 64, [40, 120, 130], 9103)].entries()) {
        const codecs = await getNodeCodecs();
        const [plain, mirror] = await Promise.all([0, 1].map(async (view) => engine.embed(await imageToTensorInput(image, { ...preprocessSpecOf(DEFAULT_BACKBONE.spec), view }, codecs), 1)));
        const expected = applyHead(head, averageEmbeddings(plain!, mirror!), 1);
        const edge = await api(platform, "POST", `/v1/models/${first.model_id}/predict?top_k=3`, { body: image as Uint8Array<ArrayBuffer>, headers: { "content-type": "image/png" } });
        assert.equal(edge.status, 200, JSON.stringify(edge.body));
        for (const { label, probability } of edge.body.predictions[0] as Array<{ label: string; probability: number }>) {
          assert.ok(Math.abs(probability - expected[head.labels.indexOf(label)]!) <= 1e-4, `image ${index} ${label}: edge ${probability} vs runner ${expected[head.labels.indexOf(label)]}`);
        }
      }
    } finally {
      await engine.close();
    }
  });

  test("fine_tune 1 block: trains conv_dw_13/conv_pw_13 on cached cut activations, predicts at the edge as the runner computes, and a retrain computes no activation", async () => {
    const config = { dataset_id: datasetId, head: { type: "linear" }, fine_tune: { blocks: 1 }, hyperparameters: { epochs: 30, seed: 7 } };
    const created = await api(platform, "POST", "/v1/jobs", { json: config });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const job = await waitForJob(created.body.id, (j) => finished(j.status), "the fine-tune job to finish", 600_000);
    assert.equal(job.status, "succeeded", `${job.error}\n${runner.output().slice(-2000)}`);
    const model = (await api(platform, "GET", `/v1/models/${job.model_id}`)).body;
    const report = model.metrics.fine_tune;
    assert.equal(report.blocks, 1);
    assert.equal(report.cut_layer, "conv_pw_12_relu");
    assert.equal(report.kept, true);
    assert.equal(report.cut_activations.computed, 24);
    assert.equal(report.cut_activations.bytes_per_image, 9 * 9 * 768 * 4); // conv_pw_12 at 288x288 (stride 32)
    assert.ok(report.fit_count > 0 && report.holdout_count > 0 && report.epochs.length >= 1);

    const auth = { authorization: `Bearer ${platform.adminKey}` };
    const [manifest, headBin, blocksBin] = await Promise.all([
      fetch(`${platform.url}/v1/models/${job.model_id}/files/head.json`, { headers: auth }).then((r) => r.json()),
      fetch(`${platform.url}/v1/models/${job.model_id}/files/head.bin`, { headers: auth }).then((r) => r.arrayBuffer()),
      fetch(`${platform.url}/v1/models/${job.model_id}/files/blocks.bin`, { headers: auth }).then((r) => r.arrayBuffer()),
    ]);
    assert.equal(manifest.format, "edgetune-head/2");
    assert.equal(blocksBin.byteLength, 598_272 * 4);
    const head = parseHead(manifest, headBin);
    const stack = parseBlocks(head.blocks!, blocksBin);
    // The runner's path: Node decoders, the trunk to the cut on the runner's default engine, the stored blocks on tfjs-wasm, the head.
    await tfjs.setBackend("wasm");
    const bundle = await loadVendoredBundle(DEFAULT_BACKBONE);
    const engine = await createEngine(bundle, { feature_layers: [stack.cutLayer], pooling: "none", input_size: DEFAULT_BACKBONE.spec.input_size }, { engine: "auto" });
    // The model's self-contained bundle (format /3, with its blocks), downloaded file by file as `edgetune export` does.
    const bundleManifest = (await api(platform, "GET", `/v1/models/${job.model_id}/bundle/manifest`)).body;
    assert.equal(bundleManifest.format, "edgetune-bundle/3", JSON.stringify(bundleManifest));
    const bundleDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-fine-tuned-bundle-"));
    for (const file of bundleManifest.files as Array<{ path: string; url: string }>) {
      const res = await fetch(`${platform.url}${file.url}`, { headers: file.url.startsWith("/v1/") ? auth : {} });
      assert.equal(res.status, 200, file.path);
      fs.mkdirSync(path.dirname(path.join(bundleDir, file.path)), { recursive: true });
      fs.writeFileSync(path.join(bundleDir, file.path), new Uint8Array(await res.arrayBuffer()));
    }
    let exported: { predict(image: Uint8Array, options: { topK: number }): Promise<{ predictions: unknown[] }>; dispose(): void } | undefined;
    try {
      exported = await (await import(pathToFileURL(path.join(bundleDir, "edgetune.mjs")).href)).loadBundle(tfjs, (file: string) => fs.promises.readFile(path.join(bundleDir, file)));
      for (const [index, image] of [makeColouredPng(40, 40, COLOURS.red!, 9101), makeColouredPng(57, 31, [120, 120, 60], 9102), makeColouredPng(64, 64, [40, 120, 130], 9103)].entries()) {
        const tensor = await imageToTensorInput(image, preprocessSpecOf(singleSizeSpec(DEFAULT_BACKBONE.spec)), await getNodeCodecs());
        const expected = applyHead(head, embedWithBlocks(tfjs, stack, await engine.embed(tensor, 1), [0]), 1);
        const edge = await api(platform, "POST", `/v1/models/${job.model_id}/predict?top_k=3`, { body: image as Uint8Array<ArrayBuffer>, headers: { "content-type": "image/png" } });
        assert.equal(edge.status, 200, JSON.stringify(edge.body));
        for (const { label, probability } of edge.body.predictions[0] as Array<{ label: string; probability: number }>) {
          const want = expected[head.labels.indexOf(label)]!;
          assert.ok(Math.abs(probability - want) <= 1e-4, `image ${index} ${label}: edge ${probability} vs runner ${want} (${engine.name})`);
        }
        for (const { label, probability } of (await exported!.predict(image, { topK: 3 })).predictions[0] as Array<{ label: string; probability: number }>) {
          const want = expected[head.labels.indexOf(label)]!;
          assert.ok(Math.abs(probability - want) <= 1e-4, `image ${index} ${label}: bundle ${probability} vs runner ${want}`);
        }
      }
    } finally {
      await engine.close();
      exported?.dispose();
      fs.rmSync(bundleDir, { recursive: true, force: true });
    }

    const again = await api(platform, "POST", "/v1/jobs", { json: config });
    const retrain = await waitForJob(again.body.id, (j) => finished(j.status), "the fine-tune retrain to finish", 600_000);
    assert.equal(retrain.status, "succeeded", retrain.error);
    const retrained = (await api(platform, "GET", `/v1/models/${retrain.model_id}`)).body;
    assert.equal(retrained.metrics.fine_tune.cut_activations.computed, 0);
    assert.equal(retrained.metrics.fine_tune.cut_activations.cached, 24);
    assert.deepEqual(retrained.metrics.fine_tune.epochs, report.epochs);
  });
});

describe("user backbones", () => {
  for (const format of ["layers", "graph"] as const) {
    test(`a job on an imported ${format} model trains through the runner and its model predicts at the edge`, async () => {
      const runner = startRunner();
      try {
        const tiny = format === "layers" ? buildTinyModel() : buildTinyGraphModel();
        const form = new FormData();
        form.set("spec", JSON.stringify(tinySpec({ name: `tiny-${format}`, ...(format === "graph" ? { feature_layer: "conv/Conv2D" } : {}) })));
        form.set("model", new Blob([zipSync(tiny.files) as Uint8Array<ArrayBuffer>], { type: "application/zip" }), "tiny.zip");
        const imported = await api(platform, "POST", "/v1/backbones", { body: form });
        assert.equal(imported.status, 201, JSON.stringify(imported.body));
        const dataset = await createDataset(`user-${format}`, 6, 32);
        const created = await api(platform, "POST", "/v1/jobs", { json: { dataset_id: dataset.id, backbone: imported.body.id, hyperparameters: { epochs: 40 } } });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const job = await waitForJob(created.body.id, (j) => finished(j.status), `the ${format} job to finish`);
        assert.equal(job.status, "succeeded", `${job.error}\n${runner.output().slice(-1500)}`);
        assert.equal(job.metrics.embeddings.computed, 18);
        const model = (await api(platform, "GET", `/v1/models/${job.model_id}`)).body;
        assert.equal(model.backbone, imported.body.id);
        const predicted = await api(platform, "POST", `/v1/models/${job.model_id}/predict?top_k=3`, { body: makeColouredPng(32, 32, COLOURS.green!, 777) as Uint8Array<ArrayBuffer>, headers: { "content-type": "image/png" } });
        assert.equal(predicted.status, 200, JSON.stringify(predicted.body));
        assert.deepEqual(predicted.body.predictions[0].map((p: any) => p.label).sort(), ["blue", "green", "red"]);
      } finally {
        await stopRunner(runner);
      }
    });
  }
});

describe("runner faults", () => {
  test("SIGTERM gives a running job back at once; SIGKILL mid-embedding loses the lease; another runner finishes with the cached embeddings", async () => {
    const dataset = await createDataset("faults", 40, 64);
    const created = await api(platform, "POST", "/v1/jobs", { json: { dataset_id: dataset.id, hyperparameters: { epochs: 10 } } });
    const jobId = created.body.id;

    // 1. SIGTERM while embedding: back to the queue at once, attempt not counted, the runner exits within seconds.
    const polite = startRunner(["--engine", "tfjs-wasm", "--threads", "1"]);
    await waitForJob(jobId, (j) => j.status === "running" && j.progress.phase === "embedding", "embedding to start", 60_000);
    const termAt = Date.now();
    polite.child.kill("SIGTERM");
    assert.equal(await polite.exited, 0, polite.output().slice(-1500));
    assert.ok(Date.now() - termAt < 10_000, `the runner took ${Date.now() - termAt} ms to stop`);
    const released = (await api(platform, "GET", `/v1/jobs/${jobId}`)).body;
    assert.equal(released.status, "queued");
    assert.equal(released.attempt, 0, polite.output().slice(-3000));

    // 2. SIGKILL once some embeddings are stored: nothing is reported; the lease runs out.
    const doomed = startRunner(["--engine", "tfjs-wasm", "--threads", "1"]);
    await waitForJob(jobId, (j) => j.status === "running" && j.progress.phase === "embedding" && j.progress.done >= 32, "a first batch of embeddings", 90_000);
    doomed.child.kill("SIGKILL");
    await doomed.exited;

    // 3. Another runner takes it over after the lease expires and reuses what the killed one stored.
    const survivor = startRunner();
    const job = await waitForJob(jobId, (j) => finished(j.status), "the job to finish on the second runner", 120_000);
    assert.equal(job.status, "succeeded", job.error);
    assert.equal(job.attempt, 2);
    assert.ok(job.metrics.embeddings.cached >= 32, JSON.stringify(job.metrics.embeddings));
    assert.equal(job.metrics.embeddings.cached + job.metrics.embeddings.computed, 120);
    const models = (await api(platform, "GET", "/v1/models")).body.models.filter((m: any) => m.job_id === jobId);
    assert.equal(models.length, 1);
    await stopRunner(survivor);
  });

  test("a cancel reaches a running job at its next heartbeat and the runner stops it within seconds", async () => {
    const dataset = await createDataset("cancel", 40, 64);
    const runner = startRunner(["--engine", "tfjs-wasm", "--threads", "1"]);
    const created = await api(platform, "POST", "/v1/jobs", { json: { dataset_id: dataset.id } });
    await waitForJob(created.body.id, (j) => j.status === "running" && j.progress.phase === "embedding", "embedding to start", 60_000);
    const canceledAt = Date.now();
    assert.equal((await api(platform, "POST", `/v1/jobs/${created.body.id}/cancel`)).status, 202);
    const job = await waitForJob(created.body.id, (j) => finished(j.status), "the cancel to land", 30_000);
    assert.equal(job.status, "canceled");
    assert.ok(Date.now() - canceledAt < 10_000, `cancel took ${Date.now() - canceledAt} ms`);
    assert.equal(job.model_id, null);
    await stopRunner(runner);
  });
});
