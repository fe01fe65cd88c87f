/**
 * One leased job, start to finish: load the frozen backbone, embed the snapshot (cache first), split, train the
 * head on the embeddings, evaluate it on the validation set, upload the model's artifacts and complete.
 *
 * While it runs, a heartbeat renews the lease every `heartbeat_ms` and reports progress. The job stops early, and
 * reports accordingly, when:
 * - the heartbeat says a cancel was requested → `fail(canceled)` (the API marks it canceled);
 * - the API says the lease is gone (expired, taken by another runner) → nothing more is reported: that runner owns it;
 * - the runner shuts down (SIGTERM) → `fail(release)`: the job goes straight back to the queue.
 */
import * as tf from "@tensorflow/tfjs";
// PROD: no "install tfjs-node" banner from the cpu backend, and no debug-mode checks on the head's small tensors.
tf.env().set("PROD", true);
import { DEFAULT_MAX_PIXELS } from "../../shared/image/decode";
import type { ImageCodecs } from "../../shared/image/codecs";
import { PREPROCESS_VERSION } from "../../shared/image/preprocess";
import { applyHead, headToTfjsModel, serializeHead } from "../../shared/head";
import { sha256Hex } from "../../shared/ids";
import { evaluate } from "../../shared/metrics";
import { embeddingCacheKey, featureSpecOf, preprocessSpecOf } from "../../shared/catalog";
import { resolveSplit, type SplitTag } from "../../shared/split";
import { LeaseLostError, type LeasedJob, type Progress, type Rejection, type RunnerClient } from "./api-client";
import { loadJobBackbone } from "./backbone-source";
import { embedDataset } from "./embed-dataset";
import type { EmbeddingEngine } from "./engine/types";
import type { BackboneBundle, FeatureSpec } from "../../shared/backbone/types";
import { trainHead, type EpochMetrics } from "./train/train-head";

/** Builds (or reuses) the embedding engine for a backbone; owned by the runner, which keeps one per backbone. */
export type EngineProvider = (bundle: BackboneBundle, feature: FeatureSpec) => Promise<EmbeddingEngine>;

export interface RunJobContext {
  client: RunnerClient;
  leased: LeasedJob;
  engineFor: EngineProvider;
  codecs: ImageCodecs;
  /** Aborted when the runner is shutting down: the job is given back. */
  shutdown: AbortSignal;
  log(msg: string): void;
  maxPixels?: number;
}

export type JobOutcome = "succeeded" | "failed" | "requeued" | "canceled" | "released" | "lease_lost";

/** Raised for failures that another attempt cannot fix (bad data, bad config): the job fails at once. */
export class PermanentJobError extends Error {
  override name = "PermanentJobError";
}

/**
 * The tfjs backend the head trains on. Native (tfjs-node) or GPU backends that an in-process engine already chose
 * are kept; otherwise the WASM backend replaces the pure-JS cpu one: measured on a 400 x 1024 synthetic set, 40
 * epochs, linear head 3.9 s on cpu vs 0.87 s on wasm; MLP(256) 97 s vs 10 s (bench/train/head-speed.ts).
 * The tfjs-cpu engine (forced with --engine tfjs-cpu) holds its weights on the cpu backend, so it keeps it.
 */
async function prepareTrainingBackend(engine: EmbeddingEngine, log: (msg: string) => void): Promise<void> {
  await tf.ready();
  const current = tf.getBackend();
  if (current !== "cpu" || engine.name.startsWith("tfjs-cpu")) return;
  try {
    await import("@tensorflow/tfjs-backend-wasm");
    if (await tf.setBackend("wasm")) log("head training on the tfjs wasm backend");
  } catch (error) {
    log(`head training stays on the cpu backend: wasm failed (${(error as Error).message})`);
    await tf.setBackend("cpu");
  }
}

/** Send at most this many epochs per report, and at least every this many ms, so 1,000 fast epochs cost few calls. */
const EPOCH_REPORT_MS = 1000;

export async function runJob(ctx: RunJobContext): Promise<JobOutcome> {
  const { client, leased, log } = ctx;
  const { job, lease } = leased;
  const started = performance.now();
  const timings: Record<string, number> = {};
  const mark = (name: string, since: number) => (timings[name] = Math.round(performance.now() - since));
  const stop = new AbortController();
  let cancelRequested = false;
  let leaseLost = false;
  let progress: Progress = { phase: "starting", done: 0, total: 0 };
  const onShutdown = () => stop.abort(new Error("runner shutting down"));
  ctx.shutdown.addEventListener("abort", onShutdown);
  if (ctx.shutdown.aborted) onShutdown();

  // Heartbeats: renew the lease, report progress, learn of a cancel. Failures other than a lost lease are retried
  // at the next beat: the lease (LEASE_MS) outlasts several missed beats.
  let beating: Promise<void> = Promise.resolve();
  const beat = () => {
    beating = beating.then(async () => {
      try {
        const answer = await client.heartbeat(job.id, lease.token, progress);
        if (answer.cancel_requested && !cancelRequested) {
          cancelRequested = true;
          log(`job ${job.id}: cancel requested`);
          stop.abort(new Error("canceled"));
        }
      } catch (error) {
        if (error instanceof LeaseLostError) {
          leaseLost = true;
          stop.abort(error);
        } else log(`job ${job.id}: heartbeat failed (${(error as Error).message}); retrying`);
      }
    });
    return beating;
  };
  const timer = setInterval(beat, lease.heartbeat_ms);
  const setProgress = (phase: string, done: number, total: number) => (progress = { phase, done, total });

  let skipped: Rejection[] = [];
  try {
    // 1. Backbone and engine.
    let t = performance.now();
    setProgress("loading_backbone", 0, 1);
    const bundle = await loadJobBackbone(client, leased.backbone, log);
    const feature = featureSpecOf(leased.backbone.spec);
    const engine = await ctx.engineFor(bundle, feature);
    mark("backbone_ms", t);
    stop.signal.throwIfAborted();

    // 2. Embeddings, cache first.
    t = performance.now();
    const cacheKey = await sha256Hex(embeddingCacheKey(leased.backbone.id, leased.backbone.weights_version, leased.backbone.spec));
    const embedded = await embedDataset({
      client, jobId: job.id, leaseToken: lease.token, cacheKey, images: leased.images, engine, codecs: ctx.codecs,
      preprocess: preprocessSpecOf(leased.backbone.spec), maxPixels: ctx.maxPixels ?? DEFAULT_MAX_PIXELS, signal: stop.signal,
      onProgress: (done, total) => setProgress("embedding", done, total), log,
    });
    skipped = embedded.skipped;
    mark("embedding_ms", t);
    for (const item of skipped) log(`job ${job.id}: skipped ${item.path}: ${item.code}`);
    stop.signal.throwIfAborted();

    // 3. Items, labels and the split.
    const items = leased.images.filter((image) => embedded.bySha.has(image.sha256));
    const labelNames = [...new Set(items.map((item) => item.label))].sort();
    if (labelNames.length < 2) throw new PermanentJobError(`only ${labelNames.length} label(s) have images that decode; at least 2 are needed`);
    const labelIndex = new Map(labelNames.map((name, index) => [name, index]));
    const labels = Int32Array.from(items, (item) => labelIndex.get(item.label)!);
    const { hyperparameters, head: headSpec } = job.config;
    const hasOwnSplit = hyperparameters.use_dataset_split && items.some((item) => item.split === "val") && items.some((item) => item.split !== "val");
    const split = resolveSplit(labels, hasOwnSplit
      ? { kind: "explicit", tags: items.map((item): SplitTag => (item.split === "val" ? "val" : "train")) }
      : { kind: "stratified", val_fraction: hyperparameters.validation_fraction, seed: hyperparameters.seed });
    if (split.train.length === 0 || split.val.length === 0) throw new PermanentJobError(`the split left ${split.train.length} training and ${split.val.length} validation images; add images`);
    const dim = embedded.dim;
    const embeddings = new Float32Array(items.length * dim);
    items.forEach((item, row) => embeddings.set(embedded.bySha.get(item.sha256)!, row * dim));

    // 4. The head, on embeddings only (the backbone stays frozen and is not involved).
    t = performance.now();
    await prepareTrainingBackend(engine, log);
    let pending: EpochMetrics[] = [];
    let lastReport = performance.now();
    const flushEpochs = async () => {
      const batch = pending;
      pending = [];
      lastReport = performance.now();
      await client.recordEpochs(job.id, lease.token, batch);
    };
    const trained = await trainHead(
      { embeddings, dim, labels, classCount: labelNames.length, trainIndex: split.train, valIndex: split.val, labelNames },
      { head: headSpec, hyperparameters },
      {
        onEpoch: async (epoch) => {
          pending.push(epoch);
          setProgress("training", epoch.epoch, hyperparameters.epochs);
          if (performance.now() - lastReport >= EPOCH_REPORT_MS) await flushEpochs();
        },
        shouldStop: () => stop.signal.aborted,
      },
      tf,
    );
    await flushEpochs();
    stop.signal.throwIfAborted();
    mark("training_ms", t);

    // 5. Evaluation on the validation set, with the head exactly as it will be served.
    t = performance.now();
    setProgress("evaluating", 0, split.val.length);
    const valEmbeddings = new Float32Array(split.val.length * dim);
    split.val.forEach((row, i) => valEmbeddings.set(embeddings.subarray(row * dim, (row + 1) * dim), i * dim));
    const probabilities = applyHead(trained.head, valEmbeddings, split.val.length);
    const valLabels = Int32Array.from(split.val, (row) => labels[row]!);
    const metrics = evaluate(probabilities, split.val.length, labelNames.length, valLabels, labelNames);
    mark("evaluation_ms", t);

    // 6. Artifacts, then completion (idempotent under the lease: a lost lease refuses it and changes nothing).
    t = performance.now();
    setProgress("uploading", 0, 5);
    const { manifest, weights } = serializeHead(trained.head);
    const tfjsHead = headToTfjsModel(trained.head);
    const contentHashes = items.map((item) => item.sha256);
    const card = {
      format: "edgetune-model-card/1",
      model_id: job.model_id,
      job_id: job.id,
      dataset_id: job.dataset_id,
      dataset_version: job.dataset_version,
      backbone: { id: leased.backbone.id, name: leased.backbone.name, weights_version: leased.backbone.weights_version, spec: leased.backbone.spec },
      preprocessing: { version: PREPROCESS_VERSION, ...preprocessSpecOf(leased.backbone.spec) },
      labels: labelNames,
      metrics,
      training: { head: headSpec, hyperparameters, best_epoch: trained.bestEpoch, stop_reason: trained.stopReason, epochs_run: trained.epochs.length, split: hasOwnSplit ? "dataset" : "stratified", train_count: split.train.length, val_count: split.val.length },
      content_hashes_sha256: await sha256Hex(contentHashes.join("\n")),
      images: contentHashes.length,
      skipped,
      engine: engine.name,
    };
    const encoder = new TextEncoder();
    const artifacts: Array<[string, Uint8Array]> = [
      ["head.bin", weights],
      ["weights.bin", new Uint8Array(tfjsHead.weightData)],
      ["model.json", encoder.encode(JSON.stringify(tfjsHead.modelJson))],
      ["card.json", encoder.encode(JSON.stringify(card))],
      ["head.json", encoder.encode(JSON.stringify(manifest))], // last: its presence means the head is complete
    ];
    for (const [name, bytes] of artifacts) await client.uploadArtifact(job.id, lease.token, name, bytes);
    mark("upload_ms", t);
    timings.total_ms = Math.round(performance.now() - started);
    clearInterval(timer);
    await beating;
    const modelId = await client.complete(job.id, {
      lease_token: lease.token,
      labels: labelNames,
      metrics: { ...metrics, best_epoch: trained.bestEpoch, stop_reason: trained.stopReason },
      epochs: trained.epochs,
      skipped,
      head_bytes: weights.length,
      extra: { timings_ms: timings, embeddings: { cached: embedded.cached, computed: embedded.computed, from_pack: embedded.fromPack, engine: engine.name, breakdown_ms: embedded.breakdownMs } },
    });
    log(`job ${job.id}: succeeded → ${modelId} (val accuracy ${(metrics.accuracy * 100).toFixed(1)}%, ${timings.total_ms} ms; embeddings ${embedded.cached} cached / ${embedded.computed} computed)`);
    return "succeeded";
  } catch (error) {
    clearInterval(timer);
    await beating;
    return await reportFailure(ctx, error, { leaseLost: leaseLost || error instanceof LeaseLostError, cancelRequested, shuttingDown: ctx.shutdown.aborted, skipped });
  } finally {
    clearInterval(timer);
    ctx.shutdown.removeEventListener("abort", onShutdown);
  }
}

async function reportFailure(ctx: RunJobContext, error: unknown, state: { leaseLost: boolean; cancelRequested: boolean; shuttingDown: boolean; skipped: Rejection[] }): Promise<JobOutcome> {
  const { client, leased, log } = ctx;
  const { job, lease } = leased;
  if (state.leaseLost) {
    log(`job ${job.id}: lease lost; another runner owns it now, stopping without reporting`);
    return "lease_lost";
  }
  const message = error instanceof Error ? error.message : String(error);
  try {
    if (state.cancelRequested) {
      await client.fail(job.id, { lease_token: lease.token, error: "canceled", canceled: true });
      log(`job ${job.id}: canceled`);
      return "canceled";
    }
    if (state.shuttingDown) {
      await client.fail(job.id, { lease_token: lease.token, error: "the runner shut down", release: true });
      log(`job ${job.id}: given back to the queue (shutdown)`);
      return "released";
    }
    log(`job ${job.id}: failed: ${error instanceof Error ? error.stack ?? message : message}`);
    const status = await client.fail(job.id, { lease_token: lease.token, error: message || "unknown error", retryable: !(error instanceof PermanentJobError), skipped: state.skipped });
    return status === "queued" ? "requeued" : "failed";
  } catch (reportError) {
    if (reportError instanceof LeaseLostError) return "lease_lost";
    log(`job ${job.id}: could not report the failure (${(reportError as Error).message}); the lease will expire`);
    return "failed";
  }
}
