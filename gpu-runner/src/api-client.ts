/**
 * The runner's side of the runner protocol (workers/routes/runner.ts): plain HTTPS calls out to the API with the
 * runner token, so a runner needs no inbound connectivity. Every call that acts on a job carries its lease token;
 * the API answers 409 `lease_lost` once the lease is gone, which surfaces here as `LeaseLostError`.
 */
import { decodeImageRecords } from "../../shared/wire";
import { EdgetuneError } from "../../sdk/errors";
import { HttpClient } from "../../sdk/http";
import {
  completeResponseSchema, failResponseSchema, heartbeatResponseSchema, leasedJobSchema, rejectionSchema,
  type completeRequestSchema, type failRequestSchema, type EpochMetrics, type LeasedJob, type Progress,
} from "../../shared/schemas";
import type { z } from "zod";

export { leasedJobSchema, type LeasedJob, type Progress };

export type Rejection = z.infer<typeof rejectionSchema>;

/** The API refused a report because this runner no longer holds the job's lease. Stop work; report nothing. */
export class LeaseLostError extends Error {
  constructor(jobId: string) {
    super(`lost the lease on ${jobId}`);
    this.name = "LeaseLostError";
  }
}

export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiCallError";
  }
}

/**
 * Calls the runner may repeat after a dropped connection or a 5xx (the SDK's retry policy): reads, PUTs, and POSTs
 * that change nothing or land on the same state twice (image and embedding lookups, heartbeats, `complete`, which
 * answers the same model for a repeated report). Leasing, epochs and `fail` are not repeated: a lease granted
 * before the connection dropped would be held twice, epochs would be recorded twice.
 */
const REPEATABLE_POSTS = [/\/images$/, /\/lookup$/, /\/heartbeat$/, /\/complete$/];

export class RunnerClient {
  private readonly http: HttpClient;

  constructor(
    readonly apiUrl: string,
    token: string,
    fetchImpl: typeof fetch = fetch,
  ) {
    // A keep-alive socket that wrangler/workerd closes between two calls fails the next one ("other side closed"):
    // retrying idempotent calls keeps that from failing a job.
    this.http = new HttpClient({ url: apiUrl, apiKey: token, fetch: fetchImpl });
  }

  private async call(method: string, path: string, init: { json?: unknown; body?: Uint8Array; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (init.json === undefined && init.body) headers["content-type"] ??= "application/octet-stream";
    const idempotent = method !== "POST" || REPEATABLE_POSTS.some((re) => re.test(path.split("?")[0]));
    try {
      return await this.http.raw(method, path, { json: init.json, body: init.body, headers, signal: init.signal, idempotent });
    } catch (err) {
      if (!(err instanceof EdgetuneError)) throw err;
      if (err.code === "lease_lost") throw new LeaseLostError(path);
      throw new ApiCallError(err.status, err.code, `${method} ${path}: ${err.status} ${err.code}: ${err.message}`);
    }
  }

  /** Long-polls for a job (up to `waitS` seconds). `null` when none was queued. */
  async lease(runnerId: string, waitS: number, engines: string[], signal?: AbortSignal): Promise<LeasedJob | null> {
    const response = await this.call("POST", "/v1/runner/lease", { json: { runner_id: runnerId, wait_s: waitS, engines }, signal });
    if (response.status === 204) return null;
    return leasedJobSchema.parse(await response.json());
  }

  async heartbeat(jobId: string, leaseToken: string, progress?: Progress): Promise<{ cancel_requested: boolean; lease_expires_at: string }> {
    const response = await this.call("POST", `/v1/runner/jobs/${jobId}/heartbeat`, { json: { lease_token: leaseToken, progress } });
    return heartbeatResponseSchema.parse(await response.json());
  }

  async recordEpochs(jobId: string, leaseToken: string, epochs: EpochMetrics[]): Promise<void> {
    if (epochs.length > 0) await this.call("POST", `/v1/runner/jobs/${jobId}/epochs`, { json: { lease_token: leaseToken, epochs } });
  }

  async uploadArtifact(jobId: string, leaseToken: string, name: string, bytes: Uint8Array): Promise<void> {
    await this.call("PUT", `/v1/runner/jobs/${jobId}/artifacts/${name}`, { body: bytes, headers: { "x-lease-token": leaseToken } });
  }

  async complete(jobId: string, report: z.input<typeof completeRequestSchema>): Promise<string> {
    const response = await this.call("POST", `/v1/runner/jobs/${jobId}/complete`, { json: report });
    return completeResponseSchema.parse(await response.json()).model_id;
  }

  /** Stores a diagnostics job's report and finishes the job. */
  async completeDiagnostics(jobId: string, report: { lease_token: string; report: object; extra?: object }): Promise<void> {
    await this.call("POST", `/v1/runner/jobs/${jobId}/diagnostics`, { json: report });
  }

  async fail(jobId: string, report: z.input<typeof failRequestSchema>): Promise<string> {
    const response = await this.call("POST", `/v1/runner/jobs/${jobId}/fail`, { json: { ...report, error: report.error.slice(0, 4000) } });
    return failResponseSchema.parse(await response.json()).status;
  }

  async getImage(jobId: string, leaseToken: string, sha256: string): Promise<Uint8Array> {
    const response = await this.call("GET", `/v1/runner/jobs/${jobId}/images/${sha256}`, { headers: { "x-lease-token": leaseToken } });
    return new Uint8Array(await response.arrayBuffer());
  }

  /**
   * Bytes of up to 64 images, by sha256; `null` for an image not in storage. The API answers at most 24 MB per call
   * and leaves the rest out, so this asks again for what is missing from each answer (and reads an image larger than
   * that alone).
   */
  async getImages(jobId: string, leaseToken: string, sha256s: string[]): Promise<Map<string, Uint8Array | null>> {
    const out = new Map<string, Uint8Array | null>();
    let pending = sha256s;
    while (pending.length > 0) {
      const response = await this.call("POST", `/v1/runner/jobs/${jobId}/images`, { json: { sha256: pending }, headers: { "x-lease-token": leaseToken } });
      const answered = decodeImageRecords(new Uint8Array(await response.arrayBuffer()));
      // None fit: the first is larger than a whole batch's budget, so it comes alone from the streamed route.
      if (answered.size === 0) answered.set(pending[0]!, await this.getImage(jobId, leaseToken, pending[0]!).catch((error) => {
        if (error instanceof ApiCallError && error.status === 404) return null;
        throw error;
      }));
      for (const [sha, bytes] of answered) out.set(sha, bytes);
      pending = pending.filter((sha) => !out.has(sha));
    }
    return out;
  }

  /**
   * Cached embedding records (32-byte sha256 + dim float32) for those of `sha256s` found; the pack if it exists. The
   * cache is the leased job's project's, reached through the job while this runner holds its lease.
   */
  async lookupEmbeddings(jobId: string, leaseToken: string, cacheKey: string, sha256s: string[], pack?: string, shard?: number): Promise<{ records: Uint8Array; fromPack: boolean; packShards: number }> {
    const response = await this.call("POST", `/v1/runner/jobs/${jobId}/embeddings/${cacheKey}/lookup`, { json: { sha256: sha256s, pack, shard }, headers: { "x-lease-token": leaseToken } });
    const fromPack = response.headers.get("x-embedding-source") === "pack";
    return { records: new Uint8Array(await response.arrayBuffer()), fromPack, packShards: fromPack ? Number(response.headers.get("x-embedding-pack-shards") ?? 1) || 1 : 0 };
  }

  /** Stores records under their image hashes, or with `pack` as shard `shard` of `shards` of the job's pack. */
  async storeEmbeddings(jobId: string, leaseToken: string, cacheKey: string, dim: number, records: Uint8Array, options: { pack?: string; items?: boolean; shard?: number; shards?: number } = {}): Promise<void> {
    const query = new URLSearchParams({ dim: String(dim), items: options.items === false ? "0" : "1" });
    if (options.pack) {
      query.set("pack", options.pack);
      query.set("shard", String(options.shard ?? 0));
      query.set("shards", String(options.shards ?? 1));
    }
    await this.call("PUT", `/v1/runner/jobs/${jobId}/embeddings/${cacheKey}?${query}`, { body: records, headers: { "x-lease-token": leaseToken } });
  }

  /** A file of the leased job's backbone, or `null` when the API has none (a builtin backbone not yet published). */
  async getBackboneFile(jobId: string, leaseToken: string, file: "model.json" | "weights.bin"): Promise<Uint8Array | null> {
    try {
      const response = await this.call("GET", `/v1/runner/jobs/${jobId}/backbone/${file}`, { headers: { "x-lease-token": leaseToken } });
      return new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      if (error instanceof ApiCallError && error.status === 404) return null;
      throw error;
    }
  }

  async putBackboneFile(backboneId: string, file: "model.json" | "weights.bin", bytes: Uint8Array): Promise<void> {
    await this.call("PUT", `/v1/runner/backbones/${backboneId}/${file}`, { body: bytes });
  }
}
