/**
 * The edgetune client: one object, one property per resource. Runs unchanged in Node 20, browsers and Workers (web
 * APIs only: fetch, streams, Blob, WebCrypto); Node-only conveniences (folders, file paths) live in `sdk/node.ts`.
 *
 *     const edgetune = new Edgetune({ url: "http://127.0.0.1:8787", apiKey });
 *     const dataset = await edgetune.datasets.create({ name: "flowers" });
 *     for await (const event of edgetune.jobs.events(job.id)) console.log(event.type, event.data);
 */
import { EdgetuneError } from "./errors";
import { HttpClient, sleep, type ClientOptions, type RequestOptions } from "./http";
import { paginate, type Page } from "./pagination";
import { parseEventStream } from "./sse";
import type { Alias, ApiKey, BundleManifest, CallOptions, CreateJobParams, Dataset, Job, ListParams, Model, Prediction, Upload, Webhook, WebhookDelivery } from "./types";
import { readBlob, splitIntoParts, storedZipSize, zipEntries, type ZipSourceEntry } from "./zip-stream";

// ---------------------------------------------------------------- uploads
/** Something to upload as a dataset archive: its exact size, a name for messages, and its bytes on demand. */
export interface UploadSource {
  filename: string;
  size: number;
  /** Called once per attempt; a resumed upload reads the source again from the start (parts it has are skipped). */
  chunks(signal?: AbortSignal): AsyncIterable<Uint8Array>;
  /** Identifies the exact bytes (a resumed upload is only continued for the same fingerprint). */
  fingerprint?: string;
}

/** A ZIP built on the fly from files (`label/file` or `train/label/file` names). */
export function zipSource(entries: readonly ZipSourceEntry[], filename = "dataset.zip"): UploadSource {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    filename,
    size: storedZipSize(sorted),
    chunks: (signal) => zipEntries(sorted, signal),
    fingerprint: `zip:${sorted.length}:${hashString(sorted.map((e) => `${e.name}\0${e.size}\0${Math.floor(e.mtimeMs)}`).join("\n"))}`,
  };
}

/** An existing ZIP as a Blob or File (browser file picker, `fs.openAsBlob` in Node). */
export function blobSource(blob: Blob, filename = (blob as File).name || "dataset.zip"): UploadSource {
  return { filename, size: blob.size, chunks: () => readBlob(blob), fingerprint: `blob:${filename}:${blob.size}:${(blob as File).lastModified ?? 0}` };
}

/** ZIP bytes already in memory. */
export function bytesSource(bytes: Uint8Array, filename = "dataset.zip"): UploadSource {
  return { filename, size: bytes.length, chunks: async function* () { yield bytes; } };
}

export type UploadProgress =
  | { phase: "uploading"; sentBytes: number; totalBytes: number; skippedBytes: number; parts?: { done: number; total: number } }
  | { phase: "ingesting"; done: number; total: number; dataset: Dataset };

/** Where an interrupted multipart upload is remembered between runs (the CLI keeps it in a file). */
export interface ResumeStore {
  load(): Promise<{ upload_id: string; part_size: number; fingerprint?: string } | null>;
  save(state: { upload_id: string; part_size: number; fingerprint?: string }): Promise<void>;
  clear(): Promise<void>;
}

export interface UploadOptions extends CallOptions {
  onProgress?: (progress: UploadProgress) => void;
  /** Archives up to this size go in one `POST .../archive` (buffered in memory); larger ones in parts. Default 32 MiB. */
  singleRequestMaxBytes?: number;
  /** Part size for multipart uploads. Default 16 MiB, or more when needed to stay within 10,000 parts. */
  partBytes?: number;
  /** Parts in flight at once (memory is about concurrency x partBytes). Default 3. */
  concurrency?: number;
  /** Remembers the upload id so a later call can continue it. */
  resume?: ResumeStore;
}

export interface WaitOptions extends CallOptions {
  /** Poll interval in ms (default 1,000). */
  intervalMs?: number;
  /** Give up after this many ms (default: never). */
  timeoutMs?: number;
}

// R2 multipart: parts of 5 MiB to 5 GiB, at most 10,000 (../shared/notes/FACTS.md). 16 MiB parts keep memory small
// and lose at most 16 MiB of progress per interruption; a 2 GB folder is 120 parts.
const DEFAULT_PART_BYTES = 16 * 1024 * 1024;
const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PARTS = 10_000;
const DEFAULT_SINGLE_REQUEST_MAX_BYTES = 32 * 1024 * 1024;

// ---------------------------------------------------------------- job events
export interface JobEvent {
  /** Server event id (resume point); null for the synthetic `end` event. */
  id: number | null;
  /** `status`, `progress`, `metrics`, `cancel_requested`, ... and finally `end` (data: the final job). */
  type: string;
  data: any;
}

export interface EventsOptions extends CallOptions {
  /** Start after this event id (default: from the beginning). */
  after?: number;
  /** Reconnect attempts after a dropped stream before giving up (default 20; each reconnect that yields resets it). */
  maxReconnects?: number;
  onReconnect?: (info: { attempt: number; lastEventId: number; reason: string }) => void;
}

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

// ---------------------------------------------------------------- predictions
/** One image (bytes or Blob), several images, or precomputed embeddings. */
export type PredictInput = Uint8Array | ArrayBuffer | Blob | (Uint8Array | ArrayBuffer | Blob)[] | { embeddings: number[][] };
export interface PredictOptions extends CallOptions {
  topK?: number;
}

function predictBody(input: PredictInput): Pick<RequestOptions, "json" | "body" | "headers"> {
  if (!Array.isArray(input) && typeof input === "object" && "embeddings" in input) return { json: { embeddings: input.embeddings } };
  const toBlob = (x: Uint8Array | ArrayBuffer | Blob) => (x instanceof Blob ? x : new Blob([x as Uint8Array<ArrayBuffer>]));
  if (!Array.isArray(input)) {
    const blob = toBlob(input);
    return { body: blob, headers: { "content-type": blob.type || "application/octet-stream" } };
  }
  const form = new FormData();
  input.forEach((item, i) => form.append("file", toBlob(item), (item as File).name || `image-${i}`));
  return { body: form };
}

/** FNV-1a 32-bit, twice with different seeds: a cheap fingerprint, not security. */
function hashString(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}

export class Edgetune {
  readonly http: HttpClient;
  readonly datasets: Datasets;
  readonly jobs: Jobs;
  readonly models: Models;
  readonly aliases: Aliases;
  readonly keys: Keys;
  readonly webhooks: Webhooks;
  readonly backbones: Backbones;

  constructor(options: ClientOptions) {
    this.http = new HttpClient(options);
    this.datasets = new Datasets(this.http);
    this.jobs = new Jobs(this.http);
    this.models = new Models(this.http);
    this.aliases = new Aliases(this.http);
    this.keys = new Keys(this.http);
    this.webhooks = new Webhooks(this.http);
    this.backbones = new Backbones(this.http);
  }

  /** The caller's project (checks the key): `GET /v1/project`. */
  project(options: CallOptions = {}): Promise<{ id: string; name: string }> {
    return this.http.json("GET", "/v1/project", options);
  }
}

const listQuery = (params: ListParams, extra: Record<string, string | undefined> = {}) => ({ limit: params.limit, cursor: params.cursor, ...extra });
const enc = encodeURIComponent;

export class Datasets {
  constructor(private readonly http: HttpClient) {}

  create(params: { name: string }, options: CallOptions = {}): Promise<Dataset> {
    return this.http.json("POST", "/v1/datasets", { json: params, ...options });
  }
  get(id: string, options: CallOptions = {}): Promise<Dataset> {
    return this.http.json("GET", `/v1/datasets/${enc(id)}`, options);
  }
  list(params: ListParams = {}): Promise<Page<"datasets", Dataset>> {
    return this.http.json("GET", "/v1/datasets", { query: listQuery(params), signal: params.signal });
  }
  /** Every dataset, following `next_cursor`. */
  all(params: ListParams = {}): AsyncGenerator<Dataset> {
    return paginate("datasets", (p) => this.list(p), params);
  }
  delete(id: string, options: CallOptions & { force?: boolean } = {}): Promise<void> {
    return this.http.json("DELETE", `/v1/datasets/${enc(id)}`, { signal: options.signal, query: { force: options.force || undefined } });
  }
  /** Stores one image under `label` (PUT: replaces the same label/filename). */
  putImage(id: string, label: string, filename: string, bytes: Uint8Array | Blob, options: CallOptions = {}) {
    return this.http.json<{ sha256: string; label: string; width: number; height: number }>("PUT", `/v1/datasets/${enc(id)}/images/${enc(label)}/${enc(filename)}`, { body: bytes, headers: { "content-type": "application/octet-stream" }, ...options });
  }
  /** Reads a multipart upload with the parts the server has (what a resumed upload skips). */
  getUpload(id: string, uploadId: string, options: CallOptions = {}): Promise<Upload> {
    return this.http.json("GET", `/v1/datasets/${enc(id)}/uploads/${enc(uploadId)}`, options);
  }
  abortUpload(id: string, uploadId: string, options: CallOptions = {}): Promise<void> {
    return this.http.json("DELETE", `/v1/datasets/${enc(id)}/uploads/${enc(uploadId)}`, options);
  }

  /**
   * Uploads an archive: one request when it is small, otherwise in parts (up to `concurrency` at once), continuing
   * an earlier interrupted upload when `options.resume` remembers one for the same bytes. Resolves with the dataset
   * as the API answers once ingestion has started; call `waitUntilIngested` to follow it.
   */
  async upload(id: string, source: UploadSource, options: UploadOptions = {}): Promise<Dataset> {
    const { signal, onProgress } = options;
    const total = source.size;
    if (total <= (options.singleRequestMaxBytes ?? DEFAULT_SINGLE_REQUEST_MAX_BYTES) && !(await options.resume?.load())) {
      const bytes = new Uint8Array(total);
      let offset = 0;
      for await (const chunk of source.chunks(signal)) {
        if (offset + chunk.length > total) throw new EdgetuneError(0, "source_changed", `${source.filename} is larger than the ${total} bytes announced; it changed while being read.`);
        bytes.set(chunk, offset);
        offset += chunk.length;
      }
      onProgress?.({ phase: "uploading", sentBytes: 0, totalBytes: total, skippedBytes: 0 });
      const dataset = await this.http.json<Dataset>("POST", `/v1/datasets/${enc(id)}/archive`, {
        body: bytes.subarray(0, offset), headers: { "content-type": "application/zip" }, query: { filename: source.filename }, signal, idempotent: false,
      });
      onProgress?.({ phase: "uploading", sentBytes: offset, totalBytes: total, skippedBytes: 0 });
      return dataset;
    }
    return this.uploadInParts(id, source, options);
  }

  private async uploadInParts(id: string, source: UploadSource, options: UploadOptions): Promise<Dataset> {
    const { signal, onProgress, resume } = options;
    const total = source.size;
    const partBytes = Math.max(options.partBytes ?? DEFAULT_PART_BYTES, MIN_PART_BYTES, Math.ceil(total / MAX_PARTS));
    // Continue the remembered upload only if it is for the same bytes and still open.
    let upload: { upload_id: string; part_size: number } | null = null;
    const have = new Map<number, number>();
    const remembered = await resume?.load();
    if (remembered && remembered.fingerprint === source.fingerprint) {
      try {
        const current = await this.getUpload(id, remembered.upload_id, { signal });
        if (current.status === "open") {
          upload = { upload_id: current.upload_id, part_size: current.part_size };
          for (const p of current.parts ?? []) have.set(p.n, p.bytes);
        }
      } catch (err) {
        if (!(err instanceof EdgetuneError) || err.status !== 404) throw err;
      }
    }
    if (!upload) {
      if (remembered) await resume?.clear();
      upload = await this.http.json<Upload>("POST", `/v1/datasets/${enc(id)}/uploads`, { json: { filename: safeFilename(source.filename), part_size: partBytes }, signal });
      await resume?.save({ upload_id: upload.upload_id, part_size: upload.part_size, fingerprint: source.fingerprint });
    }
    const partSize = upload.part_size;
    const partCount = Math.max(1, Math.ceil(total / partSize));
    let sent = 0;
    let skipped = 0;
    let partsDone = 0;
    const report = () => onProgress?.({ phase: "uploading", sentBytes: sent + skipped, totalBytes: total, skippedBytes: skipped, parts: { done: partsDone, total: partCount } });
    report();
    const concurrency = Math.max(1, options.concurrency ?? 3);
    const inFlight = new Set<Promise<void>>();
    let failure: unknown = null;
    let n = 0;
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const part of splitIntoParts(source.chunks(controller.signal), partSize)) {
        n++;
        if (failure) break;
        if (have.get(n) === part.length) {
          skipped += part.length;
          partsDone++;
          report();
          continue;
        }
        const partNumber = n;
        const task = this.http
          .json("PUT", `/v1/datasets/${enc(id)}/uploads/${enc(upload.upload_id)}/parts/${partNumber}`, { body: part, headers: { "content-type": "application/octet-stream" }, signal: controller.signal })
          .then(() => {
            sent += part.length;
            partsDone++;
            report();
          })
          .catch((err) => {
            failure ??= err;
            controller.abort(err);
          });
        const tracked = task.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
        if (inFlight.size >= concurrency) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    } catch (err) {
      await Promise.allSettled(inFlight);
      throw failure ?? err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    if (failure) throw failure;
    if (n !== partCount) throw new EdgetuneError(0, "source_changed", `${source.filename} gave ${n} parts, expected ${partCount}; it changed while being read.`);
    const dataset = await this.http.json<Dataset>("POST", `/v1/datasets/${enc(id)}/uploads/${enc(upload.upload_id)}/complete`, { signal });
    await resume?.clear();
    return dataset;
  }

  /** Polls the dataset until ingestion ends (`ready`, `empty` or `failed`); reports `ingest.done / ingest.total`. */
  async waitUntilIngested(id: string, options: WaitOptions & { onProgress?: (progress: UploadProgress) => void } = {}): Promise<Dataset> {
    const started = Date.now();
    for (;;) {
      const dataset = await this.get(id, options);
      options.onProgress?.({ phase: "ingesting", done: dataset.ingest.done, total: dataset.ingest.total, dataset });
      if (dataset.status !== "ingesting") return dataset;
      if (options.timeoutMs !== undefined && Date.now() - started > options.timeoutMs) throw new EdgetuneError(0, "timeout", `Dataset ${id} was still ingesting after ${options.timeoutMs} ms.`);
      await sleep(options.intervalMs ?? 1000, options.signal);
    }
  }
}

/** Multipart uploads require a plain file name (no folders): keep the last path segment, replace odd characters. */
function safeFilename(name: string): string {
  const base = name.split(/[\\/]/).pop() || "dataset.zip";
  const cleaned = base.replace(/[^\p{L}\p{N} _.\-+()&,'=@~]/gu, "_").replace(/^[^\p{L}\p{N}_\-(]+/u, "").slice(0, 200);
  return cleaned || "dataset.zip";
}

export class Jobs {
  constructor(private readonly http: HttpClient) {}

  create(params: CreateJobParams, options: CallOptions = {}): Promise<Job> {
    return this.http.json("POST", "/v1/jobs", { json: params, ...options });
  }
  get(id: string, options: CallOptions = {}): Promise<Job> {
    return this.http.json("GET", `/v1/jobs/${enc(id)}`, options);
  }
  list(params: ListParams & { dataset_id?: string; status?: Job["status"] } = {}): Promise<Page<"jobs", Job>> {
    return this.http.json("GET", "/v1/jobs", { query: listQuery(params, { dataset_id: params.dataset_id, status: params.status }), signal: params.signal });
  }
  all(params: ListParams & { dataset_id?: string; status?: Job["status"] } = {}): AsyncGenerator<Job> {
    return paginate("jobs", (p) => this.list({ ...params, ...p }), params);
  }
  cancel(id: string, options: CallOptions = {}): Promise<Job> {
    return this.http.json("POST", `/v1/jobs/${enc(id)}/cancel`, { ...options, idempotent: true });
  }

  /**
   * The job's events as they happen (`GET /v1/jobs/:id/events`), ending with `{type: "end", data: <final job>}`.
   * A dropped connection (or a stream the server closes early: it ends each response after 5 minutes) is
   * reopened with `Last-Event-ID`, so no event is lost or repeated.
   */
  async *events(id: string, options: EventsOptions = {}): AsyncGenerator<JobEvent> {
    let lastEventId = options.after ?? 0;
    let failures = 0;
    let retryMs = 1000;
    const maxReconnects = options.maxReconnects ?? 20;
    for (;;) {
      let reason = "the stream ended before the job did";
      try {
        const response = await this.http.raw("GET", `/v1/jobs/${enc(id)}/events`, {
          headers: { accept: "text/event-stream", ...(lastEventId ? { "last-event-id": String(lastEventId) } : {}) },
          signal: options.signal,
        });
        for await (const message of parseEventStream(response.body!, (ms) => (retryMs = ms))) {
          const data = message.data ? JSON.parse(message.data) : null;
          if (message.event === "end") {
            yield { id: null, type: "end", data };
            return;
          }
          if (message.id !== null) lastEventId = Number(message.id) || lastEventId;
          failures = 0;
          yield { id: message.id === null ? null : Number(message.id), type: message.event, data };
        }
      } catch (err) {
        if (options.signal?.aborted) throw options.signal.reason;
        // An API refusal (404, 401) will not heal by reconnecting; a network drop may.
        if (err instanceof EdgetuneError && err.status !== 0) throw err;
        reason = err instanceof Error ? err.message : String(err);
      }
      failures++;
      if (failures > maxReconnects) throw new EdgetuneError(0, "network_error", `Lost the event stream of job ${id} ${failures} times in a row: ${reason}`);
      options.onReconnect?.({ attempt: failures, lastEventId, reason });
      await sleep(Math.min(retryMs * failures, 10_000) * (0.5 + Math.random() / 2), options.signal);
    }
  }

  /** Follows the job until it ends and resolves with the final job. `onEvent` sees every event on the way. */
  async wait(id: string, options: EventsOptions & { onEvent?: (event: JobEvent) => void } = {}): Promise<Job> {
    for await (const event of this.events(id, options)) {
      options.onEvent?.(event);
      if (event.type === "end") break;
    }
    const job = await this.get(id, options);
    if (!TERMINAL.has(job.status)) throw new EdgetuneError(0, "stream_ended", `The event stream of job ${id} ended while it is ${job.status}.`);
    return job;
  }
}

export class Models {
  constructor(private readonly http: HttpClient) {}

  get(id: string, options: CallOptions = {}): Promise<Model> {
    return this.http.json("GET", `/v1/models/${enc(id)}`, options);
  }
  list(params: ListParams = {}): Promise<Page<"models", Model>> {
    return this.http.json("GET", "/v1/models", { query: listQuery(params), signal: params.signal });
  }
  all(params: ListParams = {}): AsyncGenerator<Model> {
    return paginate("models", (p) => this.list(p), params);
  }
  delete(id: string, options: CallOptions & { force?: boolean } = {}): Promise<void> {
    return this.http.json("DELETE", `/v1/models/${enc(id)}`, { signal: options.signal, query: { force: options.force || undefined } });
  }
  /** Class probabilities per image (most probable first, `topK` each). Predictions are retried like reads: they change nothing. */
  predict(id: string, input: PredictInput, options: PredictOptions = {}): Promise<Prediction> {
    return this.http.json("POST", `/v1/models/${enc(id)}/predict`, { ...predictBody(input), query: { top_k: options.topK }, signal: options.signal, idempotent: true });
  }
  /** The head-only bundle of format edgetune-bundle/1 (`GET /v1/models/:id/bundle`); see `bundleManifest` for one that runs on its own. */
  bundle(id: string, options: CallOptions = {}): Promise<any> {
    return this.http.json("GET", `/v1/models/${enc(id)}/bundle`, options);
  }
  /**
   * The self-contained bundle's manifest (`GET /v1/models/:id/bundle/manifest`, saved as `edgetune.json`): every file
   * with its download path; fetch each with `bundleFile`.
   */
  bundleManifest(id: string, options: CallOptions = {}): Promise<BundleManifest> {
    return this.http.json("GET", `/v1/models/${enc(id)}/bundle/manifest`, options);
  }
  /** One file of a bundle manifest, as a streaming Response (a 10 MB backbone need not sit in memory). */
  bundleFile(file: { url: string }, options: CallOptions = {}): Promise<Response> {
    if (!file.url.startsWith("/")) throw new TypeError(`bundle file URLs are paths on the API's origin, got ${JSON.stringify(file.url)}`);
    return this.http.raw("GET", file.url, options);
  }
  /** One artifact's bytes (`model.json`, `weights.bin`, `head.json`, ...). */
  async file(id: string, name: string, options: CallOptions = {}): Promise<Uint8Array> {
    const response = await this.http.raw("GET", `/v1/models/${enc(id)}/files/${enc(name)}`, options);
    return new Uint8Array(await response.arrayBuffer());
  }
}

export class Aliases {
  constructor(private readonly http: HttpClient) {}

  set(name: string, modelId: string, options: CallOptions = {}): Promise<Alias> {
    return this.http.json("PUT", `/v1/aliases/${enc(name)}`, { json: { model_id: modelId }, ...options });
  }
  get(name: string, options: CallOptions = {}): Promise<Alias> {
    return this.http.json("GET", `/v1/aliases/${enc(name)}`, options);
  }
  list(params: ListParams = {}): Promise<Page<"aliases", Alias>> {
    return this.http.json("GET", "/v1/aliases", { query: listQuery(params), signal: params.signal });
  }
  all(params: ListParams = {}): AsyncGenerator<Alias> {
    return paginate("aliases", (p) => this.list(p), params);
  }
  delete(name: string, options: CallOptions = {}): Promise<void> {
    return this.http.json("DELETE", `/v1/aliases/${enc(name)}`, options);
  }
  predict(name: string, input: PredictInput, options: PredictOptions = {}): Promise<Prediction & { alias: string }> {
    return this.http.json("POST", `/v1/aliases/${enc(name)}/predict`, { ...predictBody(input), query: { top_k: options.topK }, signal: options.signal, idempotent: true });
  }
}

export class Keys {
  constructor(private readonly http: HttpClient) {}

  create(params: { name?: string; scope?: "full" | "predict" } = {}, options: CallOptions = {}): Promise<ApiKey & { secret: string }> {
    return this.http.json("POST", "/v1/keys", { json: params, ...options });
  }
  list(params: ListParams = {}): Promise<Page<"keys", ApiKey>> {
    return this.http.json("GET", "/v1/keys", { query: listQuery(params), signal: params.signal });
  }
  all(params: ListParams = {}): AsyncGenerator<ApiKey> {
    return paginate("keys", (p) => this.list(p), params);
  }
  revoke(id: string, options: CallOptions = {}): Promise<void> {
    return this.http.json("DELETE", `/v1/keys/${enc(id)}`, options);
  }
}

export class Webhooks {
  constructor(private readonly http: HttpClient) {}

  /** Registers a URL for events (`job.succeeded`, `job.failed`, `dataset.ready`, ...); the answer's `secret` is shown once. */
  create(params: { url: string; events: string[] }, options: CallOptions = {}): Promise<Webhook & { secret: string }> {
    return this.http.json("POST", "/v1/webhooks", { json: params, ...options });
  }
  list(params: ListParams = {}): Promise<Page<"webhooks", Webhook>> {
    return this.http.json("GET", "/v1/webhooks", { query: listQuery(params), signal: params.signal });
  }
  all(params: ListParams = {}): AsyncGenerator<Webhook> {
    return paginate("webhooks", (p) => this.list(p), params);
  }
  delete(id: string, options: CallOptions = {}): Promise<void> {
    return this.http.json("DELETE", `/v1/webhooks/${enc(id)}`, options);
  }
  deliveries(id: string, params: ListParams = {}): Promise<Page<"deliveries", WebhookDelivery>> {
    return this.http.json("GET", `/v1/webhooks/${enc(id)}/deliveries`, { query: listQuery(params), signal: params.signal });
  }
  allDeliveries(id: string, params: ListParams = {}): AsyncGenerator<WebhookDelivery> {
    return paginate("deliveries", (p) => this.deliveries(id, p), params);
  }
}

export class Backbones {
  constructor(private readonly http: HttpClient) {}

  list(params: ListParams = {}): Promise<Page<"backbones", any>> {
    return this.http.json("GET", "/v1/backbones", { query: listQuery(params), signal: params.signal });
  }
  get(id: string, options: CallOptions = {}): Promise<any> {
    return this.http.json("GET", `/v1/backbones/${enc(id)}`, options);
  }
}
