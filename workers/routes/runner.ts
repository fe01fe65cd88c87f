/**
 * The runner protocol under /v1/runner: runners need no inbound connectivity; they lease jobs over HTTP with the
 * runner token (not a project key), renew the lease by heartbeat, stream metrics, upload artifacts and complete or
 * fail. Every report carries the lease token; a runner that lost its lease gets 409 `lease_lost` and changes nothing.
 *
 * Least privilege: each runner has its own token (POST /v1/runners, stored hashed, revocable). A runner token by itself
 * opens only the lease long poll (and /runner/me). Everything else is reached through a job (`/runner/jobs/{id}/...`)
 * and answers only while THIS runner holds that job's lease (the job's runner_id is the token's runner and the lease
 * token matches), and only for what that job needs: the images of its dataset snapshot, its backbone's files, the
 * embedding cache of its project. Another project's images, backbones or embeddings are unreachable. Builtin backbone
 * files can be written once, and only with the bytes whose sha256 the catalog pins.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { findBuiltinBackbone } from "../../shared/catalog";
import { ApiError } from "../../shared/errors";
import {
  MODEL_ARTIFACTS, artifactResponseSchema, completeRequestSchema, completeResponseSchema, embeddingLookupRequestSchema, embeddingsStoredResponseSchema, epochsRequestSchema, failRequestSchema,
  failResponseSchema, heartbeatRequestSchema, heartbeatResponseSchema, imageBatchRequestSchema, jobConfigSchema, leaseRequestSchema, leasedJobSchema, okResponseSchema,
} from "../../shared/schemas";
import { emitSafely, jobEndedNotifier } from "../services/webhooks";
import { createRouter, waitUntil, type AppEnv } from "../app";
import { getConfig } from "../config";
import { bearerToken } from "../services/auth";
import { publishBuiltinBackboneFile, readJobBackboneFile } from "../services/backbones";
import { bodyStream, readBodyLimited } from "../services/bodies";
import { readImage, readImageBatch, shasInSnapshot, snapshotPack } from "../services/datasets";
import { countFailedAuth } from "../services/rate-limits";
import { authenticateRunner, recordRunnerSeen, tenantSafeError } from "../services/runners";
import { getDb } from "../services/db";
import { EMBEDDING_BODY_MAX_BYTES, EMBEDDING_ITEMS_MAX_RECORDS, EMBEDDING_RECORD_HEADER_BYTES, readEmbeddingPackShard, readEmbeddings, writeEmbeddingPackShard, writeEmbeddings } from "../services/embeddings";
import { leaseWithWait, wakeRunners } from "../services/dispatch";
import { completeJob, completeJobWithoutModel, describeLease, failJob, getLeasedJob, heartbeat, modelIdForJob, recordEpochs } from "../services/jobs";
import { isHeadStored, storeModelArtifact, storeModelMetrics } from "../services/models";
import { modelAttemptPrefix } from "../services/object-keys";
import { putDiagnostics, MAX_DIAGNOSTICS_BYTES } from "../services/diagnostics";
import { bytesToHex, encodeImageRecords } from "../../shared/wire";
import { binaryBody, binaryResponse, errors, jsonBody, jsonResponse } from "./openapi-helpers";
import { EXAMPLE_IDS, exampleLease, exampleModel } from "./openapi-examples";
import type { Context } from "hono";

export const runnerRoutes = createRouter();
const runnerSecurity = [{ runnerToken: [] }];

runnerRoutes.use("/runner/*", async (c, next) => {
  const db = getDb(c.env.DB);
  c.set("db", db);
  const token = bearerToken(c.req.header("authorization"));
  if (!token) throw new ApiError("missing_runner_token", "Runner routes need 'Authorization: Bearer <runner token>'. An admin creates runner tokens with POST /v1/runners.");
  const runner = await authenticateRunner(db, token);
  if (!runner) {
    await countFailedAuth(c.env, c.req.raw);
    throw new ApiError("invalid_runner_token", "This runner token is unknown or was revoked (project API keys are not runner tokens). An admin creates runner tokens with POST /v1/runners.");
  }
  c.set("runner", runner);
  const seen = recordRunnerSeen(db, runner);
  if (seen) waitUntil(c, seen.catch((err) => console.error("last_seen_at:", err)));
  await next();
});

runnerRoutes.openapi(
  createRoute({
    method: "get", path: "/runner/me", tags: ["runner"], security: runnerSecurity, operationId: "getRunnerSelf", summary: "The runner this token belongs to (a harmless check that a token still works)",
    responses: { 200: jsonResponse("The runner", z.object({ id: z.string().describe("the runner's id"), name: z.string().describe("its name") }), { id: EXAMPLE_IDS.runner, name: "gpu-box-1" }), 401: errors[401] },
  }),
  (c) => c.json({ id: c.var.runner.id, name: c.var.runner.name }, 200),
);


runnerRoutes.openapi(
  createRoute({
    method: "post", path: "/runner/lease", tags: ["runner"], security: runnerSecurity, operationId: "leaseJob",
    summary: "Lease the next job (long poll up to wait_s); 204 when none",
    request: { body: jsonBody(leaseRequestSchema, { wait_s: 20, engines: ["onnx-cpu", "tfjs-wasm"] }) },
    responses: { 200: jsonResponse("A leased job with everything needed to run it", leasedJobSchema, exampleLease), 204: { description: "No job" }, 400: errors[400], 401: errors[401] },
  }),
  async (c) => {
    // A runner is identified by its token; the body's runner_id is ignored.
    const { wait_s } = c.req.valid("json");
    const db = c.var.db;
    // Waits on the dispatcher Durable Object, not by polling D1 (services/dispatch.ts).
    const lease = await leaseWithWait(db, c.env.DISPATCHER, c.var.runner.id, wait_s * 1000, c.req.raw.signal, getConfig(c.env).quotas.running_jobs, jobEndedNotifier(c.env));
    return lease ? c.json(await describeLease(db, lease), 200) : c.body(null, 204);
  },
);

const leaseHeader = (c: Context<AppEnv>) => {
  const token = c.req.header("x-lease-token");
  if (!token) throw new ApiError("missing_lease_token", "Send the job's lease token in the X-Lease-Token header.");
  return token;
};
const jobIdParam = z.object({ id: z.string().min(1).meta({ description: "the leased job's id", example: EXAMPLE_IDS.job }) });
// Optional to the validator so that a missing header answers the route's own 400 `missing_lease_token`.
const leaseTokenHeader = z.object({ "x-lease-token": z.string().optional().meta({ description: "the job's lease token (required: 400 missing_lease_token without it)", example: exampleLease.lease.token }) });
const leaseToken = exampleLease.lease.token;

runnerRoutes.openapi(
  createRoute({
    method: "post", path: "/runner/jobs/{id}/heartbeat", tags: ["runner"], security: runnerSecurity, summary: "Renew the lease, report progress; answers whether to cancel",
    request: { params: jobIdParam, body: jsonBody(heartbeatRequestSchema, { lease_token: leaseToken, progress: { phase: "embedding", done: 128, total: 400 } }) },
    responses: { 200: jsonResponse("Renewed", heartbeatResponseSchema, { cancel_requested: false, lease_expires_at: exampleLease.lease.expires_at }), 409: errors[409] },
  }),
  async (c) => {
    const { lease_token, progress } = c.req.valid("json");
    await requireLease(c, c.req.valid("param").id, lease_token);
    const result = await heartbeat(c.var.db, c.req.valid("param").id, lease_token, progress);
    return c.json({ cancel_requested: result.cancelRequested, lease_expires_at: result.leaseExpiresAt }, 200);
  },
);

runnerRoutes.openapi(
  createRoute({
    method: "post", path: "/runner/jobs/{id}/epochs", tags: ["runner"], security: runnerSecurity, operationId: "recordRunnerJobEpochs", summary: "Record epochs' metrics (a batch, in order)",
    request: { params: jobIdParam, body: jsonBody(epochsRequestSchema, { lease_token: leaseToken, epochs: [{ epoch: 1, train_loss: 1.21, val_loss: 0.94, train_accuracy: 0.61, val_accuracy: 0.74 }] }) },
    responses: { 200: jsonResponse("Recorded", okResponseSchema, { ok: true }), 409: errors[409] },
  }),
  async (c) => {
    const { lease_token, epochs } = c.req.valid("json");
    await requireLease(c, c.req.valid("param").id, lease_token);
    await recordEpochs(c.var.db, c.req.valid("param").id, lease_token, epochs);
    return c.json({ ok: true as const }, 200);
  },
);

const MAX_ARTIFACT_BYTES = 64 * 1024 * 1024;

/** The job, while `token` (X-Lease-Token or the body's lease_token) holds its lease; otherwise 409 lease_lost. */
/**
 * The job, while the calling runner holds its lease with `token` (X-Lease-Token or the body's lease_token); otherwise
 * 409 lease_lost. A lease token leaked to another runner is of no use to it: the job's runner_id must be the caller's.
 */
const requireLease = (c: Context<AppEnv>, jobId: string, token = leaseHeader(c)) => getLeasedJob(c.var.db, jobId, token, Date.now(), c.var.runner.id);

runnerRoutes.openapi(
  createRoute({
    method: "put", path: "/runner/jobs/{id}/artifacts/{name}", tags: ["runner"], security: runnerSecurity, summary: "Upload one model artifact (X-Lease-Token)",
    request: {
      params: jobIdParam.extend({ name: z.enum(MODEL_ARTIFACTS).meta({ description: "which artifact" }) }),
      headers: leaseTokenHeader,
      body: binaryBody("application/octet-stream", "application/json"),
    },
    responses: { 200: jsonResponse("Stored", artifactResponseSchema, { name: "head.bin", bytes: 20_500 }), 409: errors[409], 413: errors[413] },
  }),
  async (c) => {
    const { id, name } = c.req.valid("param");
    const job = await requireLease(c, id);
    // Streamed into R2 (peak memory: one chunk, about 64 KB), never held whole.
    const { stream, length } = bodyStream(c.req.raw, MAX_ARTIFACT_BYTES, name);
    await storeModelArtifact(c.env.BUCKET, modelAttemptPrefix(job.projectId, modelIdForJob(job.id), job.attempt), name, stream);
    return c.json({ name, bytes: length }, 200);
  },
);


runnerRoutes.openapi(
  createRoute({
    method: "post", path: "/runner/jobs/{id}/complete", tags: ["runner"], security: runnerSecurity, summary: "Register the model and finish the job (idempotent under the lease)",
    request: {
      params: jobIdParam,
      body: jsonBody(completeRequestSchema, {
        lease_token: leaseToken, labels: exampleModel.labels, metrics: exampleModel.metrics, epochs: [{ epoch: 1, train_loss: 1.21, val_loss: 0.94, train_accuracy: 0.61, val_accuracy: 0.74 }], skipped: [], head_bytes: 20_500,
      }),
    },
    responses: { 200: jsonResponse("Done", completeResponseSchema, { model_id: EXAMPLE_IDS.model }), 409: errors[409] },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const job = await requireLease(c, id, body.lease_token);
    const prefix = modelAttemptPrefix(job.projectId, modelIdForJob(id), job.attempt);
    if (!(await isHeadStored(c.env.BUCKET, prefix))) throw new ApiError("artifacts_missing", "Upload head.json and head.bin before completing the job.");
    // Peak memory: the JSON body (at most 16 MB, workers/app.ts), parsed, and once more as text for R2 when the
    // metrics go there (bench/memory: +8 MiB for a 1,000-label model's 2 MiB of metrics).
    const metrics = await storeModelMetrics(c.env.BUCKET, prefix, body.metrics);
    const modelId = await completeJob(c.var.db, id, body.lease_token, { labels: body.labels, metrics, headBytes: body.head_bytes, objectPrefix: prefix, epochs: body.epochs, skipped: body.skipped, extra: body.extra });
    await emitSafely(c.env, job.projectId, "job.succeeded", `${id}.succeeded`, { job: { id, status: "succeeded", dataset_id: job.datasetId, model_id: modelId } });
    return c.json({ model_id: modelId }, 200);
  },
);

const diagnosticsRequest = z
  .object({
    lease_token: z.string().describe("the job's lease token"),
    report: z.record(z.string(), z.unknown()).describe("the report's findings (near_duplicates, suspected_mislabels, outliers); the Worker adds the dataset, version, backbone and job"),
    extra: z.record(z.string(), z.unknown()).optional().describe("more figures kept on the job's metrics"),
  })
  .strict()
  .meta({ id: "DiagnosticsCompleteRequest", description: "A finished diagnostics run" });

runnerRoutes.openapi(
  createRoute({
    method: "post", path: "/runner/jobs/{id}/diagnostics", tags: ["runner"], security: runnerSecurity, operationId: "completeRunnerJobDiagnostics",
    summary: "Store a diagnostics job's report for its dataset version and finish the job (idempotent under the lease)",
    request: { params: jobIdParam, body: jsonBody(diagnosticsRequest, { lease_token: leaseToken, report: { near_duplicates: [], suspected_mislabels: [], outliers: [] } }) },
    responses: { 200: jsonResponse("Done", z.object({ dataset_version: z.number().int().describe("the version the report was stored for") }), { dataset_version: 3 }), 409: errors[409], 413: errors[413] },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const job = await requireLease(c, id, body.lease_token);
    if (jobConfigSchema.parse(job.config).kind !== "diagnostics") throw new ApiError("invalid_request", `Job '${id}' is a training job; report it with /complete.`, { job_id: id });
    const report = { ...body.report, dataset_id: job.datasetId, dataset_version: job.datasetVersion, backbone: job.backbone, job_id: job.id, created_at: new Date().toISOString() };
    // Peak memory: the report (at most 8 MB), parsed and serialized once.
    const bytes = JSON.stringify(report).length;
    if (bytes > MAX_DIAGNOSTICS_BYTES) throw new ApiError("payload_too_large", `The report is ${bytes} bytes; at most ${MAX_DIAGNOSTICS_BYTES}.`, { limit_bytes: MAX_DIAGNOSTICS_BYTES });
    await putDiagnostics(c.env.BUCKET, job.projectId, job.datasetId, job.datasetVersion, report);
    await completeJobWithoutModel(c.var.db, id, body.lease_token, body.extra ?? {});
    return c.json({ dataset_version: job.datasetVersion }, 200);
  },
);

runnerRoutes.openapi(
  createRoute({
    method: "post", path: "/runner/jobs/{id}/fail", tags: ["runner"], security: runnerSecurity, summary: "Report a failure (retryable goes back to the queue) or a stop on cancel",
    request: { params: jobIdParam, body: jsonBody(failRequestSchema, { lease_token: leaseToken, error: "out of memory while embedding", retryable: true }) },
    responses: { 200: jsonResponse("New status", failResponseSchema, { status: "queued" }), 409: errors[409] },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const { id } = c.req.valid("param");
    const job = await requireLease(c, id, body.lease_token);
    const status = await failJob(c.var.db, id, body.lease_token, { error: tenantSafeError(body.error, c.var.runner), retryable: body.retryable, canceled: body.canceled, release: body.release });
    if (status === "queued") await wakeRunners(c.env.DISPATCHER); // released or retryable: another runner may take it
    if (status === "failed" || status === "canceled") {
      await emitSafely(c.env, job.projectId, status === "failed" ? "job.failed" : "job.canceled", `${id}.${status}`, { job: { id, status, dataset_id: job.datasetId, error: body.error } });
    }
    return c.json({ status }, 200);
  },
);

runnerRoutes.openapi(
  createRoute({
    method: "get", path: "/runner/jobs/{id}/images/{sha256}", tags: ["runner"], security: runnerSecurity, summary: "Bytes of one image of the leased job's project (X-Lease-Token)",
    request: { params: jobIdParam.extend({ sha256: z.string().regex(/^[0-9a-f]{64}$/).meta({ description: "the image's SHA-256 (hex)", example: EXAMPLE_IDS.sha256 }) }), headers: leaseTokenHeader },
    responses: { 200: binaryResponse("The image's bytes", "image/jpeg", "image/png", "application/octet-stream"), 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id, sha256 } = c.req.valid("param");
    const job = await requireLease(c, id);
    if (!(await shasInSnapshot(c.var.db, job.datasetId, job.datasetVersion, [sha256])).has(sha256)) {
      throw new ApiError("image_not_found", `Image ${sha256} is not in the leased job's dataset snapshot.`, { sha256 });
    }
    // Peak memory: one chunk: the bytes stream from R2 (the path for an image larger than a batch's budget).
    const object = await readImage(c.env.BUCKET, job.projectId, sha256);
    if (!object) throw new ApiError("image_not_found", `Image ${sha256} is not in storage.`);
    return new Response(object.body, { headers: { "content-type": object.httpMetadata?.contentType ?? "application/octet-stream", "content-length": String(object.size) } });
  },
);

/**
 * At most this many images per batch download, and at most this many bytes: the images are read into memory, then
 * streamed out record by record without another copy, so the route's peak memory is 24 MB. Images past the byte
 * budget are left out of the answer and the runner asks for them again; one larger than the budget alone it reads
 * from GET /v1/runner/jobs/:id/images/:sha256 (streamed from R2).
 */
const MAX_IMAGE_BATCH = 64;
const MAX_IMAGE_BATCH_BYTES = 24 * 1024 * 1024;
const IMAGE_READ_CONCURRENCY = 16;

runnerRoutes.openapi(
  createRoute({
    method: "post", path: "/runner/jobs/{id}/images", tags: ["runner"], security: runnerSecurity, operationId: "downloadRunnerJobImages",
    summary: "Bytes of up to 64 images of the leased job's project in one response (X-Lease-Token): per image a 32-byte sha256, a uint32 big-endian length, the bytes; missing images have length 0xFFFFFFFF; images past the 24 MB budget are left out (ask again; one larger than 24 MB alone is read with GET .../images/:sha256)",
    request: { params: jobIdParam, headers: leaseTokenHeader, body: jsonBody(imageBatchRequestSchema, { sha256: [EXAMPLE_IDS.sha256, EXAMPLE_IDS.otherSha256] }) },
    responses: { 200: binaryResponse("Records: per image a 32-byte sha256, a uint32 big-endian length, the bytes", "application/octet-stream"), 409: errors[409] },
  }),
  async (c) => {
    // One lease check and one request for a whole batch: per-image requests spent most of a job's embedding time
    // in request overhead (measured on wrangler dev: 400 photos, 8 in flight, fetch 63 s summed vs decode 3.6 s).
    const { id } = c.req.valid("param");
    const job = await requireLease(c, id);
    const { sha256 } = c.req.valid("json");
    // Only the images of the job's snapshot: any other hash (another dataset, another project) answers "missing".
    const allowed = await shasInSnapshot(c.var.db, job.datasetId, job.datasetVersion, sha256);
    const found = await readImageBatch(c.env.BUCKET, job.projectId, sha256.filter((sha) => allowed.has(sha)), { maxBytes: MAX_IMAGE_BATCH_BYTES, concurrency: IMAGE_READ_CONCURRENCY });
    for (const sha of new Set(sha256)) if (!allowed.has(sha)) found.push([sha, null]);
    const parts = encodeImageRecords(found);
    const length = parts.reduce((sum, part) => sum + part.length, 0);
    const body = new ReadableStream<Uint8Array>({ pull: (controller) => (parts.length > 0 ? controller.enqueue(parts.shift()!) : controller.close()) });
    return new Response(body.pipeThrough(new FixedLengthStream(length)), { headers: { "content-type": "application/octet-stream", "content-length": String(length) } });
  },
);

// ---------------------------------------------------------------- embedding cache
/**
 * The embedding cache is per project (services/embeddings.ts says why), and a runner reaches it only through a job it
 * leases: lookups answer only hashes of the job's snapshot, stores accept only records of those hashes, and a pack is
 * read and stored only under the job's own pack id. A runner can therefore spoil at most the embeddings of the images
 * of the job it was given (as it could spoil that job's model), never another project's or another dataset's.
 */
const cacheKeyParam = jobIdParam.extend({
  key: z.string().min(8).max(64).regex(/^[0-9a-f]+$/).meta({ description: "the embedding cache key: hex of the backbone, its weights version and the preprocessing", example: "abababababababababababababababab" }),
});

runnerRoutes.openapi(
  createRoute({
    method: "post", path: "/runner/jobs/{id}/embeddings/{key}/lookup", tags: ["runner"], security: runnerSecurity,
    summary: "Cached embeddings (the leased job's project's) for up to 1,000 of the job's image hashes: binary records (32-byte sha256 + float32 vector) for those found; with `pack` (the job's pack id) shard `shard` of the pack when stored, its shard count in X-Embedding-Pack-Shards (X-Lease-Token)",
    request: { params: cacheKeyParam, headers: leaseTokenHeader, body: jsonBody(embeddingLookupRequestSchema, { sha256: [EXAMPLE_IDS.sha256] }) },
    responses: { 200: binaryResponse("Records of the embeddings found: 32-byte sha256 + float32 vector each (X-Record-Header-Bytes says the header size; X-Embedding-Source: pack or items; X-Embedding-Pack-Shards: the pack's shard count)", "application/octet-stream"), 409: errors[409] },
  }),
  async (c) => {
    // Peak memory: a pack shard streams from R2 (one chunk); items are gathered, at most 1,000 records (10 MB at
    // 1,280 floats, twice while joined).
    const { id, key } = c.req.valid("param");
    const job = await requireLease(c, id);
    const { sha256, pack, shard } = c.req.valid("json");
    const headers = { "content-type": "application/octet-stream", "x-record-header-bytes": String(EMBEDDING_RECORD_HEADER_BYTES) };
    if (pack && pack === (await snapshotPack(c.var.db, job.datasetId, job.datasetVersion)).id) {
      const stored = await readEmbeddingPackShard(c.env.BUCKET, job.projectId, key, pack, shard ?? 0);
      if (stored) return new Response(stored.body, { headers: { ...headers, "content-length": String(stored.size), "x-embedding-source": "pack", "x-embedding-pack-shards": String(stored.shards) } });
    }
    const allowed = await shasInSnapshot(c.var.db, job.datasetId, job.datasetVersion, sha256);
    const body = await readEmbeddings(c.env.BUCKET, job.projectId, key, sha256.filter((sha) => allowed.has(sha)));
    return new Response(body, { headers: { ...headers, "x-embedding-source": "items" } });
  },
);

runnerRoutes.openapi(
  createRoute({
    method: "put", path: "/runner/jobs/{id}/embeddings/{key}", tags: ["runner"], security: runnerSecurity,
    summary: "Store embeddings of the leased job's images (binary records, at most 32 MB and, per image, 7,200 records); with ?pack=<the job's pack id>&shard=i&shards=n store the body as shard i of n of the job's pack instead (X-Lease-Token)",
    request: {
      params: cacheKeyParam,
      headers: leaseTokenHeader,
      query: z.object({
        pack: z.string().regex(/^[0-9a-f]{64}$/).optional().meta({ description: "store the body as a shard of the job's pack (its pack id) instead of per image" }),
        shard: z.coerce.number().int().min(0).max(9_999).default(0).meta({ description: "with `pack`: which shard this body is, from 0" }),
        shards: z.coerce.number().int().min(1).max(10_000).default(1).meta({ description: "with `pack`: how many shards the pack has" }),
        dim: z.coerce.number().int().min(1).max(65536).meta({ description: "embedding length (float32 values per record)", example: 576 }),
        items: z.enum(["0", "1"]).default("1").describe("ignored with `pack`: a pack's records are stored only as the pack"),
      }),
      body: binaryBody("application/octet-stream"),
    },
    responses: { 200: jsonResponse("Stored", embeddingsStoredResponseSchema, { stored: 400 }), 400: errors[400], 403: errors[403], 409: errors[409], 411: errors[411], 413: errors[413] },
  }),
  async (c) => {
    const { id, key } = c.req.valid("param");
    const job = await requireLease(c, id);
    const { pack, shard, shards, dim } = c.req.valid("query");
    if (pack) {
      // Streamed into R2, each record's hash checked against the snapshot on the way. Peak memory: the snapshot's
      // hashes (about 3 MB for 20,000 images) and one chunk.
      if (shard >= shards) throw new ApiError("invalid_request", `Shard ${shard} of ${shards}: shards are numbered from 0.`, { field: "shard" });
      const snapshot = await snapshotPack(c.var.db, job.datasetId, job.datasetVersion);
      if (pack !== snapshot.id) throw new ApiError("not_leased", "A pack can only be stored under the leased job's own pack id (the sha256 of its sorted image hashes).", { pack });
      const { stream, length } = bodyStream(c.req.raw, EMBEDDING_BODY_MAX_BYTES, "embeddings");
      return c.json({ stored: await writeEmbeddingPackShard(c.env.BUCKET, job.projectId, key, dim, { id: pack, shard, shards }, stream, length, snapshot.shas) }, 200);
    }
    // Items: held once (at most 32 MB) while each record is checked and stored under its image hash.
    const bytes = await readBodyLimited(c.req.raw, EMBEDDING_BODY_MAX_BYTES, "embeddings");
    const shas = recordShas(bytes, dim);
    if (shas.length > EMBEDDING_ITEMS_MAX_RECORDS) throw new ApiError("payload_too_large", `${shas.length} records in one body; send at most ${EMBEDDING_ITEMS_MAX_RECORDS} per request.`, { limit_records: EMBEDDING_ITEMS_MAX_RECORDS });
    const allowed = await shasInSnapshot(c.var.db, job.datasetId, job.datasetVersion, shas);
    const outside = shas.find((sha) => !allowed.has(sha));
    if (outside) throw new ApiError("not_leased", `Image ${outside} is not in the leased job's dataset snapshot; only its images' embeddings can be stored.`, { sha256: outside });
    return c.json({ stored: await writeEmbeddings(c.env.BUCKET, job.projectId, key, dim, bytes) }, 200);
  },
);

// ---------------------------------------------------------------- backbone files
runnerRoutes.openapi(
  createRoute({
    method: "get", path: "/runner/jobs/{id}/backbone/{file}", tags: ["runner"], security: runnerSecurity, summary: "The leased job's backbone's model.json or weights.bin (X-Lease-Token)",
    request: { params: jobIdParam.extend({ file: z.enum(["model.json", "weights.bin"]).meta({ description: "which file" }) }), headers: leaseTokenHeader },
    responses: { 200: binaryResponse("The file", "application/json", "application/octet-stream"), 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id, file } = c.req.valid("param");
    const job = await requireLease(c, id);
    // Peak memory: one chunk: the file streams from R2.
    const object = await readJobBackboneFile(c.var.db, c.env.BUCKET, job, file);
    if (!object) throw new ApiError("backbone_file_not_found", `No ${file} stored for the job's backbone '${job.backbone}'.`);
    return new Response(object.body, { headers: { "content-length": String(object.size) } });
  },
);

runnerRoutes.openapi(
  createRoute({
    method: "put", path: "/runner/backbones/{id}/{file}", tags: ["runner"], security: runnerSecurity,
    summary: "Publish a builtin backbone's file to R2, once, and only the bytes whose sha256 the catalog pins (409 builtin_file_mismatch otherwise)",
    request: {
      params: z.object({ id: z.string().meta({ description: "the builtin backbone's id", example: "mobilenet_v2" }), file: z.enum(["model.json", "weights.bin"]).meta({ description: "which file" }) }),
      body: binaryBody("application/octet-stream", "application/json"),
    },
    responses: { 200: jsonResponse("Stored, or already there (stored: 0)", z.object({ stored: z.number().int().describe("bytes written; 0 when the file was already there") }), { stored: 10_485_760 }), 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id, file } = c.req.valid("param");
    const builtin = findBuiltinBackbone(id);
    if (!builtin) throw new ApiError("backbone_not_found", `'${id}' is not a builtin backbone; user backbones are uploaded with POST /v1/backbones.`);
    // Streamed into R2, which checks the pinned sha256 as it stores (peak memory: one chunk, about 64 KB).
    const { stream, length } = bodyStream(c.req.raw, builtin.files?.[file]?.bytes ?? 0, file);
    return c.json({ stored: await publishBuiltinBackboneFile(c.env.BUCKET, builtin, file, stream, length) }, 200);
  },
);

/** The image hashes of wire records (32-byte sha256 + dim float32); 400 when the body is not whole records. */
function recordShas(body: Uint8Array, dim: number): string[] {
  const recordBytes = EMBEDDING_RECORD_HEADER_BYTES + dim * 4;
  if (body.length % recordBytes !== 0) {
    throw new ApiError("invalid_embedding_records", `The body is ${body.length} bytes, not a whole number of ${recordBytes}-byte records (32-byte sha256 + ${dim} float32).`);
  }
  const out: string[] = [];
  for (let offset = 0; offset < body.length; offset += recordBytes) out.push(bytesToHex(body.subarray(offset, offset + EMBEDDING_RECORD_HEADER_BYTES)));
  return out;
}
