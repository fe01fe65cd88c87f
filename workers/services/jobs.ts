/**
 * Fine-tune jobs and the lease protocol runners speak. D1 is the source of truth; every transition is one
 * conditional UPDATE (or one batch = one transaction), so concurrent runners can never both hold a job, and a runner
 * whose lease lapsed can no longer change anything.
 *
 *   queued --lease--> running --complete--> succeeded
 *                        |  \--fail(retryable) / lease expired--> queued (after backoff) ... --> failed (max attempts)
 *                        \--cancel requested, seen at heartbeat--> canceled
 *
 * Leases last LEASE_MS and are renewed by heartbeats every HEARTBEAT_MS: a runner that misses five heartbeats in a
 * row (killed, frozen, cut off) loses the job, and a cancel reaches a running job within one heartbeat. Backoff
 * after a failed attempt is exp(min(attempt, 10)) seconds, as graphile-worker does.
 */
import { and, asc, desc, eq, gt, inArray, isNull, lt, sql } from "drizzle-orm";
import { DEFAULT_QUOTAS, runningJobsOfProject, underRunningQuota } from "./quotas";
import { BUILTIN_BACKBONES, DEFAULT_BACKBONE, findBuiltinBackbone } from "../../shared/catalog";
import { ApiError, notFound } from "../../shared/errors";
import { newId, randomString } from "../../shared/ids";
import { augmentationSchema, DEFAULT_JOB_HEAD, NO_AUGMENTATION, type Augmentation, hyperparametersSchema, jobConfigSchema, jobHeadSpecSchema, type CreateJobRequest, type EpochMetrics, type JobConfig, type Progress } from "../../shared/schemas";
import { jobEvents, jobs, models } from "../db/schema";
import { resolveBackbone } from "./backbones";
import { freezeVersion, getDataset, labelStats, listSnapshotImages, notTrainableReason } from "./datasets";
import type { Db } from "./db";
import { nowIso } from "./db";
import { afterCursor, newestFirst, pageOf, type PageQuery } from "./pagination";

export type JobRow = typeof jobs.$inferSelect;

export const LEASE_MS = 15_000;
export const HEARTBEAT_MS = 3_000;
export const DEFAULT_MAX_ATTEMPTS = 3;
export const backoffSeconds = (attempt: number) => Math.exp(Math.min(attempt, 10));

const iso = (ms: number) => new Date(ms).toISOString();
const terminal = ["succeeded", "failed", "canceled"] as const;

/** The model id a job's successful attempt registers: fixed per job, so retries overwrite instead of duplicating. */
export const modelIdForJob = (jobId: string) => `mdl_${jobId.slice("job_".length)}`;

export async function appendEvent(db: Db, jobId: string, type: string, data: Record<string, unknown>) {
  await db.insert(jobEvents).values({ jobId, type, data });
}
const eventStatement = (db: Db, jobId: string, type: string, data: Record<string, unknown>) => db.insert(jobEvents).values({ jobId, type, data });
/**
 * The job's event, inserted only if the lease-checked update before it in the same batch took effect: every update
 * that ends a lease sets updated_at to `now` and clears the token, so a report whose lease lapsed between its check
 * and its batch (the batch's update matches no row) appends nothing and the caller answers lease_lost.
 */
const eventIfLeaseEnded = (db: Db, jobId: string, now: string, type: string, data: Record<string, unknown>) =>
  db.insert(jobEvents).select(
    db
      .select({ id: sql<number>`null`.as("id"), jobId: jobs.id, type: sql<string>`${type}`.as("type"), data: sql<string>`${JSON.stringify(data)}`.as("data"), createdAt: sql<string>`${now}`.as("created_at") })
      .from(jobs)
      .where(and(eq(jobs.id, jobId), eq(jobs.updatedAt, now), isNull(jobs.leaseToken))),
  );

export async function createJob(db: Db, input: { projectId: string; datasetId: string; datasetVersion: number; backbone: string; config: JobConfig; maxAttempts?: number }): Promise<JobRow> {
  const now = nowIso();
  const id = newId("job");
  const [row] = await db.batch([
    db.insert(jobs).values({ id, projectId: input.projectId, datasetId: input.datasetId, datasetVersion: input.datasetVersion, backbone: input.backbone, config: input.config, maxAttempts: input.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, runAfter: now, createdAt: now, updatedAt: now }).returning(),
    eventStatement(db, id, "status", { status: "queued" }),
  ]);
  return row[0];
}

export async function getJob(db: Db, projectId: string, id: string): Promise<JobRow | null> {
  return (await db.select().from(jobs).where(and(eq(jobs.id, id), eq(jobs.projectId, projectId))).get()) ?? null;
}

export function jobView(row: JobRow) {
  const metrics = (row.metrics as { epochs?: EpochMetrics[] } | null) ?? {};
  return {
    id: row.id,
    dataset_id: row.datasetId,
    dataset_version: row.datasetVersion,
    backbone: row.backbone,
    config: row.config as JobConfig,
    status: row.status,
    attempt: row.attempt,
    max_attempts: row.maxAttempts,
    progress: { phase: row.progressPhase, done: row.progressDone, total: row.progressTotal },
    metrics: { epochs: [] as EpochMetrics[], ...metrics } as { epochs: EpochMetrics[] } & Record<string, unknown>,
    skipped: (row.skipped as { path: string; code: string; message: string }[] | null) ?? [],
    cancel_requested: row.cancelRequested,
    model_id: row.modelId,
    error: row.error,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
    started_at: row.startedAt,
    finished_at: row.finishedAt,
  };
}

/** A job that a sweep ended (failed: attempts used up; canceled: a cancel was pending), for its webhook. */
export interface SweptJobEnd {
  job: Pick<JobRow, "id" | "projectId" | "datasetId">;
  status: "failed" | "canceled";
  error: string | null;
}

/** Called once per job a sweep ended (after its row changed): services/webhooks.ts jobEndedNotifier sends the webhook. */
export type OnSweptJobEnd = (ended: SweptJobEnd) => Promise<void>;

/**
 * Puts jobs whose lease lapsed back in the queue (after backoff), or fails them when attempts are used up, or
 * cancels them when a cancel was pending. Runs before every lease and from the scheduled sweep (never on a read).
 * At most SWEEP_BATCH jobs per call (2 statements each), so a call stays bounded whatever piles up.
 * `onEnded` hears of each job this call failed or canceled (only the sweep that changed the row calls it), so a
 * sweep-failed job sends `job.failed` like a runner-reported failure.
 */
export async function sweepExpiredLeases(db: Db, nowMs = Date.now(), onEnded?: OnSweptJobEnd): Promise<number> {
  const now = iso(nowMs);
  const expired = await db.select().from(jobs).where(and(eq(jobs.status, "running"), lt(jobs.leaseExpiresAt, now))).limit(SWEEP_BATCH).all();
  let swept = 0;
  for (const job of expired) {
    // No runner id or host in it: tenants read this, and which machine ran their job is the operator's business.
    const reason = `Attempt ${job.attempt} lost its runner: no heartbeat for ${LEASE_MS / 1000} s.`;
    const lastError = job.error ? `${reason} Last error: ${job.error}` : reason;
    const next = job.cancelRequested
      ? { status: "canceled" as const, finishedAt: now, error: null }
      : job.attempt >= job.maxAttempts
        ? { status: "failed" as const, finishedAt: now, error: `Failed after ${job.attempt} attempts. ${lastError}` }
        : { status: "queued" as const, runAfter: iso(nowMs + backoffSeconds(job.attempt) * 1000), error: lastError };
    const [updated] = await db.batch([
      db.update(jobs).set({ ...next, leaseToken: null, leaseExpiresAt: null, runnerId: null, updatedAt: now }).where(and(eq(jobs.id, job.id), eq(jobs.leaseToken, job.leaseToken!), eq(jobs.status, "running"))).returning({ id: jobs.id }),
      // Only when the update above changed the row: two sweeps racing for one job append one event, not two.
      eventIfChanged(db, job.id, "status", { status: next.status, reason }, now),
    ]);
    if ((updated as unknown[]).length === 0) continue;
    swept++;
    if (onEnded && next.status !== "queued") await onEnded({ job, status: next.status, error: next.error });
  }
  return swept;
}

const SWEEP_BATCH = 50;

/**
 * An event insert that takes effect only if the statement just before it in the same batch changed a row (SQLite's
 * changes() reads the previous statement of the connection; a D1 batch runs its statements in order on one).
 */
function eventIfChanged(db: Db, jobId: string, type: string, data: Record<string, unknown>, now: string) {
  return db.insert(jobEvents).select(
    db
      .select({ id: sql<number>`null`.as("id"), jobId: sql<string>`${jobId}`.as("job_id"), type: sql<string>`${type}`.as("type"), data: sql<string>`${JSON.stringify(data)}`.as("data"), createdAt: sql<string>`${now}`.as("created_at") })
      .from(jobs)
      .where(and(eq(jobs.id, jobId), sql`changes() > 0`)),
  );
}

export interface Lease {
  job: JobRow;
  leaseToken: string;
  leaseExpiresAt: string;
}

/** Claims the oldest runnable job for `runnerId`, or returns null. One UPDATE: two runners never get the same job. */
export async function leaseJob(db: Db, runnerId: string, nowMs = Date.now(), runningQuota = DEFAULT_QUOTAS.running_jobs, onEnded?: OnSweptJobEnd): Promise<Lease | null> {
  await sweepExpiredLeases(db, nowMs, onEnded);
  const now = iso(nowMs);
  const leaseToken = `lease_${randomString(16)}`;
  const leaseExpiresAt = iso(nowMs + LEASE_MS);
  const candidate = db
    .select({ id: jobs.id })
    .from(jobs)
    .where(and(eq(jobs.status, "queued"), sql`${jobs.runAfter} <= ${now}`, eq(jobs.cancelRequested, false), underRunningQuota(runningQuota)))
    // Fair across projects: the project with the fewest running jobs first, so one tenant's 100 queued jobs never
    // starve another's one; within that, creation order (created_at never changes; the rowid breaks ties within one
    // millisecond, ids being random).
    .orderBy(runningJobsOfProject, asc(jobs.createdAt), asc(sql`${jobs}.rowid`))
    .limit(1);
  const claimed = await db
    .update(jobs)
    .set({ status: "running", attempt: sql`${jobs.attempt} + 1`, runnerId, leaseToken, leaseExpiresAt, startedAt: sql`coalesce(${jobs.startedAt}, ${now})`, progressPhase: "starting", progressDone: 0, progressTotal: 0, updatedAt: now })
    .where(and(eq(jobs.id, sql`(${candidate})`), eq(jobs.status, "queued")))
    .returning()
    .get();
  if (!claimed) return null;
  await appendEvent(db, claimed.id, "status", { status: "running", attempt: claimed.attempt });
  return { job: claimed, leaseToken, leaseExpiresAt };
}

/** The lease condition every runner report must meet: same token, still running, not expired. */
const holdsLease = (jobId: string, leaseToken: string, nowMs: number) =>
  and(eq(jobs.id, jobId), eq(jobs.leaseToken, leaseToken), eq(jobs.status, "running"), gt(jobs.leaseExpiresAt, iso(nowMs)));

export function leaseLost(jobId: string) {
  return new ApiError("lease_lost", `This runner no longer holds job '${jobId}' (lease expired, job canceled, finished or taken by another runner). Drop the job; nothing was changed.`, { job_id: jobId });
}

/** The job while `leaseToken` holds its lease; otherwise 409 `lease_lost`. */
/**
 * The job while `leaseToken` holds its lease, and (when given) while `runnerId` is the runner that leased it: a lease
 * token leaked to another runner is of no use to it. Otherwise 409 lease_lost.
 */
export async function getLeasedJob(db: Db, jobId: string, leaseToken: string, nowMs = Date.now(), runnerId?: string): Promise<JobRow> {
  const job = await db.select().from(jobs).where(runnerId ? and(holdsLease(jobId, leaseToken, nowMs), eq(jobs.runnerId, runnerId)) : holdsLease(jobId, leaseToken, nowMs)).get();
  if (!job) throw leaseLost(jobId);
  return job;
}

/**
 * Everything a runner needs to run a leased job: the job and its config, the lease, the backbone, and the images of
 * the dataset snapshot the job was created with (label, split, path), in a stable order.
 */
export async function describeLease(db: Db, lease: Lease) {
  const { job } = lease;
  const backbone = await resolveBackbone(db, job.projectId, job.backbone);
  const images = await listSnapshotImages(db, job.datasetId, job.datasetVersion);
  return {
    job: { id: job.id, project_id: job.projectId, dataset_id: job.datasetId, dataset_version: job.datasetVersion, attempt: job.attempt, max_attempts: job.maxAttempts, config: jobConfigSchema.parse(job.config), model_id: modelIdForJob(job.id) },
    lease: { token: lease.leaseToken, expires_at: lease.leaseExpiresAt, lease_ms: LEASE_MS, heartbeat_ms: HEARTBEAT_MS },
    backbone: { id: backbone.id, name: backbone.name, builtin: backbone.builtin, spec: backbone.spec, weights_version: backbone.weightsVersion, format: backbone.format },
    images: images.map((i) => ({ sha256: i.sha256, label: i.label, split: i.split, path: `${i.split === "auto" ? "" : `${i.split}/`}${i.label}/${i.filename}` })),
  };
}

/**
 * Queues a fine-tune job on the dataset's current version, which it freezes: later uploads start a new version and
 * leave this snapshot untouched. 404 for a dataset or backbone the project does not have, 409 `dataset_not_trainable`
 * with the reason (too few images per label, still ingesting, ...).
 */
/**
 * A job's training cost is epochs x images passes of the head over an embedding; 20 million (say 200 epochs of
 * 100,000 images, a few minutes of head training on a runner) bounds what one request can make a shared runner do.
 * The head's own size is bounded by its schema (at most 3 hidden layers of 4,096).
 */
export const MAX_EPOCH_IMAGES = 20_000_000;

export function checkJobCost(images: number, epochs: number): void {
  const requested = images * epochs;
  if (requested > MAX_EPOCH_IMAGES) {
    throw new ApiError("job_too_costly", `${epochs} epochs over ${images} images is ${requested} image-epochs; the limit is ${MAX_EPOCH_IMAGES}. Use fewer epochs (early stopping usually ends far sooner).`, { limit: MAX_EPOCH_IMAGES, requested, epochs, images });
  }
}

/** 422 `fine_tune_unsupported` unless the catalog knows `blocks` trainable blocks of the backbone (and no augmentation is asked). */
export function checkFineTunable(backbone: { id: string; name: string }, blocks: number, augmentation: Augmentation = NO_AUGMENTATION): void {
  const known = findBuiltinBackbone(backbone.id)?.fineTuneBlocks ?? 0;
  if (blocks <= known && (augmentation.views > 0 || augmentation.tta !== "none")) {
    // The fine-tuned blocks train on the cut activations of the original images only, and the edge runs them once per image.
    throw new ApiError("fine_tune_unsupported", "fine_tune does not combine with augmentation (views or tta) yet: leave one of them out.", { backbone: backbone.id, blocks, max_blocks: known });
  }
  if (blocks <= known) return;
  const supported = BUILTIN_BACKBONES.filter((entry) => entry.fineTuneBlocks).map((entry) => `${entry.name} (up to ${entry.fineTuneBlocks} blocks)`);
  throw new ApiError(
    "fine_tune_unsupported",
    known === 0
      ? `Backbone '${backbone.name}' has no blocks edgetune knows how to fine-tune; fine_tune works with ${supported.join(", ")}. Leave fine_tune out to train the head only.`
      : `Backbone '${backbone.name}' can fine-tune at most ${known} blocks; ${blocks} were asked.`,
    { backbone: backbone.id, blocks, max_blocks: known },
  );
}

export async function startJob(db: Db, projectId: string, request: CreateJobRequest): Promise<JobRow> {
  const dataset = await getDataset(db, projectId, request.dataset_id);
  if (!dataset) throw notFound("dataset", request.dataset_id);
  const { labels } = await labelStats(db, dataset.id, dataset.version);
  const reason = dataset.status === "ready" ? notTrainableReason(dataset.status, labels) : `The dataset is ${dataset.status}${dataset.status === "ingesting" ? "; wait until it is ready" : ""}.`;
  if (reason) throw new ApiError("dataset_not_trainable", reason, { dataset_id: dataset.id, status: dataset.status });
  const backbone = await resolveBackbone(db, projectId, request.backbone ?? DEFAULT_BACKBONE.name);
  const config = { kind: "train" as const, head: jobHeadSpecSchema.parse(request.head ?? DEFAULT_JOB_HEAD), hyperparameters: hyperparametersSchema.parse(request.hyperparameters ?? {}), augmentation: augmentationSchema.parse(request.augmentation ?? {}), ...(request.fine_tune ? { fine_tune: request.fine_tune } : {}) };
  if (request.fine_tune) checkFineTunable(backbone, request.fine_tune.blocks, config.augmentation);
  // Each augmentation view is one more training row per image.
  checkJobCost(labels.reduce((n, l) => n + l.count, 0) * (1 + config.augmentation.views), config.hyperparameters.epochs);
  const version = await freezeVersion(db, dataset.id);
  return createJob(db, { projectId, datasetId: dataset.id, datasetVersion: version, backbone: backbone.id, config, maxAttempts: request.max_attempts });
}


/** Renews the lease and records progress; tells the runner whether the user asked to cancel. */
export async function heartbeat(db: Db, jobId: string, leaseToken: string, progress: Progress | undefined, nowMs = Date.now()): Promise<{ cancelRequested: boolean; leaseExpiresAt: string }> {
  const leaseExpiresAt = iso(nowMs + LEASE_MS);
  const set: Partial<typeof jobs.$inferInsert> = { leaseExpiresAt, updatedAt: iso(nowMs) };
  if (progress) Object.assign(set, { progressPhase: progress.phase, progressDone: progress.done, progressTotal: progress.total });
  const row = await db.update(jobs).set(set).where(holdsLease(jobId, leaseToken, nowMs)).returning({ cancelRequested: jobs.cancelRequested, phase: jobs.progressPhase }).get();
  if (!row) throw leaseLost(jobId);
  if (progress) await appendEvent(db, jobId, "progress", { ...progress });
  return { cancelRequested: row.cancelRequested, leaseExpiresAt };
}

/** Appends epochs' metrics (kept on the job, one `metrics` event each). Runners send them in batches. */
/**
 * Appends epochs to the job's metrics and its event stream: two statements and four bound parameters whatever the
 * count (the epochs travel as one JSON parameter; D1 allows 100 parameters per statement and 1,000 queries per
 * request, so one parameter or one statement per epoch fails a large report in production).
 */
export async function recordEpochs(db: Db, jobId: string, leaseToken: string, epochs: Record<string, unknown>[], nowMs = Date.now()) {
  if (epochs.length === 0) return;
  const now = iso(nowMs);
  const batch = JSON.stringify(epochs);
  const current = sql`coalesce(${jobs.metrics}, '{"epochs":[]}')`;
  // json_group_array(... order by): the old epochs, then the new ones, each in array order.
  const appended = sql`json_set(${current}, '$.epochs', (select json_group_array(json(v) order by s, k) from (select 0 as s, key as k, value as v from json_each(${current}, '$.epochs') union all select 1, key, value from json_each(${batch}))))`;
  const [updated] = await db.batch([
    db.update(jobs).set({ metrics: appended, updatedAt: now }).where(holdsLease(jobId, leaseToken, nowMs)).returning({ id: jobs.id }),
    // Inserted only when the update took effect (same transaction, the job's updated_at is this report's).
    db.insert(jobEvents).select(
      db
        .select({ id: sql<number>`null`.as("id"), jobId: sql<string>`"jobs"."id"`.as("job_id"), type: sql<string>`'metrics'`.as("type"), data: sql<string>`e.value`.as("data"), createdAt: sql<string>`${now}`.as("created_at") })
        .from(sql`${jobs}, json_each(${batch}) as e`)
        .where(sql`"jobs"."id" = ${jobId} and "jobs"."lease_token" = ${leaseToken} and "jobs"."updated_at" = ${now}`)
        .orderBy(sql`e.key`),
    ),
  ]);
  if ((updated as unknown[]).length === 0) throw leaseLost(jobId);
}


export interface CompletedModel {
  labels: string[];
  metrics: Record<string, unknown>;
  headBytes: number;
  objectPrefix: string;
  epochs: unknown[];
  skipped: { path: string; code: string; message: string }[];
  extra?: Record<string, unknown>;
}

/**
 * Registers the model and marks the job succeeded, in one transaction, only while the caller holds the lease. A late
 * or repeated report gets `lease_lost` and changes nothing; the model id is fixed per job, so there is one model.
 */
export async function completeJob(db: Db, jobId: string, leaseToken: string, model: CompletedModel, nowMs = Date.now()): Promise<string> {
  const now = iso(nowMs);
  const job = await db.select().from(jobs).where(holdsLease(jobId, leaseToken, nowMs)).get();
  if (!job) throw leaseLost(jobId);
  const modelId = modelIdForJob(jobId);
  const results = await db.batch([
    db
      .update(jobs)
      .set({ status: "succeeded", modelId, finishedAt: now, leaseToken: null, leaseExpiresAt: null, progressPhase: "done", progressDone: sql`${jobs.progressTotal}`, skipped: model.skipped, metrics: { epochs: model.epochs, ...(model.extra ?? {}) }, error: null, updatedAt: now })
      .where(holdsLease(jobId, leaseToken, nowMs))
      .returning({ id: jobs.id }),
    // Inserted only if the update above took effect (same transaction): a refused report registers nothing.
    db
      .insert(models)
      .select(
        db
          .select({
            id: sql<string>`${modelId}`.as("id"),
            projectId: jobs.projectId,
            jobId: jobs.id,
            datasetId: jobs.datasetId,
            datasetVersion: jobs.datasetVersion,
            backbone: jobs.backbone,
            labels: sql<string>`${JSON.stringify(model.labels)}`.as("labels"),
            metrics: sql<string>`${JSON.stringify(model.metrics)}`.as("metrics"),
            objectPrefix: sql<string>`${model.objectPrefix}`.as("object_prefix"),
            headBytes: sql<number>`${model.headBytes}`.as("head_bytes"),
            createdAt: sql<string>`${now}`.as("created_at"),
            updatedAt: sql<string>`${now}`.as("updated_at"),
          })
          .from(jobs)
          .where(and(eq(jobs.id, jobId), eq(jobs.status, "succeeded"), eq(jobs.modelId, modelId), eq(jobs.finishedAt, now))),
      )
      .onConflictDoNothing(),
    eventIfLeaseEnded(db, jobId, now, "status", { status: "succeeded", model_id: modelId }),
  ]);
  if ((results[0] as unknown[]).length === 0) throw leaseLost(jobId);
  return modelId;
}

/**
 * Marks a job that makes no model (a diagnostics job) succeeded, only while the caller holds the lease; its result
 * was stored by the caller first. A late or repeated report gets `lease_lost` and changes nothing.
 */
export async function completeJobWithoutModel(db: Db, jobId: string, leaseToken: string, extra: Record<string, unknown>, nowMs = Date.now()): Promise<void> {
  const now = iso(nowMs);
  if (!(await db.select({ id: jobs.id }).from(jobs).where(holdsLease(jobId, leaseToken, nowMs)).get())) throw leaseLost(jobId);
  const results = await db.batch([
    db
      .update(jobs)
      .set({ status: "succeeded", finishedAt: now, leaseToken: null, leaseExpiresAt: null, progressPhase: "done", metrics: { epochs: [], ...extra }, error: null, updatedAt: now })
      .where(holdsLease(jobId, leaseToken, nowMs))
      .returning({ id: jobs.id }),
    eventIfLeaseEnded(db, jobId, now, "status", { status: "succeeded" }),
  ]);
  if ((results[0] as unknown[]).length === 0) throw leaseLost(jobId);
}

/**
 * A runner reports failure (or that it stopped on a cancel). Retryable failures go back to the queue with backoff.
 * `release`: the runner is shutting down (SIGTERM) and gives the job back: queued at once, the attempt not counted.
 */
export async function failJob(db: Db, jobId: string, leaseToken: string, report: { error: string; retryable: boolean; canceled?: boolean; release?: boolean }, nowMs = Date.now()): Promise<JobRow["status"]> {
  const now = iso(nowMs);
  const job = await db.select().from(jobs).where(holdsLease(jobId, leaseToken, nowMs)).get();
  if (!job) throw leaseLost(jobId);
  const error = report.error.trim() || "The runner reported a failure without a message.";
  const next = report.canceled || job.cancelRequested
    ? { status: "canceled" as const, finishedAt: now, error: null }
    : report.release
      ? { status: "queued" as const, runAfter: now, attempt: Math.max(0, job.attempt - 1), error: job.error }
      : report.retryable && job.attempt < job.maxAttempts
      ? { status: "queued" as const, runAfter: iso(nowMs + backoffSeconds(job.attempt) * 1000), error }
      : { status: "failed" as const, finishedAt: now, error: job.attempt > 1 ? `Failed after ${job.attempt} attempts: ${error}` : error };
  const [updated] = await db.batch([
    db.update(jobs).set({ ...next, leaseToken: null, leaseExpiresAt: null, runnerId: null, updatedAt: now }).where(holdsLease(jobId, leaseToken, nowMs)).returning({ id: jobs.id }),
    eventIfLeaseEnded(db, jobId, now, "status", { status: next.status, error: next.error }),
  ]);
  if ((updated as unknown[]).length === 0) throw leaseLost(jobId);
  return next.status;
}

/** User cancel: a queued job is canceled at once; a running one at its runner's next heartbeat. */
export async function cancelJob(db: Db, job: JobRow, nowMs = Date.now()): Promise<JobRow> {
  const now = iso(nowMs);
  if ((terminal as readonly string[]).includes(job.status)) return job;
  if (job.status === "queued") {
    const row = await db.update(jobs).set({ status: "canceled", cancelRequested: true, finishedAt: now, updatedAt: now }).where(and(eq(jobs.id, job.id), eq(jobs.status, "queued"))).returning().get();
    if (row) {
      await appendEvent(db, job.id, "status", { status: "canceled" });
      return row;
    }
  }
  const row = await db.update(jobs).set({ cancelRequested: true, updatedAt: now }).where(and(eq(jobs.id, job.id), inArray(jobs.status, ["queued", "running"]))).returning().get();
  if (row) await appendEvent(db, job.id, "cancel_requested", {});
  return row ?? (await db.select().from(jobs).where(eq(jobs.id, job.id)).get())!;
}

export async function listEvents(db: Db, jobId: string, afterId: number, limit = 200) {
  return db.select().from(jobEvents).where(and(eq(jobEvents.jobId, jobId), gt(jobEvents.id, afterId))).orderBy(asc(jobEvents.id)).limit(limit).all();
}

/** One page of the project's jobs, newest first (services/pagination.ts), optionally of one dataset or status. */
export async function listJobs(db: Db, projectId: string, filter: { datasetId?: string; status?: string }, page: PageQuery) {
  const conditions = [eq(jobs.projectId, projectId), afterCursor(jobs.createdAt, jobs.id, page.cursor)];
  if (filter.datasetId) conditions.push(eq(jobs.datasetId, filter.datasetId));
  if (filter.status) conditions.push(eq(jobs.status, filter.status as JobRow["status"]));
  const rows = await db.select().from(jobs).where(and(...conditions)).orderBy(...newestFirst(jobs.createdAt, jobs.id)).limit(page.limit + 1).all();
  const { items, nextCursor } = pageOf(rows, page.limit, (r) => r);
  return { jobs: items.map(jobView), next_cursor: nextCursor };
}

export const isTerminal = (status: string) => (terminal as readonly string[]).includes(status);
export const parseJobConfig = (value: unknown) => jobConfigSchema.parse(value);
export { models };
