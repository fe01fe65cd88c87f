/**
 * The scheduled sweep (Cron Trigger, every minute: wrangler.toml `[triggers]`; locally scripts/platform.mjs calls the
 * scheduled handler on the same period). Cleanup and recovery run here, never on a user's read:
 * - jobs whose lease lapsed go back to the queue, fail or cancel (services/jobs.ts sweepExpiredLeases), sending the
 *   `job.failed` / `job.canceled` webhook as a runner's report would;
 * - ingests that made no progress for SWEEP_STALL_S (workers/config.ts, 3 min) are re-enqueued at their stored cursor
 *   (their message died with its process); a chunk commits only if the cursor is still the one it started from, so
 *   a duplicate message is dropped and no image is counted twice (tests/e2e/chaos.test.ts kills wrangler dev
 *   mid-ingest and mid-job to prove it end to end);
 * - deletions that made no progress for as long are re-enqueued (services/deletions.ts);
 * - webhook deliveries whose next attempt is as long overdue are re-enqueued (services/webhooks.ts);
 * - multipart uploads left open for UPLOAD_ABANDON_MS are aborted (R2 keeps their parts, billed, until then);
 * - job events of finished jobs older than EVENT_RETENTION_MS are pruned, EVENT_PRUNE_BATCH per run.
 * Each part is bounded per run, so one run stays far inside D1's 1,000 queries: at most 50 x 2 (leases) + 20 x 2
 * (ingests) + 20 x 2 (deletions) + 20 x 2 (deliveries) + 10 x 3 (uploads) + 1 (events) + 5 (selects) = 256
 * statements.
 */
import { and, eq, inArray, lt, sql } from "drizzle-orm";
import { ingests, jobEvents, jobs, uploadParts, uploads } from "../db/schema";
import { DEFAULT_SWEEP_STALL_S, getConfig } from "../config";
import type { Env } from "../env";
import { getDb, nowIso, type Db } from "./db";
import { resumeStalledDeletions } from "./deletions";
import type { IngestMessage } from "./ingest";
import { sweepExpiredLeases } from "./jobs";
import { jobEndedNotifier, resumeStalledDeliveries } from "./webhooks";

/**
 * Defaults of the deployment's SWEEP_STALL_S (workers/config.ts): a chunk runs at most 15 s and the queue retries a
 * failed one within ~1 min, and a due delivery runs within seconds (the queue's batch timeout is 1 s): 3 min of
 * silence means the message is lost.
 */
export const INGEST_STALL_MS = DEFAULT_SWEEP_STALL_S * 1000;
export const DELETION_STALL_MS = DEFAULT_SWEEP_STALL_S * 1000;
export const DELIVERY_STALL_MS = DEFAULT_SWEEP_STALL_S * 1000;
export const UPLOAD_ABANDON_MS = 24 * 3_600_000;
export const EVENT_RETENTION_MS = 30 * 24 * 3_600_000;
const EVENT_PRUNE_BATCH = 5_000;
const RESUME_BATCH = 20;
const UPLOAD_BATCH = 10;

export interface SweepReport {
  leases: number;
  ingests: number;
  deletions: number;
  deliveries: number;
  uploads: number;
  events: number;
}

export async function runScheduledSweeps(env: Env, nowMs = Date.now()): Promise<SweepReport> {
  const db = getDb(env.DB);
  const stallMs = getConfig(env).sweepStallMs;
  const report: SweepReport = { leases: 0, ingests: 0, deletions: 0, deliveries: 0, uploads: 0, events: 0 };
  // Each part on its own: one failing (say R2 briefly unavailable) must not starve the others.
  const parts: [keyof SweepReport, () => Promise<number>][] = [
    ["leases", () => sweepExpiredLeases(db, nowMs, jobEndedNotifier(env))],
    ["ingests", () => resumeStalledIngests(env, db, nowMs, stallMs)],
    ["deletions", () => resumeStalledDeletions(env, db, stallMs, nowMs)],
    ["deliveries", () => resumeStalledDeliveries(env, db, stallMs, nowMs)],
    ["uploads", () => abortAbandonedUploads(env, db, nowMs)],
    ["events", () => pruneJobEvents(db, nowMs)],
  ];
  for (const [name, run] of parts) {
    try {
      report[name] = await run();
    } catch (err) {
      console.error(`scheduled sweep '${name}' failed:`, err);
    }
  }
  return report;
}

/** Re-enqueues ingests silent for `stallMs`, claiming each by bumping updated_at so concurrent sweeps send one. */
export async function resumeStalledIngests(env: Env, db: Db, nowMs = Date.now(), stallMs = INGEST_STALL_MS): Promise<number> {
  const cutoff = new Date(nowMs - stallMs).toISOString();
  const stalled = await db.select({ id: ingests.id, cursor: ingests.cursor }).from(ingests).where(and(inArray(ingests.status, ["queued", "running"]), lt(ingests.updatedAt, cutoff))).limit(RESUME_BATCH).all();
  let resumed = 0;
  for (const ingest of stalled) {
    const claimed = await db
      .update(ingests)
      .set({ updatedAt: nowIso() })
      .where(and(eq(ingests.id, ingest.id), eq(ingests.cursor, ingest.cursor), inArray(ingests.status, ["queued", "running"]), lt(ingests.updatedAt, cutoff)))
      .returning({ id: ingests.id });
    if (claimed.length === 0) continue;
    await env.INGEST_QUEUE.send({ kind: "ingest", ingest_id: ingest.id, cursor: ingest.cursor } satisfies IngestMessage);
    resumed++;
  }
  return resumed;
}

/** Aborts multipart uploads open and untouched for UPLOAD_ABANDON_MS. */
export async function abortAbandonedUploads(env: Env, db: Db, nowMs = Date.now()): Promise<number> {
  const cutoff = new Date(nowMs - UPLOAD_ABANDON_MS).toISOString();
  const abandoned = await db.select().from(uploads).where(and(eq(uploads.status, "open"), lt(uploads.updatedAt, cutoff))).limit(UPLOAD_BATCH).all();
  let aborted = 0;
  for (const upload of abandoned) {
    const claimed = await db.update(uploads).set({ status: "aborted" }).where(and(eq(uploads.id, upload.id), eq(uploads.status, "open"), lt(uploads.updatedAt, cutoff))).returning({ id: uploads.id });
    if (claimed.length === 0) continue;
    // An upload R2 already expired (it aborts incomplete ones after 7 days) throws here; the row is settled either way.
    await env.BUCKET.resumeMultipartUpload(upload.objectKey, upload.r2UploadId).abort().catch(() => undefined);
    await db.delete(uploadParts).where(eq(uploadParts.uploadId, upload.id));
    aborted++;
  }
  return aborted;
}

/** Deletes events of finished jobs older than EVENT_RETENTION_MS, at most EVENT_PRUNE_BATCH per run (one statement). */
export async function pruneJobEvents(db: Db, nowMs = Date.now()): Promise<number> {
  const cutoff = new Date(nowMs - EVENT_RETENTION_MS).toISOString();
  const old = db
    .select({ id: jobEvents.id })
    .from(jobEvents)
    .innerJoin(jobs, eq(jobs.id, jobEvents.jobId))
    .where(and(lt(jobEvents.createdAt, cutoff), sql`${jobs.status} in ('succeeded', 'failed', 'canceled')`))
    .limit(EVENT_PRUNE_BATCH);
  const result = await db.delete(jobEvents).where(inArray(jobEvents.id, old)).run();
  return Number(result.meta?.changes ?? 0);
}
