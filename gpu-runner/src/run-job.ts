/**
 * One leased job, start to finish, as named steps: `keepLease` (heartbeats), load the frozen backbone,
 * `embedDataset` (cache first), `buildTrainingSet` (labels, split), then for a training job `selectStep` (only for
 * `head: {"type": "auto"}`: cross-validation in worker threads), `trainStep` (in a worker thread), `evaluateStep`,
 * `uploadArtifactsStep` and complete; for a diagnostics job `diagnosticsStep` and its report.
 *
 * While it runs, a heartbeat renews the lease every `heartbeat_ms` and reports progress. The job stops early, and
 * reports accordingly, when:
 * - the heartbeat says a cancel was requested → `fail(canceled)` (the API marks it canceled);
 * - the API says the lease is gone (expired, taken by another runner) → nothing more is reported: that runner owns it;
 * - the runner shuts down (SIGTERM) → `fail(release)`: the job goes straight back to the queue.
 */
import { DEFAULT_MAX_PIXELS } from "../../shared/image/decode";
import type { ImageCodecs } from "../../shared/image/codecs";
import { PREPROCESS_VERSION } from "../../shared/image/preprocess";
import { applyHead, headToTfjsModel, serializeHead } from "../../shared/head";
import { sha256Hex } from "../../shared/ids";
import { evaluate, listMisclassified } from "../../shared/metrics";
import { cutActivationCacheKey, embeddingCacheKey, featureLayers, featureSpecOf, findBuiltinBackbone, preprocessSpecOf, singleSizeSpec, viewEmbeddingCacheKey } from "../../shared/catalog";
import { MIRROR_VIEW } from "../../shared/image/augment";
import { augmentTrainingSet } from "./augment-set";
import { expandHead, featureSubsets, selectColumns, subsetWidth, type FeatureSubset } from "./train/feature-subset";
import { extractBlocks, stackOutputDim, UnknownBlocksError, type BlockStack } from "../../shared/backbone/separable-blocks";
import { serializeBlocks } from "../../shared/head";
import { fineTuneOffThread } from "./train/fine-tune-thread";
import { resolveSplit, type SplitTag } from "../../shared/split";
import { LeaseLostError, type LeasedJob, type Progress, type Rejection, type RunnerClient } from "./api-client";
import { loadJobBackbone } from "./backbones/job-backbone";
import { embedDataset, type EmbedDatasetResult } from "./embed-dataset";
import type { DecodePool } from "./decode/decode-pool";
import type { EmbeddingEngine } from "./engine/types";
import { SandboxCrashError, SandboxTimeoutError } from "./engine/sandbox";
import type { BackboneBundle, FeatureSpec } from "../../shared/backbone/types";
import { trainHeadOffThread, type TrainingThread } from "./train/off-thread";
import type { EpochMetrics, TrainHeadResult } from "./train/train-head";
import { workerFoldRunner } from "./train/cv-pool";
import { selectHead, type Selection } from "./train/select-head";
import { computeDiagnostics } from "./diagnostics";
import type { HeadSpec, Hyperparameters } from "../../shared/schemas";

/** Builds (or reuses) the embedding engine for a backbone; owned by the runner, which keeps one per backbone. */
export type EngineProvider = (bundle: BackboneBundle, feature: FeatureSpec, trust: "builtin" | "user") => Promise<EmbeddingEngine>;

export interface RunJobContext {
  client: RunnerClient;
  leased: LeasedJob;
  engineFor: EngineProvider;
  codecs: ImageCodecs;
  /** Aborted when the runner is shutting down: the job is given back. */
  shutdown: AbortSignal;
  log(msg: string): void;
  maxPixels?: number;
  /** Threads the head solver may use (onnxruntime intra-op threads); default 1. */
  threads?: number;
  /** The runner's long-lived training thread; absent: a thread is started for this job. */
  trainingThread?: TrainingThread;
  /** Decodes and preprocesses images off this thread; absent: decoding runs here (tests, tiny jobs). */
  decodePool?: DecodePool;
}

export type JobOutcome = "succeeded" | "failed" | "requeued" | "canceled" | "released" | "lease_lost";

/** Raised for failures that another attempt cannot fix (bad data, bad config): the job fails at once. */
export class PermanentJobError extends Error {
  override name = "PermanentJobError";
}

/**
 * Misclassified validation images kept in the model's D1 row (most confident first): 1,000 entries are about
 * 150 KB of JSON, well inside D1's 2 MB row limit with the rest of the metrics; the full list is in the model's
 * `evaluation.json` artifact (GET /v1/models/:id/files/evaluation.json).
 */
const MAX_MISCLASSIFIED_IN_METRICS = 1000;

/** Send at most this many epochs per report, and at least every this many ms, so 1,000 fast epochs cost few calls. */
const EPOCH_REPORT_MS = 1000;

/** Heartbeat state shared by the steps: what the API said, and the progress the next beat reports. */
interface LeaseKeeper {
  /** Aborted on cancel, lost lease or shutdown: every step checks it. */
  signal: AbortSignal;
  readonly cancelRequested: boolean;
  readonly leaseLost: boolean;
  setProgress(phase: string, done: number, total: number): void;
  /** Stops the timer and waits for a beat in flight. */
  stop(): Promise<void>;
}

/**
 * Renews the lease every `heartbeat_ms`, reports progress and learns of a cancel. Failures other than a lost lease
 * are retried at the next beat: the lease (`lease_ms`) outlasts several missed beats. Heavy work never runs on this
 * thread's event loop (training is in a worker thread, the engines run natively or in worker threads), so the timer
 * fires on time.
 */
function keepLease(ctx: RunJobContext): LeaseKeeper {
  const { client, leased, log } = ctx;
  const { job, lease } = leased;
  const stop = new AbortController();
  let cancelRequested = false;
  let leaseLost = false;
  let progress: Progress = { phase: "starting", done: 0, total: 0 };
  const onShutdown = () => stop.abort(new Error("runner shutting down"));
  ctx.shutdown.addEventListener("abort", onShutdown);
  if (ctx.shutdown.aborted) onShutdown();
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
  };
  const timer = setInterval(beat, lease.heartbeat_ms);
  return {
    signal: stop.signal,
    get cancelRequested() {
      return cancelRequested;
    },
    get leaseLost() {
      return leaseLost;
    },
    setProgress: (phase, done, total) => (progress = { phase, done, total }),
    async stop() {
      clearInterval(timer);
      ctx.shutdown.removeEventListener("abort", onShutdown);
      await beating;
    },
  };
}

/** The items that have an embedding, their labels, the split and the embeddings as one [items, dim] matrix. */
interface TrainingSet {
  items: LeasedJob["images"];
  labelNames: string[];
  labels: Int32Array;
  split: { train: number[]; val: number[] };
  hasOwnSplit: boolean;
  /** On a SharedArrayBuffer, so the training thread reads it without a copy. */
  embeddings: Float32Array;
  dim: number;
  /**
   * With augmentation (augmentStep): the training images' rows (split.train also lists their view rows, which come
   * after the images' rows) and each image's view rows. Without: split.train and an empty map.
   */
  imageTrain: number[];
  viewRows: ReadonlyMap<number, readonly number[]>;
}

function buildTrainingSet(leased: LeasedJob, embedded: EmbedDatasetResult): TrainingSet {
  const items = leased.images.filter((image) => embedded.bySha.has(image.sha256));
  const labelNames = [...new Set(items.map((item) => item.label))].sort();
  if (labelNames.length < 2) throw new PermanentJobError(`only ${labelNames.length} label(s) have images that decode; at least 2 are needed`);
  const labelIndex = new Map(labelNames.map((name, index) => [name, index]));
  const labels = Int32Array.from(items, (item) => labelIndex.get(item.label)!);
  const { hyperparameters } = leased.job.config;
  const hasOwnSplit = hyperparameters.use_dataset_split && items.some((item) => item.split === "val") && items.some((item) => item.split !== "val");
  const split = resolveSplit(labels, hasOwnSplit
    ? { kind: "explicit", tags: items.map((item): SplitTag => (item.split === "val" ? "val" : "train")) }
    : { kind: "stratified", val_fraction: hyperparameters.validation_fraction, seed: hyperparameters.seed });
  if (split.train.length === 0 || split.val.length === 0) throw new PermanentJobError(`the split left ${split.train.length} training and ${split.val.length} validation images; add images`);
  const dim = embedded.dim;
  const embeddings = new Float32Array(new SharedArrayBuffer(items.length * dim * 4));
  items.forEach((item, row) => embeddings.set(embedded.bySha.get(item.sha256)!, row * dim));
  return { items, labelNames, labels, split, hasOwnSplit, embeddings, dim, imageTrain: split.train, viewRows: new Map() };
}

/** Embedding counts of the augmentation views (all views together). */
interface ViewEmbeddings {
  views: number;
  tta: "none" | "flip";
  cached: number;
  computed: number;
}

/**
 * `augmentation`: embeds views 1..K of the training images (and view 1, the mirror, of every image for flip
 * averaging), each view cached under its own key like any embedding, then builds the augmented matrix
 * (augment-set.ts). Validation images get no training views.
 */
async function augmentStep(ctx: RunJobContext, keeper: LeaseKeeper, engine: EmbeddingEngine, set: TrainingSet): Promise<{ set: TrainingSet; views: ViewEmbeddings | null }> {
  const { leased } = ctx;
  const { job, lease, backbone } = leased;
  const { augmentation } = job.config;
  if (augmentation.views === 0 && augmentation.tta === "none") return { set, views: null };
  const wanted = Math.max(augmentation.views, augmentation.tta === "flip" ? MIRROR_VIEW : 0);
  const trainImages = set.imageTrain.map((row) => set.items[row]!);
  const byView = new Map<number, Map<string, Float32Array>>();
  const counts: ViewEmbeddings = { views: augmentation.views, tta: augmentation.tta, cached: 0, computed: 0 };
  for (let view = 1; view <= wanted; view++) {
    const images = view === MIRROR_VIEW && augmentation.tta === "flip" ? set.items : trainImages;
    const result = await embedDataset({
      client: ctx.client, jobId: job.id, leaseToken: lease.token,
      cacheKey: await sha256Hex(viewEmbeddingCacheKey(backbone.id, backbone.weights_version, backbone.spec, view)),
      images, usePack: false, engine, codecs: ctx.codecs, decodePool: ctx.decodePool,
      preprocess: { ...preprocessSpecOf(backbone.spec), view }, maxPixels: ctx.maxPixels ?? DEFAULT_MAX_PIXELS, signal: keeper.signal,
      onProgress: (done, total) => keeper.setProgress(`embedding view ${view}/${wanted}`, done, total), log: ctx.log,
    });
    byView.set(view, result.bySha);
    counts.cached += result.cached;
    counts.computed += result.computed;
    keeper.signal.throwIfAborted();
  }
  const augmented = augmentTrainingSet({ shas: set.items.map((item) => item.sha256), labels: set.labels, split: set.split, embeddings: set.embeddings, dim: set.dim }, augmentation, byView);
  ctx.log(`job ${job.id}: augmentation: ${augmented.viewRowCount} view rows for ${set.imageTrain.length} training images${augmentation.tta === "flip" ? ", flip-averaged embeddings" : ""} (${counts.cached} view embeddings cached, ${counts.computed} computed)`);
  return {
    set: { ...set, labels: augmented.labels, split: augmented.split, embeddings: augmented.embeddings, imageTrain: set.imageTrain, viewRows: augmented.viewRows },
    views: counts,
  };
}

/** What fine-tuning did (the model's `metrics.fine_tune`), and the blocks when the model keeps them. */
interface FineTuneOutcome {
  stack: BlockStack | null;
  report: { blocks: number; cut_layer: string; kept: boolean; holdout_accuracy_head_only: number; holdout_accuracy_fine_tuned: number; [more: string]: unknown };
}

/**
 * `fine_tune: {"blocks": N}`: activations at the cut (the input of the last N blocks), cache first, like embeddings,
 * so a retrain runs no backbone pass below the cut; then the blocks are trained with a linear head in a worker thread
 * (train/fine-tune.ts: early stopping on held-out TRAINING images; the validation split is never touched there).
 * The returned set holds the fine-tuned blocks' pooled output as embeddings, for the head steps that follow.
 *
 * With `head: auto` the fine-tuned blocks are kept only when they beat the pretrained blocks with a head alone on
 * those held-out training images; otherwise the model is head-only (the spec's embeddings). Fine-tuning is not one of
 * `auto`'s default candidates: on the 2-core dev box (load 6 to 8) training one block over flowers5's 240 fit images
 * took 132 s (4 epochs, early-stopped), two blocks 289 s (`npx tsx bench/train/fine-tune.ts --blocks both`), against
 * seconds for the whole head search; and it did not beat head-only there (85% and 83% held-out, 86% head-only).
 */
async function fineTuneStep(ctx: RunJobContext, keeper: LeaseKeeper, set: TrainingSet, bundle: BackboneBundle): Promise<{ set: TrainingSet; outcome: FineTuneOutcome }> {
  const { leased, client, log } = ctx;
  const { job, lease, backbone } = leased;
  const blocks = job.config.fine_tune!.blocks;
  // The API refuses the combination (jobs.ts checkFineTunable): the blocks train on the original images' cut activations only.
  if (job.config.augmentation.views > 0 || job.config.augmentation.tta !== "none") throw new PermanentJobError("fine_tune does not combine with augmentation (views or tta)");
  let stack: BlockStack;
  try {
    stack = extractBlocks(bundle.modelJson, bundle.weightData, blocks, backbone.spec.input_size);
  } catch (error) {
    if (error instanceof UnknownBlocksError) throw new PermanentJobError(`fine_tune: backbone ${backbone.name}: ${error.message}`);
    throw error;
  }
  keeper.setProgress("cut_activations", 0, set.items.length);
  const engine = await ctx.engineFor(bundle, { feature_layers: [stack.cutLayer], pooling: "none", input_size: backbone.spec.input_size }, backbone.builtin ? "builtin" : "user");
  const cut = await embedDataset({
    client, jobId: job.id, leaseToken: lease.token,
    cacheKey: await sha256Hex(cutActivationCacheKey(backbone.id, backbone.weights_version, backbone.spec, stack.cutLayer)),
    // All of the job's images, as for embeddings: the pack id is the hash of exactly those (the API checks it).
    images: leased.images, engine, codecs: ctx.codecs, decodePool: ctx.decodePool,
    // One input size: the blocks train on, and the edge serves a fine-tuned model from, the activations at input_size.
    preprocess: preprocessSpecOf(singleSizeSpec(backbone.spec)), maxPixels: ctx.maxPixels ?? DEFAULT_MAX_PIXELS, signal: keeper.signal,
    onProgress: (done, total) => keeper.setProgress("cut_activations", done, total), log,
  });
  keeper.signal.throwIfAborted();
  const per = cut.dim;
  const activations = new Float32Array(new SharedArrayBuffer(set.items.length * per * 4));
  set.items.forEach((item, row) => {
    const values = cut.bySha.get(item.sha256);
    if (!values) throw new Error(`fine_tune: no cut activation for ${item.path}`);
    activations.set(values, row * per);
  });
  cut.bySha.clear();
  keeper.setProgress("fine_tuning", 0, 1);
  const trained = await fineTuneOffThread(
    { stack, activations, labels: set.labels, classCount: set.labelNames.length, trainIndex: set.imageTrain, seed: job.config.hyperparameters.seed, labelSmoothing: job.config.hyperparameters.label_smoothing, itemCount: set.items.length },
    { signal: keeper.signal, log },
  );
  const better = trained.holdoutAccuracyFineTuned > trained.holdoutAccuracyHeadOnly;
  const kept = job.config.head.type !== "auto" || better;
  const report = {
    blocks, cut_layer: stack.cutLayer, kept,
    holdout_accuracy_head_only: trained.holdoutAccuracyHeadOnly, holdout_accuracy_fine_tuned: trained.holdoutAccuracyFineTuned,
    best_epoch: trained.bestEpoch, epochs: trained.epochs, fit_count: trained.fitCount, holdout_count: trained.holdoutCount,
    train_ms: trained.trainMs, cut_activations: { cached: cut.cached, computed: cut.computed, bytes_per_image: per * 4 },
  };
  log(`job ${job.id}: fine-tuned ${blocks} block(s) from ${stack.cutLayer}: holdout accuracy ${(trained.holdoutAccuracyHeadOnly * 100).toFixed(1)}% head-only → ${(trained.holdoutAccuracyFineTuned * 100).toFixed(1)}% (best epoch ${trained.bestEpoch}, ${trained.trainMs} ms); ${kept ? "kept" : "not kept (auto: no better than head-only)"}`);
  if (!kept) return { set, outcome: { stack: null, report } };
  const dim = stackOutputDim(trained.stack);
  const embeddings = new Float32Array(new SharedArrayBuffer(trained.embeddings.byteLength));
  embeddings.set(trained.embeddings);
  return { set: { ...set, embeddings, dim }, outcome: { stack: trained.stack, report } };
}

/** What to train: the job's head, or the one `auto` chose (with its settings and the search's record). */
interface HeadChoice {
  head: HeadSpec;
  hyperparameters: Hyperparameters;
  selection: Selection | null;
  /** `auto` chose a head on some of the feature layers: trained on their columns, stored on the whole embedding. */
  features?: FeatureSubset;
}

/**
 * `auto`: the head chosen by stratified k-fold cross-validation on the training rows only, in worker threads
 * (select-head.ts); any other head as the job gives it.
 */
async function selectStep(ctx: RunJobContext, keeper: LeaseKeeper, set: TrainingSet): Promise<HeadChoice> {
  const { hyperparameters, head } = ctx.leased.job.config;
  if (head.type !== "auto") return { head, hyperparameters, selection: null };
  keeper.setProgress("selecting", 0, 1);
  const runFolds = workerFoldRunner({ embeddings: set.embeddings, dim: set.dim, labels: set.labels, classCount: set.labelNames.length, hyperparameters }, { signal: keeper.signal });
  const { backbone } = ctx.leased;
  const subsets = featureSubsets(featureLayers(backbone.spec), findBuiltinBackbone(backbone.id)?.featureChannels, set.dim);
  const { selection, chosen } = await selectHead(
    { labels: set.labels, trainIndex: set.imageTrain, viewRows: set.viewRows },
    { folds: head.folds, seed: hyperparameters.seed, jobEpochs: hyperparameters.epochs, featureSubsets: subsets, runFolds, onProgress: (done, total) => keeper.setProgress("selecting", done, total) },
  );
  const best = selection.chosen;
  ctx.log(`job ${ctx.leased.job.id}: auto chose ${chosen.head.type} ${JSON.stringify(chosen.hyperparameters)}${chosen.features ? ` on ${chosen.features.layers.join(" + ")}` : ""} (CV ${(best.cv_accuracy_mean * 100).toFixed(1)}% ± ${(best.cv_accuracy_std * 100).toFixed(1)}, ${selection.folds} folds, ${selection.candidates.length} candidates, ${selection.search_ms} ms)`);
  return { head: chosen.head, hyperparameters: { ...hyperparameters, ...chosen.hyperparameters }, selection, features: chosen.features };
}

/** Trains the head in a worker thread, streaming epochs to the API in batches (at most one report per second). */
async function trainStep(ctx: RunJobContext, keeper: LeaseKeeper, set: TrainingSet, choice: HeadChoice): Promise<TrainHeadResult> {
  const { client, leased } = ctx;
  const { job, lease } = leased;
  const { hyperparameters, head } = choice;
  let pending: EpochMetrics[] = [];
  let lastReport = performance.now();
  const flushEpochs = async () => {
    const batch = pending;
    pending = [];
    lastReport = performance.now();
    await client.recordEpochs(job.id, lease.token, batch);
  };
  const train = ctx.trainingThread ? ctx.trainingThread.train.bind(ctx.trainingThread) : trainHeadOffThread;
  const features = choice.features;
  const trained = await train(
    { embeddings: features ? selectColumns(set.embeddings, set.dim, features) : set.embeddings, dim: features ? subsetWidth(features) : set.dim, labels: set.labels, classCount: set.labelNames.length, trainIndex: set.split.train, valIndex: set.split.val, labelNames: set.labelNames },
    // `auto`'s refit keeps its final weights, as in the search: the validation rows only measure it.
    { head, hyperparameters, threads: ctx.threads, keep: choice.selection ? "last" : "best_val" },
    {
      onEpoch: async (epoch) => {
        pending.push(epoch);
        keeper.setProgress("training", epoch.epoch, hyperparameters.epochs);
        if (performance.now() - lastReport >= EPOCH_REPORT_MS) await flushEpochs();
      },
    },
    { signal: keeper.signal },
  );
  await flushEpochs();
  return features ? { ...trained, head: expandHead(trained.head, features, set.dim) } : trained;
}

/**
 * Metrics on the validation rows, with the head exactly as it will be served (`applyHead`, as at the edge), the
 * misclassified images, and every validation image's prediction (what GET /v1/models/compare pairs two models on).
 */
function evaluateStep(trained: TrainHeadResult, set: TrainingSet) {
  const { split, dim, embeddings, labels, labelNames, items } = set;
  const valEmbeddings = new Float32Array(split.val.length * dim);
  split.val.forEach((row, i) => valEmbeddings.set(embeddings.subarray(row * dim, (row + 1) * dim), i * dim));
  const probabilities = applyHead(trained.head, valEmbeddings, split.val.length);
  const valLabels = Int32Array.from(split.val, (row) => labels[row]!);
  const metrics = evaluate(probabilities, split.val.length, labelNames.length, valLabels, labelNames);
  const valItems = split.val.map((row) => ({ sha256: items[row]!.sha256, path: items[row]!.path, label: labels[row]! }));
  const misclassified = listMisclassified(probabilities, valItems, labelNames);
  const evaluation = {
    format: "edgetune-evaluation/1",
    labels: labelNames,
    images: valItems.map((item, i) => {
      const row = probabilities.subarray(i * labelNames.length, (i + 1) * labelNames.length);
      let predicted = 0;
      for (let c = 1; c < row.length; c++) if (row[c]! > row[predicted]!) predicted = c;
      return { sha256: item.sha256, path: item.path, label: labelNames[item.label]!, predicted: labelNames[predicted]!, probability: row[predicted]! };
    }),
  };
  return { metrics, misclassified, evaluation };
}

type Evaluation = ReturnType<typeof evaluateStep>;

/** Uploads head, tfjs export and model card together; head.json goes last, alone: its presence means the head is complete. */
async function uploadArtifactsStep(ctx: RunJobContext, trained: TrainHeadResult, set: TrainingSet, choice: HeadChoice, evaluated: Evaluation, skipped: Rejection[], engineName: string, fineTuned: FineTuneOutcome | null): Promise<{ headBytes: number }> {
  const { client, leased } = ctx;
  const { job, lease, backbone } = leased;
  const { hyperparameters, head: headSpec, selection } = choice;
  const blocks = fineTuned?.stack ? serializeBlocks(fineTuned.stack) : null;
  const { manifest, weights } = serializeHead(blocks ? { ...trained.head, blocks: blocks.manifest } : trained.head);
  const tfjsHead = headToTfjsModel(trained.head);
  const contentHashes = set.items.map((item) => item.sha256);
  const card = {
    format: "edgetune-model-card/1",
    model_id: job.model_id,
    job_id: job.id,
    dataset_id: job.dataset_id,
    dataset_version: job.dataset_version,
    backbone: { id: backbone.id, name: backbone.name, weights_version: backbone.weights_version, spec: backbone.spec },
    preprocessing: { version: PREPROCESS_VERSION, ...preprocessSpecOf(blocks ? singleSizeSpec(backbone.spec) : backbone.spec) },
    labels: set.labelNames,
    metrics: { ...evaluated.metrics, misclassified: evaluated.misclassified, selection, ...(fineTuned ? { fine_tune: fineTuned.report } : {}) },
    training: { requested_head: job.config.head, head: headSpec, hyperparameters, ...(choice.features ? { feature_layers: choice.features.layers } : {}), solver: "lbfgs", best_epoch: trained.bestEpoch, stop_reason: trained.stopReason, epochs_run: trained.epochs.length, split: set.hasOwnSplit ? "dataset" : "stratified", train_count: set.imageTrain.length, view_rows: set.split.train.length - set.imageTrain.length, val_count: set.split.val.length, augmentation: job.config.augmentation },
    content_hashes_sha256: await sha256Hex(contentHashes.join("\n")),
    images: contentHashes.length,
    skipped,
    engine: engineName,
  };
  const encoder = new TextEncoder();
  const artifacts: Array<[string, Uint8Array]> = [
    ...(blocks ? [["blocks.bin", blocks.weights] as [string, Uint8Array]] : []),
    ["head.bin", weights],
    ["weights.bin", new Uint8Array(tfjsHead.weightData)],
    ["model.json", encoder.encode(JSON.stringify(tfjsHead.modelJson))],
    ["card.json", encoder.encode(JSON.stringify(card))],
    ["evaluation.json", encoder.encode(JSON.stringify(evaluated.evaluation))],
    ["head.json", encoder.encode(JSON.stringify(manifest))],
  ];
  // All but head.json at once (six sequential PUTs were ~0.6 of a 1.4 s flowers5 retrain), then head.json alone.
  const last = artifacts.pop()!;
  await Promise.all(artifacts.map(([name, bytes]) => client.uploadArtifact(job.id, lease.token, name, bytes)));
  await client.uploadArtifact(job.id, lease.token, last[0], last[1]);
  return { headBytes: weights.length };
}

/** A diagnostics job: near duplicates, suspected mislabels, outliers from the embeddings (diagnostics.ts). */
async function diagnosticsStep(ctx: RunJobContext, keeper: LeaseKeeper, set: TrainingSet) {
  const { hyperparameters } = ctx.leased.job.config;
  const valRows = new Set(set.split.val);
  return computeDiagnostics(
    { embeddings: set.embeddings, dim: set.dim, images: set.items.map((item, row) => ({ sha256: item.sha256, path: item.path, label: item.label, split: valRows.has(row) ? "val" : "train" })) },
    {
      seed: hyperparameters.seed,
      runFolds: workerFoldRunner({ embeddings: set.embeddings, dim: set.dim, labels: set.labels, classCount: set.labelNames.length, hyperparameters }, { signal: keeper.signal }),
      onProgress: (phase, done, total) => keeper.setProgress(phase, done, total),
    },
  );
}

export async function runJob(ctx: RunJobContext): Promise<JobOutcome> {
  const { client, leased, log } = ctx;
  const { job, lease } = leased;
  const started = performance.now();
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, step: () => T | Promise<T>): Promise<T> => {
    const t = performance.now();
    const value = await step();
    timings[name] = Math.round(performance.now() - t);
    return value;
  };
  const keeper = keepLease(ctx);
  let skipped: Rejection[] = [];
  try {
    // 1. Backbone and engine.
    keeper.setProgress("loading_backbone", 0, 1);
    const bundle = await timed("backbone_ms", () => loadJobBackbone(client, leased.backbone, log, { jobId: job.id, leaseToken: lease.token }));
    const engine = await ctx.engineFor(bundle, featureSpecOf(leased.backbone.spec), leased.backbone.builtin ? "builtin" : "user");
    keeper.signal.throwIfAborted();

    // 2. Embeddings, cache first.
    const embedded = await timed("embedding_ms", async () => embedDataset({
      client, jobId: job.id, leaseToken: lease.token,
      cacheKey: await sha256Hex(embeddingCacheKey(leased.backbone.id, leased.backbone.weights_version, leased.backbone.spec)),
      images: leased.images, engine, codecs: ctx.codecs, decodePool: ctx.decodePool,
      preprocess: preprocessSpecOf(leased.backbone.spec), maxPixels: ctx.maxPixels ?? DEFAULT_MAX_PIXELS, signal: keeper.signal,
      onProgress: (done, total) => keeper.setProgress("embedding", done, total), log,
    }));
    skipped = embedded.skipped;
    for (const item of skipped) log(`job ${job.id}: skipped ${item.path}: ${item.code}`);
    keeper.signal.throwIfAborted();

    // 3. Items, labels, split.
    let set = buildTrainingSet(leased, embedded);

    // A diagnostics job stops here: its report needs only the embeddings, the labels and the split.
    if (job.config.kind === "diagnostics") {
      const findings = await timed("diagnostics_ms", () => diagnosticsStep(ctx, keeper, set));
      keeper.signal.throwIfAborted();
      timings.total_ms = Math.round(performance.now() - started);
      await keeper.stop();
      await client.completeDiagnostics(job.id, {
        lease_token: lease.token,
        report: { ...findings, images: set.items.length, skipped },
        extra: { timings_ms: timings, embeddings: { cached: embedded.cached, computed: embedded.computed, engine: engine.name } },
      });
      log(`job ${job.id}: diagnostics → ${findings.near_duplicate_count} near-duplicate pairs, ${findings.suspected_mislabels.length} suspected mislabels, ${findings.outliers.length} outliers (${timings.total_ms} ms)`);
      return "succeeded";
    }

    // 3b. Augmentation views of the training images, flip averaging (cache first, like the plain embeddings).
    const augmented = await timed("augmentation_ms", () => augmentStep(ctx, keeper, engine, set));
    set = augmented.set;
    keeper.signal.throwIfAborted();

    // 3b. `fine_tune`: the last blocks trained on cached cut activations; the head then learns on their output.
    let fineTuned: FineTuneOutcome | null = null;
    if (job.config.fine_tune) {
      const tuned = await timed("fine_tune_ms", () => fineTuneStep(ctx, keeper, set, bundle));
      set = tuned.set;
      fineTuned = tuned.outcome;
      keeper.signal.throwIfAborted();
    }

    // 4. The head (on embeddings: the backbone, or all of it below the fine-tuned blocks, stays frozen), chosen by CV first for `auto`; 5. evaluation.
    const choice = await timed("selection_ms", () => selectStep(ctx, keeper, set));
    keeper.signal.throwIfAborted();
    const trained = await timed("training_ms", () => trainStep(ctx, keeper, set, choice));
    keeper.signal.throwIfAborted();
    // Its inputs were flip-averaged: whoever serves it must average the same way (the edge reads this).
    if (job.config.augmentation.tta === "flip") trained.head.tta = "flip";
    keeper.setProgress("evaluating", 0, set.split.val.length);
    const evaluated = await timed("evaluation_ms", () => evaluateStep(trained, set));
    const metrics = evaluated.metrics;

    // 6. Artifacts, then completion (idempotent under the lease: a lost lease refuses it and changes nothing).
    keeper.setProgress("uploading", 0, 6);
    const { headBytes } = await timed("upload_ms", () => uploadArtifactsStep(ctx, trained, set, choice, evaluated, skipped, engine.name, fineTuned));
    timings.total_ms = Math.round(performance.now() - started);
    await keeper.stop();
    const modelId = await client.complete(job.id, {
      lease_token: lease.token,
      labels: set.labelNames,
      metrics: {
        ...metrics,
        misclassified: evaluated.misclassified.slice(0, MAX_MISCLASSIFIED_IN_METRICS),
        misclassified_count: evaluated.misclassified.length,
        ...(choice.selection ? { selection: choice.selection } : {}),
        ...(fineTuned ? { fine_tune: fineTuned.report } : {}),
        head: choice.head,
        best_epoch: trained.bestEpoch,
        stop_reason: trained.stopReason,
      },
      epochs: trained.epochs,
      skipped,
      head_bytes: headBytes,
      extra: { timings_ms: timings, embeddings: { cached: embedded.cached, computed: embedded.computed, from_pack: embedded.fromPack, engine: engine.name, breakdown_ms: embedded.breakdownMs, ...(augmented.views ? { views: augmented.views } : {}) } },
    });
    log(`job ${job.id}: succeeded → ${modelId} (val accuracy ${(metrics.accuracy * 100).toFixed(1)}%, ${timings.total_ms} ms; embeddings ${embedded.cached} cached / ${embedded.computed} computed)`);
    return "succeeded";
  } catch (error) {
    await keeper.stop();
    return await reportFailure(ctx, error, { leaseLost: keeper.leaseLost || error instanceof LeaseLostError, cancelRequested: keeper.cancelRequested, shuttingDown: ctx.shutdown.aborted, skipped });
  } finally {
    await keeper.stop();
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
    // A user model stopped by its sandbox would be stopped again on the same images: no retry.
    const permanent = error instanceof PermanentJobError || error instanceof SandboxTimeoutError || error instanceof SandboxCrashError;
    const status = await client.fail(job.id, { lease_token: lease.token, error: message || "unknown error", retryable: !permanent, skipped: state.skipped });
    return status === "queued" ? "requeued" : "failed";
  } catch (reportError) {
    if (reportError instanceof LeaseLostError) return "lease_lost";
    log(`job ${job.id}: could not report the failure (${(reportError as Error).message}); the lease will expire`);
    return "failed";
  }
}
