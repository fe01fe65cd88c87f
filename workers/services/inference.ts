/**
 * Prediction at the edge: many models, one backbone.
 *
 * Every model of a project shares its backbone (the frozen feature extractor) and differs only in its head (a few
 * dense layers, tens of KB). So an isolate keeps, at module level:
 *   - one embedder per backbone (key: backbone id + weights version), built on first use from the backbone's files in
 *     R2 and shared by every model trained on it; at most `BACKBONE_CACHE_MAX_ENTRIES` of them;
 *   - heads in an LRU bounded by count and bytes, fetched from R2 on first use.
 * Both caches coalesce concurrent misses into one load and forget failed loads. Nothing loads at global scope (the
 * isolate must start within 1 s): the first prediction pays for tfjs init, the backbone and the head.
 *
 * Memory budget of a 128 MB isolate (measured, see bench/predict/README.md): the fused MobileNetV2 at batch 1 grows
 * tfjs' WASM memory to about 19 MiB (2.4 MB of it weights), the JS heap (tfjs' code included) is about 18 MiB, the
 * decoders' WASM memories a few MiB; heads get 32 MiB by default, which holds 1,000 linear heads over the builtin
 * 576-d embedding with up to 10 classes (17 to 28 KB each, standardisation included).
 * Images run through the backbone one at a time (the WASM heap grows to the largest batch it ever ran and never
 * shrinks), and each is resized in integers before it becomes floats (shared/image/preprocess.ts).
 */
import { and, eq } from "drizzle-orm";
import { getWeightSpecs } from "../../shared/backbone/model-json";
import { findBuiltinBackbone, preprocessSpecOf, singleSizeSpec } from "../../shared/catalog";
import { ApiError, notFound, withContext } from "../../shared/errors";
import { applyHead, headBytes, parseHead, topK, type Head, type LabelProbability } from "../../shared/head";
import { decodeImage } from "../../shared/image/decode";
import { inputSizes, preprocessImage, type PreprocessSpec } from "../../shared/image/preprocess";
import { averageEmbeddings, mirrorInputSizes } from "../../shared/image/augment";
import { inspectImage } from "../../shared/image/sniff";
import type { BackboneSpec } from "../../shared/schemas";
import { jobs } from "../db/schema";
import { getConfig } from "../config";
import type { Env } from "../env";
import { BoundedCache, HeldCache, type BoundedCacheStats } from "../inference/bounded-cache";
import { getWorkerCodecs } from "../inference/codecs";
import { createEmbedder, type Embedder } from "../inference/embedder";
import { embedCutMap, loadBlocks, withBlocks } from "../inference/fine-tuned-blocks";
import { ensureTfjsWasm, InferenceUnavailableError } from "../inference/tfjs-wasm";
import { loadBackboneFiles, resolveBackbone, type ResolvedBackbone } from "./backbones";
import { edgeRefusal } from "./edge-budget";
import type { Db } from "./db";
import { getModel, readModelArtifact, type ModelRow } from "./models";

/** Optional variables that tune serving (wrangler.toml [vars] or secrets); defaults below. */

/** Images per request: each costs one backbone run (tens of ms), and the whole request is held in memory. */
export const MAX_IMAGES_PER_REQUEST = 16;
/** Embeddings per request: applying a head costs microseconds; the JSON body is the bound. */
export const MAX_EMBEDDINGS_PER_REQUEST = 256;
export const DEFAULT_HEAD_CACHE_MAX_ENTRIES = 2_000;
export const DEFAULT_HEAD_CACHE_MAX_BYTES = 32 * 1024 * 1024;
/** Two backbones resident at most: a builtin MobileNetV2 holds about 9 MB of float32 weights (+ XNNPACK's packed copy). */
export const BACKBONE_CACHE_MAX_ENTRIES = 2;
export const BACKBONE_CACHE_MAX_BYTES = 64 * 1024 * 1024;
/** A backbone whose float32 weights exceed this cannot run in a 128 MB isolate: serve it from embeddings instead. */
export const MAX_EDGE_BACKBONE_FLOAT_BYTES = 48 * 1024 * 1024;
export const DEFAULT_TOP_K = 5;
/**
 * Image predictions running at once in one isolate. Backbone runs take one thread and go one image at a time anyway;
 * every prediction waiting meanwhile holds its request body (up to 32 MB) and its preprocessed pixels, so beyond two
 * (one embedding while the other decodes) more requests only add memory: they get 503 `edge_busy` and come back.
 */
export const MAX_CONCURRENT_IMAGE_PREDICTIONS = 2;
/** Seconds a caller is told to wait after `edge_busy` (a backbone load takes 0.4 to 0.6 s, a prediction ~0.1 s). */
const EDGE_BUSY_RETRY_AFTER_S = 1;

// ---------------------------------------------------------------- models

/**
 * The project's model, ready to predict. A model id whose job has not succeeded (yet) answers 409 with the job's
 * status; another project's or an unknown id answers 404.
 */
export async function getServableModel(db: Db, projectId: string, modelId: string): Promise<ModelRow> {
  const row = await getModel(db, projectId, modelId);
  if (row) return row;
  if (modelId.startsWith("mdl_")) {
    // Model ids are fixed per job (services/jobs.ts modelIdForJob): mdl_X belongs to job_X.
    const jobId = `job_${modelId.slice("mdl_".length)}`;
    const job = await db.select({ id: jobs.id, status: jobs.status }).from(jobs).where(and(eq(jobs.id, jobId), eq(jobs.projectId, projectId))).get();
    if (job) {
      const pending = job.status === "queued" || job.status === "running";
      throw new ApiError(
        "model_not_ready",
        pending
          ? `Model '${modelId}' is not ready: its job '${job.id}' is ${job.status}. Wait until the job has succeeded (GET /v1/jobs/${job.id}), then predict.`
          : `Model '${modelId}' will not become ready: its job '${job.id}' is ${job.status}. Start a new job (POST /v1/jobs).`,
        { model_id: modelId, job_id: job.id, job_status: job.status },
      );
    }
  }
  throw notFound("model", modelId);
}

// ---------------------------------------------------------------- heads

interface ResidentHead {
  head: Head;
  bytes: number;
}

/** The isolate's heads, least recently used first out. */
export const headCache = new BoundedCache<ResidentHead>({ maxEntries: DEFAULT_HEAD_CACHE_MAX_ENTRIES, maxBytes: DEFAULT_HEAD_CACHE_MAX_BYTES, sizeOf: (resident) => resident.bytes });


/** Applies HEAD_CACHE_MAX_ENTRIES / HEAD_CACHE_MAX_BYTES when they are set; otherwise the bounds stay as they are. */
function configureHeadCache(env: Env): void {
  const wanted = getConfig(env).headCache;
  if (wanted.maxEntries === undefined && wanted.maxBytes === undefined) return;
  const current = headCache.stats();
  const maxEntries = wanted.maxEntries ?? current.maxEntries;
  const maxBytes = wanted.maxBytes ?? current.maxBytes;
  if (current.maxEntries !== maxEntries || current.maxBytes !== maxBytes) headCache.resize({ maxEntries, maxBytes });
}

async function fetchHead(bucket: R2Bucket, model: ModelRow): Promise<ResidentHead> {
  const [manifestObject, weightsObject] = await Promise.all([readModelArtifact(bucket, model, "head.json"), readModelArtifact(bucket, model, "head.bin")]);
  if (!manifestObject || !weightsObject) {
    await Promise.all([manifestObject?.body.cancel(), weightsObject?.body.cancel()]);
    throw new ApiError("model_artifacts_missing", `Model '${model.id}' has no stored head (head.json and head.bin); its artifacts were removed. Train it again (POST /v1/jobs).`, { model_id: model.id });
  }
  const [manifest, weights] = await Promise.all([manifestObject.json(), weightsObject.arrayBuffer()]);
  try {
    const head = parseHead(manifest, weights);
    return { head, bytes: headBytes(head) };
  } catch (error) {
    throw withContext(error, `Model '${model.id}'`, { model_id: model.id });
  }
}

/** The model's parsed head, from the isolate's LRU or from R2 (one fetch however many requests ask at once). */
export function getHead(env: Env, model: ModelRow): Promise<Head> {
  configureHeadCache(env);
  return headCache.get(`${model.projectId}/${model.id}`, () => fetchHead(env.BUCKET, model)).then((resident) => resident.head);
}

// ---------------------------------------------------------------- backbones

/** An embedder and the spec its inputs are prepared with. Disposed once evicted and no request is using it. */
interface ResidentBackbone {
  id: string;
  spec: BackboneSpec;
  embedder: Embedder;
  users: number;
  evicted: boolean;
  disposed: boolean;
}

const heldBackbones = new HeldCache<ResidentBackbone>({
  maxEntries: BACKBONE_CACHE_MAX_ENTRIES,
  maxBytes: BACKBONE_CACHE_MAX_BYTES,
  sizeOf: (resident) => resident.embedder.weightBytes,
  dispose: (resident) => resident.embedder.dispose(),
});
export const backboneCache = heldBackbones.cache;

/**
 * The cache key of a model's backbone, known without a D1 query: a builtin backbone's weights version comes from the
 * catalog, a user backbone's is its id (as `resolveBackbone` says), and a backbone's spec never changes.
 */
function backboneKey(backbone: string): string {
  const builtin = findBuiltinBackbone(backbone);
  return builtin ? `${builtin.id}@${builtin.weightsVersion}` : `${backbone}@${backbone}`;
}

async function buildResidentBackbone(env: Env, db: Db, model: ModelRow, cutLayer?: string): Promise<ResidentBackbone> {
  let resolved: ResolvedBackbone;
  try {
    resolved = await resolveBackbone(db, model.projectId, model.backbone);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    throw new ApiError("backbone_deleted", `Model '${model.id}' was trained on backbone '${model.backbone}', which has been deleted. Send embeddings computed with that backbone ({"embeddings": [[...]]}), or train a new model.`, { model_id: model.id, backbone: model.backbone });
  }
  const files = await loadBackboneFiles(env.BUCKET, resolved);
  if (!files) {
    throw new ApiError(
      "backbone_unavailable",
      resolved.builtin
        ? `The builtin backbone '${resolved.name}' is not in storage yet: a runner publishes its files the first time it runs a job (npm run runner). Retry once a runner has started, or send precomputed embeddings.`
        : `The files of backbone '${resolved.id}' are missing from storage. Upload the backbone again (POST /v1/backbones), or send precomputed embeddings.`,
      { backbone: resolved.id },
    );
  }
  const refusal = edgeRefusal(resolved.spec, resolved.cost);
  if (refusal) {
    throw new ApiError("backbone_too_large", `Backbone '${resolved.id}' is not served from images at the edge: ${refusal.message}. Send embeddings computed on a runner instead ({"embeddings": [[...]]}).`, { backbone: resolved.id, reason: refusal.reason, limit: refusal.limit, estimate: refusal.estimate });
  }
  const floatBytes = getWeightSpecs(files.modelJson).reduce((sum, spec) => sum + spec.shape.reduce((a, b) => a * b, 1) * 4, 0);
  if (floatBytes > MAX_EDGE_BACKBONE_FLOAT_BYTES) {
    throw new ApiError("backbone_too_large", `Backbone '${resolved.id}' needs ${floatBytes} bytes of float32 weights; the edge serves backbones up to ${MAX_EDGE_BACKBONE_FLOAT_BYTES} bytes. Send precomputed embeddings instead.`, { backbone: resolved.id, limit_bytes: MAX_EDGE_BACKBONE_FLOAT_BYTES });
  }
  const tf = await ensureTfjsWasm({ timeoutMs: getConfig(env).tfjsInitTimeoutMs });
  const feature = cutLayer ? { feature_layers: [cutLayer], pooling: "none" as const, input_size: resolved.spec.input_size } : undefined;
  const embedder = await createEmbedder(tf, files, resolved.spec, { feature, log: (message) => console.warn(`backbone ${resolved.id}: ${message}`) });
  return { id: resolved.id, spec: resolved.spec, embedder, users: 0, evicted: false, disposed: false };
}

const edgeBusy = (reason: "backbone_load" | "predictions", message: string, limit: number) =>
  new ApiError("edge_busy", `${message} Retry in ${EDGE_BUSY_RETRY_AFTER_S} s.`, { reason, limit, retry_after_s: EDGE_BUSY_RETRY_AFTER_S });

/**
 * What this isolate is doing now, for the two gates (and for operators and tests to read):
 * - `loadingBackbone`: the backbone being loaded, if any. One load at a time: two user backbones building at once
 *   would each grow the WASM heap by up to EDGE_MAX_MEMORY_BYTES (services/edge-budget.ts), past what the isolate
 *   holds. Requests for the backbone already loading join that load (the cache coalesces them); another gets 503.
 * - `imagePredictions`: image predictions running (at most MAX_CONCURRENT_IMAGE_PREDICTIONS).
 */
export const edgeActivity: { loadingBackbone: string | null; imagePredictions: number } = { loadingBackbone: null, imagePredictions: 0 };

/** Loads the backbone under `key` unless another one is loading (503 edge_busy). */
async function loadBackboneAlone(env: Env, db: Db, model: ModelRow, key: string, cutLayer?: string): Promise<ResidentBackbone> {
  if (edgeActivity.loadingBackbone !== null) throw edgeBusy("backbone_load", `This isolate is loading another backbone; it loads one at a time.`, 1);
  edgeActivity.loadingBackbone = key;
  try {
    return await buildResidentBackbone(env, db, model, cutLayer);
  } finally {
    edgeActivity.loadingBackbone = null;
  }
}

/**
 * Runs `use` with the model's backbone, holding it so that an eviction meanwhile does not free it under us. With
 * `cutLayer` (a fine-tuned model), the trunk up to that layer, unpooled: one more entry of the backbone cache, shared
 * by every model fine-tuned from the same cut (MobileNet v1 0.75 to conv_pw_12: 7.6 MB of the 10.4 MB of weights).
 */
async function withBackbone<T>(env: Env, db: Db, model: ModelRow, use: (backbone: ResidentBackbone) => Promise<T>, cutLayer?: string): Promise<T> {
  const key = backboneKey(model.backbone) + (cutLayer ? `#cut:${cutLayer}` : "");
  return heldBackbones.use(key, () => loadBackboneAlone(env, db, model, key, cutLayer), use);
}

// ---------------------------------------------------------------- prediction

export interface ImageInput {
  bytes: Uint8Array;
  /** Position in the request, from 0. */
  index: number;
  /** The multipart file name, when there is one. */
  filename?: string;
}

export type PredictInput = { kind: "images"; images: ImageInput[] } | { kind: "embeddings"; embeddings: number[][] };

export interface PredictionResult {
  model_id: string;
  predictions: LabelProbability[][];
  /** Wall-clock milliseconds per phase. In production workerd only I/O advances the clock, so CPU-only phases read 0 there. */
  timings_ms: Record<string, number>;
}

/** Names the input an image error is about (index, file name); the error handler gives it its status. */
function aboutImage(error: unknown, image: ImageInput): unknown {
  const which = `Image ${image.index}${image.filename ? ` ('${image.filename}')` : ""}`;
  return withContext(error, which, { index: image.index, ...(image.filename ? { filename: image.filename } : {}) });
}

const elapsed = (since: number) => Math.round((performance.now() - since) * 100) / 100;

/**
 * Class probabilities of `model` for each input, the `k` most probable first.
 *
 * Images: every header is checked first (a bad last image fails before any backbone work), then one image at a time
 * is decoded (EXIF-upright), resized and normalised with shared/image (the runner's code) and embedded; then the head
 * runs on all embeddings at once (a head with `tta: "flip"` gets the mean of each image's and its mirror's embedding).
 * Embeddings: each must have the head's input length, and is given to the head as it is (flip-averaged already for
 * such a head).
 */
export async function predict(env: Env, db: Db, model: ModelRow, input: PredictInput, k: number): Promise<PredictionResult> {
  const started = performance.now();
  const timings: Record<string, number> = {};
  let phase = performance.now();
  const head = await getHead(env, model);
  timings.head_load = elapsed(phase);

  let embeddings: Float32Array;
  let count: number;
  if (input.kind === "embeddings") {
    count = input.embeddings.length;
    embeddings = new Float32Array(count * head.inputDim);
    input.embeddings.forEach((row, index) => {
      if (row.length !== head.inputDim) {
        throw new ApiError("embedding_dim_mismatch", `Embedding ${index} has ${row.length} values; model '${model.id}' expects ${head.inputDim} (its backbone's embedding length).`, { index, expected_dim: head.inputDim, dim: row.length });
      }
      embeddings.set(row, index * head.inputDim);
    });
  } else {
    if (edgeActivity.imagePredictions >= MAX_CONCURRENT_IMAGE_PREDICTIONS) {
      throw edgeBusy("predictions", `This isolate is already running ${edgeActivity.imagePredictions} image predictions, its limit.`, MAX_CONCURRENT_IMAGE_PREDICTIONS);
    }
    edgeActivity.imagePredictions++;
    try {
      ({ embeddings, count } = await embedImages(env, db, model, head, input.images, timings));
    } finally {
      edgeActivity.imagePredictions--;
    }
  }

  phase = performance.now();
  const probabilities = applyHead(head, embeddings, count);
  const classes = head.labels.length;
  const predictions = Array.from({ length: count }, (_, row) => topK(probabilities.subarray(row * classes, (row + 1) * classes), k, head.labels));
  timings.head = elapsed(phase);
  timings.total = elapsed(started);
  return { model_id: model.id, predictions, timings_ms: timings };
}

/** The images' embeddings through the model's backbone, one image at a time (headers all checked first). */
async function embedImages(env: Env, db: Db, model: ModelRow, head: Head, images: ImageInput[], timings: Record<string, number>): Promise<{ embeddings: Float32Array; count: number }> {
  const count = images.length;
  const maxPixels = getConfig(env).predictMaxPixels;
  for (const image of images) {
    try {
      inspectImage(image.bytes, { maxPixels });
    } catch (error) {
      throw aboutImage(error, image);
    }
  }
  const phase = performance.now();
  const embeddings = await withBackbone(env, db, model, async (backbone) => {
    timings.backbone_load = elapsed(phase);
    const { embedder } = backbone;
    if (head.blocks) {
      // A fine-tuned model: the shared trunk to the cut, then this model's blocks (fine-tuned-blocks.ts), then the head.
      const tf = await ensureTfjsWasm({ timeoutMs: getConfig(env).tfjsInitTimeoutMs });
      const load = () => loadBlocks(tf, head, model.id, async () => (await readModelArtifact(env.BUCKET, model, "blocks.bin"))?.arrayBuffer() ?? null);
      return withBlocks(`${model.projectId}/${model.id}`, load, (tensors) => embedEach(env, backbone, preprocessSpecOf(singleSizeSpec(backbone.spec)), images, head.inputDim, timings, async (pixels) => embedCutMap(tf, tensors, await embedder.embed(pixels))));
    }
    if (embedder.dim !== head.inputDim) {
      console.error(`model ${model.id}: head expects ${head.inputDim} features, backbone ${backbone.id} gives ${embedder.dim}`);
      throw new ApiError("model_backbone_mismatch", `Model '${model.id}' expects ${head.inputDim}-value embeddings but its backbone '${backbone.id}' produces ${embedder.dim}. Train the model again.`, { model_id: model.id });
    }
    // A head trained with flip averaging sees the mean of the image's and its mirror's embedding, as on the runner.
    const preprocess = preprocessSpecOf(backbone.spec);
    const sizes = inputSizes(preprocess);
    return embedEach(env, backbone, preprocess, images, embedder.dim, timings, async (pixels) => {
      const embedding = await embedder.embed(pixels);
      return head.tta === "flip" ? averageEmbeddings(embedding, await embedder.embed(mirrorInputSizes(pixels, sizes))) : embedding;
    });
  }, head.blocks?.cut_layer);
  return { embeddings, count };
}

/**
 * Each image decoded (EXIF-upright), resized and normalised with shared/image (the runner's code), then `embed`ded,
 * one at a time: `[images.length, dim]` embeddings in request order.
 */
async function embedEach(env: Env, backbone: ResidentBackbone, preprocess: PreprocessSpec, images: ImageInput[], dim: number, timings: Record<string, number>, embed: (pixels: Float32Array) => Promise<Float32Array>): Promise<Float32Array> {
  const maxPixels = getConfig(env).predictMaxPixels;
  const codecs = await getWorkerCodecs().catch((error: unknown) => {
    throw new InferenceUnavailableError("the image decoders failed to initialise", { cause: error });
  });
  const out = new Float32Array(images.length * dim);
  timings.decode = timings.preprocess = timings.embed = 0;
  for (const image of images) {
    let at = performance.now();
    let decoded;
    try {
      decoded = await decodeImage(image.bytes, codecs, { maxPixels });
    } catch (error) {
      throw aboutImage(error, image);
    }
    timings.decode += elapsed(at);
    at = performance.now();
    const pixels = preprocessImage(decoded, preprocess);
    decoded = undefined; // the RGBA buffer can go before the backbone runs
    timings.preprocess += elapsed(at);
    at = performance.now();
    out.set(await embed(pixels), image.index * dim);
    timings.embed += elapsed(at);
  }
  return out;
}

// ---------------------------------------------------------------- operators

export interface InferenceStats {
  heads: BoundedCacheStats;
  backbones: BoundedCacheStats & { resident: { key: string; engine: string; dim: number; weight_bytes: number; users: number }[] };
  /** tfjs' own accounting and the WASM backend's heap (which only grows), when tfjs was initialised. */
  tfjs: { tensors: number; tensor_bytes: number; wasm_heap_bytes: number | null } | null;
}

/** What this isolate holds for serving (for operators and the memory bench). */
export async function inferenceStats(): Promise<InferenceStats> {
  const resident = backboneCache.keys().map((key) => {
    const backbone = backboneCache.peek(key)!;
    return { key, engine: backbone.embedder.engine, dim: backbone.embedder.dim, weight_bytes: backbone.embedder.weightBytes, users: backbone.users };
  });
  let tfjs: InferenceStats["tfjs"] = null;
  if (resident.length > 0) {
    const tf = await ensureTfjsWasm();
    const memory = tf.memory();
    const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.buffer.byteLength ?? null;
    tfjs = { tensors: memory.numTensors, tensor_bytes: memory.numBytes, wasm_heap_bytes: heap };
  }
  return { heads: headCache.stats(), backbones: { ...backboneCache.stats(), resident }, tfjs };
}
