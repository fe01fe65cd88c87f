/**
 * Embeddings of a job's images, each computed at most once ever: looked up in the R2 cache first (the job's pack,
 * then per image), the rest fetched, decoded and preprocessed with shared/ (the code the Worker uses at inference),
 * run through the frozen backbone and stored back batch by batch, so a runner killed halfway loses at most one batch.
 *
 * A pipeline of three stages, each bounded, so the backbone never waits on the others while they can keep up:
 * - downloads: one request per batch of 32 (the batch image route), `DOWNLOAD_AHEAD` (or one per decode thread, if
 *   more) batches ahead of decoding;
 * - decoding: on the decode pool's threads (one per core), `DECODE_AHEAD` batches ahead of the backbone, so the
 *   pool always has a queue while the backbone runs (with one batch ahead it idled at every batch boundary);
 * - the backbone, one batch at a time (onnxruntime and the WASM pool run off the main thread too).
 * Memory stays bounded: at most (1 + DECODE_AHEAD) batches of pixels (32 × 224 × 224 × 3 floats = 19 MB each; 80 MB
 * at 288 + 352), reused from batch to batch, and that many batches of bytes. Results are placed in batch order,
 * whichever thread finishes first.
 *
 * CPU per image on onnxruntime here (bench/embed/pipeline.ts): the default MobileNet v1 0.75 at 288 + 352, 34 ms for
 * the engine alone and 37 ms for the whole pipeline; the builtin MobileNetV2 at 224, 6.8 and 9.7 to 10 ms (decoding
 * alone is ~2 ms of it). On a 2-core box the stages share the cores, so the end-to-end rate cannot pass ~91% (~69%) of
 * the engine's own; measured 81-82% (63-64%). On a GPU host the engine's work leaves the CPU and the decode pool has
 * every core.
 */
import { chunk } from "../../shared/chunk";
import { isImageError } from "../../shared/image/errors";
import { imageToTensorInput, inputSizes, inputTensorLength, type PreprocessSpec } from "../../shared/image/preprocess";
import type { ImageCodecs } from "../../shared/image/codecs";
import { sha256Hex } from "../../shared/ids";
import { EMBEDDING_RECORD_HEADER_BYTES, bytesToHex, hexToBytes } from "../../shared/wire";
import type { Rejection, RunnerClient } from "./api-client";
import type { DecodePool } from "./decode/decode-pool";
import type { EmbeddingEngine } from "./engine/types";

/** Images per backbone run: bounds memory (tfjs at batch 32 held 808 MB of live tensors for MobileNetV2). */
const EMBED_BATCH = 32;
/**
 * A backbone run of one batch that takes longer than this fails the attempt (retryable) instead of leaving the job
 * running forever on a stuck engine: the slowest engine, pure-JS tfjs-cpu at ~0.5 img/s, needs ~64 s per batch.
 */
export const EMBED_BATCH_TIMEOUT_MS = 300_000;
/**
 * Batches downloaded ahead of the one being decoded: enough to hide a slow response behind a few batches of work.
 * At least one per decode thread: a 16-core GPU host decodes ~16 batches in the time one request may take (~0.1 s
 * away from the API), and 3 requests in flight would cap it near 1,000 img/s.
 */
const DOWNLOAD_AHEAD = 3;
/** Batches being decoded while the backbone runs one: keeps the decode pool's queue from running dry. */
export const DECODE_AHEAD = 2;
/** The lookup route takes at most this many hashes per call. */
const LOOKUP_CHUNK = 1000;
/** A pack is stored in shards of at most this many bytes: the API's limit per embeddings body (32 MB). */
const PACK_SHARD_BYTES = 32 * 1024 * 1024;
/**
 * A per-image lookup answer is assembled in a 128 MB Worker isolate: at most this many bytes of records per call.
 * Embeddings (a few KB each) never reach it; the cut activations of fine-tuning (150 KB each for MobileNet v1 0.75's
 * last block) do.
 */
const LOOKUP_MAX_BYTES = 32 * 1024 * 1024;

export interface EmbedDatasetInput {
  client: RunnerClient;
  jobId: string;
  leaseToken: string;
  /** Hex cache key (sha256 of `embeddingCacheKey(...)`). */
  cacheKey: string;
  /** Image hashes of the job, in item order (may repeat). */
  images: { sha256: string; path: string }[];
  preprocess: PreprocessSpec;
  engine: EmbeddingEngine;
  codecs: ImageCodecs;
  /** Decodes on other threads when given (the runner's pool); otherwise decoding runs on this thread. */
  decodePool?: DecodePool;
  maxPixels: number;
  /**
   * false: `images` is not the job's whole image set (augmentation views of its training images), so no pack is
   * read or written (the API keys a pack by the job's own images); every image is looked up and stored by itself.
   */
  usePack?: boolean;
  /** Batches decoded ahead of the backbone (default `DECODE_AHEAD`; bench/embed/pipeline.ts compares settings). */
  decodeAhead?: number;
  signal: AbortSignal;
  onProgress(done: number, total: number): void;
  log(msg: string): void;
}

export interface EmbedDatasetResult {
  /** sha256 → embedding (dim floats) for every image that could be embedded. */
  bySha: Map<string, Float32Array>;
  dim: number;
  /** Images that failed to decode at train time (each listed once, with the reason). */
  skipped: Rejection[];
  cached: number;
  computed: number;
  fromPack: boolean;
  embedMs: number;
  /** Where the time went, summed over batches: downloads (overlapping other work), decode + preprocess, waiting on the backbone. */
  breakdownMs: { fetch: number; decode: number; backboneWait: number };
}


/** Parses wire records (32-byte sha256 + `dim` float32) into `into`. */
export function parseRecords(bytes: Uint8Array, dim: number, into: Map<string, Float32Array>): number {
  const recordBytes = EMBEDDING_RECORD_HEADER_BYTES + dim * 4;
  if (bytes.length % recordBytes !== 0) throw new Error(`embedding records: ${bytes.length} bytes is not a multiple of ${recordBytes}`);
  const count = bytes.length / recordBytes;
  for (let i = 0; i < count; i++) {
    const record = bytes.subarray(i * recordBytes, (i + 1) * recordBytes);
    const values = new Float32Array(dim);
    new Uint8Array(values.buffer).set(record.subarray(EMBEDDING_RECORD_HEADER_BYTES));
    into.set(bytesToHex(record.subarray(0, EMBEDDING_RECORD_HEADER_BYTES)), values);
  }
  return count;
}

/** Wire records for `shas` (all present in `bySha`). */
export function encodeRecords(shas: string[], bySha: Map<string, Float32Array>, dim: number): Uint8Array {
  const recordBytes = EMBEDDING_RECORD_HEADER_BYTES + dim * 4;
  const out = new Uint8Array(shas.length * recordBytes);
  shas.forEach((sha, i) => {
    const values = bySha.get(sha)!;
    out.set(hexToBytes(sha), i * recordBytes);
    out.set(new Uint8Array(values.buffer, values.byteOffset, dim * 4), i * recordBytes + EMBEDDING_RECORD_HEADER_BYTES);
  });
  return out;
}

/** The pack id of a set of images: sha256 of their sorted, distinct hashes. */
export const packIdOf = (sortedShas: string[]) => sha256Hex(sortedShas.join("\n"));


export class EmbedBatchTimeoutError extends Error {
  override name = "EmbedBatchTimeoutError";
}

/** `promise`, or a rejection after `ms` (the promise itself keeps running; its result is ignored). */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EmbedBatchTimeoutError(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** `promise`, or a rejection as soon as `signal` aborts (a backbone run of a whole batch can take seconds). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

export async function embedDataset(input: EmbedDatasetInput): Promise<EmbedDatasetResult> {
  const { client, engine, signal } = input;
  const dim = engine.dim;
  const pathOf = new Map(input.images.map((image) => [image.sha256, image.path]));
  const unique = [...pathOf.keys()].sort();
  const pack = await packIdOf(unique);
  const usePack = input.usePack ?? true;
  const bySha = new Map<string, Float32Array>();

  // 1. The cache: the whole pack when this exact set was embedded before, else per image.
  let fromPack = false;
  const lookupChunk = Math.max(1, Math.min(LOOKUP_CHUNK, Math.floor(LOOKUP_MAX_BYTES / (EMBEDDING_RECORD_HEADER_BYTES + dim * 4))));
  for (let start = 0; start < unique.length; start += lookupChunk) {
    const chunk = unique.slice(start, start + lookupChunk).filter((sha) => !bySha.has(sha));
    if (chunk.length === 0) continue;
    const found = await client.lookupEmbeddings(input.jobId, input.leaseToken, input.cacheKey, chunk, start === 0 && usePack ? pack : undefined);
    parseRecords(found.records, dim, bySha);
    fromPack ||= found.fromPack;
    // The pack's other shards; one that is gone leaves its images to the per-image lookups of the next chunks.
    for (let shard = 1; start === 0 && shard < found.packShards; shard++) {
      const more = await client.lookupEmbeddings(input.jobId, input.leaseToken, input.cacheKey, [], pack, shard);
      if (!more.fromPack) break;
      parseRecords(more.records, dim, bySha);
    }
  }
  const cached = bySha.size;
  const missing = unique.filter((sha) => !bySha.has(sha));
  input.log(`embeddings: ${cached} cached, ${missing.length} to compute with ${engine.name}`);
  input.onProgress(cached, unique.length);

  // 2. The rest, batch by batch, decoding of the next DECODE_AHEAD batches overlapping the backbone run of this one.
  const skipped: Rejection[] = [];
  const perImage = inputTensorLength(input.preprocess);
  // Each batch's pixels: one array per input size when the engine takes them so (embedParts), else one array. The
  // arrays are reused from batch to batch: a fresh 80 MB batch (MobileNet v1 0.75 at 288 + 352) is zeroed, faulted
  // in page by page and collected again, which cost the main thread more than the copies into it.
  const sizeLengths = inputSizes(input.preprocess).map(([h, w]) => h * w * 3);
  const byParts = sizeLengths.length > 1 && engine.embedParts !== undefined;
  const freeBuffers: Float32Array[][] = [];
  const takeBuffers = () => freeBuffers.pop() ?? (byParts ? sizeLengths : [perImage]).map((length) => new Float32Array(EMBED_BATCH * length));
  const started = performance.now();
  let computed = 0;
  let storing: Promise<void> = Promise.resolve();
  let storeFailure: { error: unknown } | undefined;
  const breakdownMs = { fetch: 0, decode: 0, backboneWait: 0 };

  const batches = chunk(missing, EMBED_BATCH);
  const downloadAhead = Math.max(DOWNLOAD_AHEAD, input.decodePool?.threads ?? 0);
  // Downloads run DOWNLOAD_AHEAD batches ahead of decoding (one request per batch), so the network is off the critical path.
  const downloads = new Map<number, Promise<Map<string, Uint8Array | null>>>();
  const download = (b: number) => {
    let pending = downloads.get(b);
    if (!pending) {
      const t = performance.now();
      pending = client.getImages(input.jobId, input.leaseToken, batches[b]!).finally(() => (breakdownMs.fetch += performance.now() - t));
      pending.catch(() => undefined); // awaited (and its error raised) by prepare
      downloads.set(b, pending);
    }
    return pending;
  };

  /** Batch `b` decoded and preprocessed into one `[n, h, w, 3]` buffer; starts the downloads of the batches after it. */
  const prepare = async (b: number) => {
    const shas = batches[b]!;
    const buffers = takeBuffers();
    const kept: string[] = [];
    const downloaded = await download(b);
    downloads.delete(b);
    for (let ahead = 1; ahead <= downloadAhead && b + ahead < batches.length; ahead++) download(b + ahead);
    const t = performance.now();
    // Every image of the batch at once on the pool's threads; results are placed in batch order, so the batch is
    // the same whichever thread finishes first.
    const decoded = await Promise.all(shas.map(async (sha) => {
      const bytes = downloaded.get(sha);
      if (!bytes || signal.aborted) return null;
      if (input.decodePool) return input.decodePool.decode(bytes, input.preprocess, input.maxPixels);
      try {
        return { pixels: await imageToTensorInput(bytes, input.preprocess, input.codecs, { maxPixels: input.maxPixels }) };
      } catch (error) {
        if (!isImageError(error)) throw error;
        return { rejected: { code: error.code, message: error.message } };
      }
    }));
    shas.forEach((sha, i) => {
      const path = pathOf.get(sha)!;
      const result = decoded[i];
      if (signal.aborted) return;
      if (!result) skipped.push({ path, code: "image_missing", message: "the image is no longer in storage; upload it again" });
      else if ("rejected" in result) skipped.push({ path, ...result.rejected });
      else {
        if (byParts) {
          let offset = 0;
          sizeLengths.forEach((length, k) => {
            buffers[k]!.set(result.pixels.subarray(offset, offset + length), kept.length * length);
            offset += length;
          });
        } else buffers[0]!.set(result.pixels, kept.length * perImage);
        kept.push(sha);
      }
    });
    breakdownMs.decode += performance.now() - t;
    const n = kept.length;
    const parts = byParts ? buffers.map((buffer, k) => buffer.subarray(0, n * sizeLengths[k]!)) : [buffers[0]!.subarray(0, n * perImage)];
    return { parts, buffers, shas: kept };
  };

  // Batches being prepared, at most decodeAhead + 1 at a time; each one's failure is raised when its turn comes.
  const decodeAhead = Math.max(0, input.decodeAhead ?? DECODE_AHEAD);
  const prepared = new Map<number, ReturnType<typeof prepare>>();
  const ensurePrepared = (b: number) => {
    if (b >= batches.length || prepared.has(b)) return;
    const pending = prepare(b);
    pending.catch(() => undefined);
    prepared.set(b, pending);
  };
  try {
    for (let b = 0; b < batches.length; b++) {
      signal.throwIfAborted();
      if (storeFailure) throw storeFailure.error;
      ensurePrepared(b);
      const { parts, buffers, shas } = await prepared.get(b)!;
      prepared.delete(b);
      const run = () => (byParts ? engine.embedParts!(parts, shas.length) : engine.embed(parts[0]!, shas.length));
      const embedding = shas.length > 0 ? withTimeout(run(), EMBED_BATCH_TIMEOUT_MS, `embedding a batch of ${shas.length} images on ${engine.name}`) : Promise.resolve(new Float32Array(0));
      // The next batches start decoding now, while the backbone runs this one.
      for (let ahead = 1; ahead <= decodeAhead; ahead++) ensurePrepared(b + ahead);
      const waitStarted = performance.now();
      const values = await untilAborted(embedding, signal);
      breakdownMs.backboneWait += performance.now() - waitStarted;
      // The engine has read the batch (a timed-out or aborted run never gets here, so its arrays are not reused).
      freeBuffers.push(buffers);
      shas.forEach((sha, i) => bySha.set(sha, values.slice(i * dim, (i + 1) * dim)));
      computed += shas.length;
      if (shas.length > 0) {
        const records = encodeRecords(shas, bySha, dim);
        // One store in flight at a time; the next batch's work goes on meanwhile.
        storing = storing.then(() => client.storeEmbeddings(input.jobId, input.leaseToken, input.cacheKey, dim, records));
        // Handled at once: an upload that fails while this loop awaits other work would otherwise be an
        // unhandledRejection, which ends the runner process. Its error fails the attempt at the next batch.
        storing.catch((error: unknown) => (storeFailure ??= { error }));
        await (b % 4 === 3 ? storing : Promise.resolve());
      }
      input.onProgress(cached + computed + skipped.length, unique.length);
    }
  } finally {
    // Work already started (decodes, downloads) settles before this returns or throws; its results are dropped.
    await Promise.all([...prepared.values()].map((pending) => pending.catch(() => undefined)));
    storing.catch(() => undefined); // awaited (and its error raised) below when the loop completed
  }
  await storing;
  const embedMs = performance.now() - started;
  if (computed > 0) input.log(`embeddings: computed ${computed} in ${(embedMs / 1000).toFixed(1)} s (${((computed * 1000) / embedMs).toFixed(1)} img/s)`);

  // 3. The pack, so a retrain of this snapshot reads one object.
  // Keyed by all of the job's images, so images that fail to decode are simply absent from it.
  if (usePack && (!fromPack || computed > 0) && bySha.size > 0) {
    // In shards of at most PACK_SHARD_BYTES, shard 0 last: a pack whose shard 0 is stored is whole.
    const present = unique.filter((sha) => bySha.has(sha));
    const perShard = Math.max(1, Math.floor(PACK_SHARD_BYTES / (EMBEDDING_RECORD_HEADER_BYTES + dim * 4)));
    const shards = chunk(present, perShard);
    for (let shard = shards.length - 1; shard >= 0; shard--) {
      await client.storeEmbeddings(input.jobId, input.leaseToken, input.cacheKey, dim, encodeRecords(shards[shard]!, bySha, dim), { pack, items: false, shard, shards: shards.length });
    }
  }
  skipped.sort((a, b) => a.path.localeCompare(b.path));
  for (const key of Object.keys(breakdownMs) as (keyof typeof breakdownMs)[]) breakdownMs[key] = Math.round(breakdownMs[key]);
  return { bySha, dim, skipped, cached, computed, fromPack, embedMs, breakdownMs };
}
