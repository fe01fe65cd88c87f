/**
 * D1 schema (drizzle-orm). `npm run db:generate` writes the SQL migration into migrations/; wrangler applies it.
 * Timestamps are ISO 8601 UTC strings: sortable, readable in `wrangler d1 execute`, and what the API returns.
 */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

const nowSql = () => sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`;
/** When the row was created: set once on insert, never updated. */
const createdAt = () => text("created_at").notNull().default(nowSql());
/**
 * When the row last changed: drizzle sets it on every insert and every update (no bound parameter: the SQL clock).
 * Migration 0001 added it with a constant default ('' is never read: drizzle always writes it) and backfilled it from
 * created_at, because SQLite cannot add a column whose default is an expression.
 */
const updatedAt = () => text("updated_at").notNull().default(nowSql()).$onUpdateFn(nowSql);

export const projects = sqliteTable("projects", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  /** Operator overrides of the deployment's default quotas (services/quotas.ts), e.g. {"images": 100000}; null: defaults. */
  quotas: text("quotas", { mode: "json" }),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** API keys are stored as SHA-256 hashes; the secret is shown once at creation. */
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull(),
    name: text("name").notNull(),
    secretHash: text("secret_hash").notNull(),
    /** First characters of the secret, so a user can tell keys apart in a list. */
    secretPrefix: text("secret_prefix").notNull(),
    /** "full": the whole project API; "predict": predict and read models and aliases only (a key shipped in an app). */
    scope: text("scope", { enum: ["full", "predict"] }).notNull().default("full"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    lastUsedAt: text("last_used_at"),
    revokedAt: text("revoked_at"),
  },
  (t) => [uniqueIndex("api_keys_secret_hash").on(t.secretHash), index("api_keys_project").on(t.projectId, t.createdAt, t.id)],
);

export const datasets = sqliteTable(
  "datasets",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull(),
    name: text("name").notNull(),
    status: text("status", { enum: ["empty", "ingesting", "ready", "failed"] }).notNull().default("empty"),
    /** The version uploads write into. */
    version: integer("version").notNull().default(1),
    /** Highest version a job references; that version and older ones are immutable snapshots. */
    frozenVersion: integer("frozen_version").notNull().default(0),
    error: text("error"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("datasets_project").on(t.projectId, t.createdAt, t.id)],
);

/**
 * One row per image per version range: a row is part of snapshot v when added_version <= v and
 * (removed_version is null or removed_version > v). Bytes live in R2 under the project, keyed by sha256.
 */
export const datasetImages = sqliteTable(
  "dataset_images",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    datasetId: text("dataset_id").notNull(),
    label: text("label").notNull(),
    filename: text("filename").notNull(),
    /** "train" / "val" when the archive used train/ and val/ folders; "auto": the job's held-out fraction decides. */
    split: text("split", { enum: ["train", "val", "auto"] }).notNull().default("auto"),
    sha256: text("sha256").notNull(),
    bytes: integer("bytes").notNull(),
    format: text("format").notNull(),
    width: integer("width").notNull(),
    height: integer("height").notNull(),
    addedVersion: integer("added_version").notNull(),
    removedVersion: integer("removed_version"),
  },
  (t) => [
    uniqueIndex("dataset_images_entry").on(t.datasetId, t.split, t.label, t.filename, t.addedVersion),
    index("dataset_images_live").on(t.datasetId, t.removedVersion),
    index("dataset_images_sha").on(t.datasetId, t.sha256),
  ],
);

/** Files refused during ingestion, with the reason (kept per dataset, newest ingest first). */
export const datasetRejections = sqliteTable(
  "dataset_rejections",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    datasetId: text("dataset_id").notNull(),
    ingestId: text("ingest_id"),
    path: text("path").notNull(),
    code: text("code").notNull(),
    message: text("message").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("dataset_rejections_dataset").on(t.datasetId), uniqueIndex("dataset_rejections_entry").on(t.datasetId, t.ingestId, t.path)],
);

/** An archive being ingested in bounded chunks by the queue consumer; `cursor` is the next entry index. */
export const ingests = sqliteTable(
  "ingests",
  {
    id: text("id").primaryKey(),
    datasetId: text("dataset_id").notNull(),
    projectId: text("project_id").notNull(),
    objectKey: text("object_key").notNull(),
    status: text("status", { enum: ["queued", "running", "done", "failed"] }).notNull().default("queued"),
    cursor: integer("cursor").notNull().default(0),
    total: integer("total"),
    accepted: integer("accepted").notNull().default(0),
    rejected: integer("rejected").notNull().default(0),
    uncompressedBytes: integer("uncompressed_bytes").notNull().default(0),
    error: text("error"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("ingests_dataset").on(t.datasetId), index("ingests_active").on(t.status, t.updatedAt)],
);

/** A client-driven multipart upload of a large archive (R2 multipart underneath). */
export const uploads = sqliteTable(
  "uploads",
  {
  id: text("id").primaryKey(),
  datasetId: text("dataset_id").notNull(),
  projectId: text("project_id").notNull(),
  filename: text("filename").notNull(),
  objectKey: text("object_key").notNull(),
  r2UploadId: text("r2_upload_id").notNull(),
  partSize: integer("part_size").notNull(),
  status: text("status", { enum: ["open", "completed", "aborted"] }).notNull().default("open"),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
  },
  (t) => [index("uploads_open").on(t.status, t.updatedAt)],
);

export const uploadParts = sqliteTable(
  "upload_parts",
  {
    uploadId: text("upload_id").notNull(),
    partNumber: integer("part_number").notNull(),
    etag: text("etag").notNull(),
    bytes: integer("bytes").notNull(),
  },
  (t) => [primaryKey({ columns: [t.uploadId, t.partNumber] })],
);

/**
 * Runners, each with its own token (stored as a SHA-256 hash, shown once). A runner token reaches only what the job it
 * currently leases needs; revoking it (revoked_at) ends its access at the next request.
 */
export const runners = sqliteTable(
  "runners",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    tokenHash: text("token_hash").notNull(),
    tokenPrefix: text("token_prefix").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    lastSeenAt: text("last_seen_at"),
    revokedAt: text("revoked_at"),
  },
  (t) => [uniqueIndex("runners_token_hash").on(t.tokenHash)],
);

/** Project-owned backbones (builtin ones live in the shared catalog and need no row). */
export const backbones = sqliteTable(
  "backbones",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull(),
    name: text("name").notNull(),
    spec: text("spec", { mode: "json" }).notNull(),
    objectPrefix: text("object_prefix").notNull(),
    format: text("format").notNull(),
    paramCount: integer("param_count").notNull(),
    weightBytes: integer("weight_bytes").notNull(),
    /** Cost at batch 1, estimated from the graph at import (shared/backbone/cost.ts); null for rows imported before. */
    flops: integer("flops"),
    peakActivationBytes: integer("peak_activation_bytes"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("backbones_project").on(t.projectId, t.createdAt, t.id)],
);

/**
 * Fine-tune jobs. D1 is the source of truth; runners lease a job (lease_token, lease_expires_at), renew the lease by
 * heartbeat, and complete or fail with their token. A lease that lapses puts the job back after a backoff.
 */
export const jobs = sqliteTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull(),
    datasetId: text("dataset_id").notNull(),
    datasetVersion: integer("dataset_version").notNull(),
    backbone: text("backbone").notNull(),
    config: text("config", { mode: "json" }).notNull(),
    status: text("status", { enum: ["queued", "running", "succeeded", "failed", "canceled"] }).notNull().default("queued"),
    attempt: integer("attempt").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull().default(3),
    runAfter: text("run_after").notNull(),
    runnerId: text("runner_id"),
    leaseToken: text("lease_token"),
    leaseExpiresAt: text("lease_expires_at"),
    cancelRequested: integer("cancel_requested", { mode: "boolean" }).notNull().default(false),
    progressPhase: text("progress_phase"),
    progressDone: integer("progress_done").notNull().default(0),
    progressTotal: integer("progress_total").notNull().default(0),
    metrics: text("metrics", { mode: "json" }),
    skipped: text("skipped", { mode: "json" }),
    modelId: text("model_id"),
    error: text("error"),
    createdAt: createdAt(),
    startedAt: text("started_at"),
    finishedAt: text("finished_at"),
    updatedAt: updatedAt(),
  },
  (t) => [index("jobs_project").on(t.projectId, t.createdAt, t.id), index("jobs_queue").on(t.status, t.runAfter)],
);

/** Append-only job history for `GET /v1/jobs/:id/events` (Server-Sent Events resume from `id`). */
export const jobEvents = sqliteTable(
  "job_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    jobId: text("job_id").notNull(),
    type: text("type").notNull(),
    data: text("data", { mode: "json" }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("job_events_job").on(t.jobId, t.id), index("job_events_created").on(t.createdAt)],
);

export const models = sqliteTable(
  "models",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull(),
    jobId: text("job_id").notNull(),
    datasetId: text("dataset_id").notNull(),
    datasetVersion: integer("dataset_version").notNull(),
    backbone: text("backbone").notNull(),
    labels: text("labels", { mode: "json" }).notNull(),
    metrics: text("metrics", { mode: "json" }).notNull(),
    objectPrefix: text("object_prefix").notNull(),
    headBytes: integer("head_bytes").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("models_project").on(t.projectId, t.createdAt, t.id), uniqueIndex("models_job").on(t.jobId)],
);

export const aliases = sqliteTable(
  "aliases",
  {
    projectId: text("project_id").notNull(),
    name: text("name").notNull(),
    modelId: text("model_id").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.name] })],
);

export const aliasHistory = sqliteTable(
  "alias_history",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    projectId: text("project_id").notNull(),
    name: text("name").notNull(),
    modelId: text("model_id").notNull(),
    previousModelId: text("previous_model_id"),
    createdAt: createdAt(),
  },
  (t) => [index("alias_history_name").on(t.projectId, t.name, t.id)],
);


/**
 * Deletions that continue in the background (queue + scheduled sweep) because their size is unbounded: the user-facing
 * row is gone at once, and `cursor` (the last dataset_images.id handled) makes every step resumable and idempotent.
 */
export const deletions = sqliteTable(
  "deletions",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull(),
    kind: text("kind", { enum: ["dataset"] }).notNull(),
    targetId: text("target_id").notNull(),
    status: text("status", { enum: ["pending", "done"] }).notNull().default("pending"),
    cursor: integer("cursor").notNull().default(0),
    rowsDeleted: integer("rows_deleted").notNull().default(0),
    objectsDeleted: integer("objects_deleted").notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("deletions_pending").on(t.status, t.updatedAt)],
);

/** Open `GET /v1/jobs/:id/events` streams, so each key holds a bounded number; a stream renews `expires_at` while it runs. */
export const eventStreams = sqliteTable(
  "event_streams",
  {
    id: text("id").primaryKey(),
    keyId: text("key_id").notNull(),
    jobId: text("job_id").notNull(),
    expiresAt: text("expires_at").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("event_streams_key").on(t.keyId, t.expiresAt)],
);

/** Webhook endpoints (../shared API.md, "Webhooks"). `secret` signs deliveries (HMAC-SHA256), so it is kept as is. */
export const webhooks = sqliteTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull(),
    url: text("url").notNull(),
    events: text("events", { mode: "json" }).$type<string[]>().notNull(),
    secret: text("secret").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("webhooks_project").on(t.projectId, t.createdAt, t.id)],
);

/**
 * One row per (webhook, event): the unique index makes an event recorded twice (a retried request, a duplicate queue
 * message) one delivery, so a receiver sees each event once after it answers 2xx.
 */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    webhookId: text("webhook_id").notNull(),
    projectId: text("project_id").notNull(),
    eventId: text("event_id").notNull(),
    event: text("event").notNull(),
    payload: text("payload").notNull(),
    status: text("status", { enum: ["pending", "delivered", "failed"] }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    deliveredAt: text("delivered_at"),
    /**
     * When the queue should next run this delivery (now at insert, now + backoff after a failed attempt). The sweep
     * re-enqueues pending deliveries whose time passed long ago: their queue message died with its process.
     */
    nextAttemptAt: text("next_attempt_at"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("webhook_deliveries_event").on(t.webhookId, t.eventId), index("webhook_deliveries_webhook").on(t.webhookId, t.createdAt, t.id), index("webhook_deliveries_pending").on(t.status, t.nextAttemptAt)],
);
