/**
 * Deletions whose size is unbounded, done in bounded steps. `DELETE /v1/datasets/:id` removes the dataset row (the API
 * answers 404 for it at once) and records a `deletions` row; the image rows and the R2 objects only this dataset used
 * are then purged PURGE_STEP_ROWS at a time: a few steps inline, the rest by the queue (PurgeMessage), and the scheduled
 * sweep re-enqueues a deletion that made no progress for a while (a message lost with its process). Every step is
 * idempotent: it handles the first rows still present, deletes their objects only when no live dataset of the project
 * uses the same bytes, then deletes those rows; repeating a step after a crash deletes nothing twice and orphans
 * nothing.
 *
 * Budget per step: 1 select + ceil(500 / 90) = 6 "still used?" selects + 1 delete + 1 update = 9 D1 statements (at
 * most 91 bound parameters each) and one R2 delete of at most 500 keys (R2 takes 1,000). A request runs
 * INLINE_STEPS steps (~36 statements, 2,000 images); a queue message runs up to MESSAGE_STEPS (~360 statements,
 * 20,000 images), far inside D1's 1,000 queries per invocation.
 */
import { and, asc, eq, inArray, lt, sql } from "drizzle-orm";
import { newId } from "../../shared/ids";
import { datasetImages, datasetRejections, datasets, deletions, ingests, uploadParts, uploads } from "../db/schema";
import type { Env } from "../env";
import { chunk } from "../../shared/chunk";
import { assertDatasetDeletable, type DatasetRow } from "./datasets";
import { archiveEntriesObjectKey, datasetArchivesPrefix, imageObjectKey } from "./object-keys";
import { getDb, nowIso, type Db } from "./db";

export const PURGE_STEP_ROWS = 500;
const SHAS_PER_QUERY = 90;
export const INLINE_STEPS = 4;
const MESSAGE_STEPS = 40;
const MESSAGE_WALL_MS = 20_000;

export interface PurgeMessage {
  kind: "purge";
  deletion_id: string;
}

export type DeletionRow = typeof deletions.$inferSelect;

/**
 * `DELETE /v1/datasets/:id`: gone from the API at once; up to INLINE_STEPS purge steps here, the rest through the
 * queue. Returns whether the purge already finished.
 */
export async function deleteDataset(env: Env, db: Db, row: DatasetRow): Promise<boolean> {
  await assertDatasetDeletable(db, row);
  const deletion = await startDatasetDeletion(env, db, row);
  const done = await runDeletion(env, db, deletion.id, INLINE_STEPS);
  if (!done) await env.INGEST_QUEUE.send({ kind: "purge", deletion_id: deletion.id } satisfies PurgeMessage);
  return done;
}

/** Removes the dataset from the API at once (one D1 batch) and starts purging its images. */
export async function startDatasetDeletion(env: Env, db: Db, row: DatasetRow): Promise<DeletionRow> {
  const id = `del_${newId("ds").slice(3)}`;
  const [inserted] = await db.batch([
    db.insert(deletions).values({ id, projectId: row.projectId, kind: "dataset", targetId: row.id }).returning(),
    db.delete(datasets).where(eq(datasets.id, row.id)),
    db.delete(datasetRejections).where(eq(datasetRejections.datasetId, row.id)),
    db.update(ingests).set({ status: "failed", error: "dataset deleted" }).where(and(eq(ingests.datasetId, row.id), inArray(ingests.status, ["queued", "running"]))),
    db.update(uploads).set({ status: "aborted" }).where(and(eq(uploads.datasetId, row.id), eq(uploads.status, "open"))),
  ]);
  return inserted[0];
}

/** One bounded step. Returns true when the deletion is complete. */
export async function purgeStep(env: Env, db: Db, deletion: DeletionRow): Promise<boolean> {
  const rows = await db
    .select({ id: datasetImages.id, sha256: datasetImages.sha256 })
    .from(datasetImages)
    .where(eq(datasetImages.datasetId, deletion.targetId))
    .orderBy(asc(datasetImages.id))
    .limit(PURGE_STEP_ROWS)
    .all();
  if (rows.length === 0) {
    await finishDeletion(env, db, deletion);
    return true;
  }
  const shas = [...new Set(rows.map((r) => r.sha256))];
  const orphans: string[] = [];
  for (const group of chunk(shas, SHAS_PER_QUERY)) {
    // Bytes are stored once per project (content-addressed): keep those another live dataset of the project uses,
    // in any of its versions. The deleted dataset's row is gone, so its own image rows do not count.
    const used = await db
      .selectDistinct({ sha: datasetImages.sha256 })
      .from(datasetImages)
      .innerJoin(datasets, eq(datasets.id, datasetImages.datasetId))
      .where(and(eq(datasets.projectId, deletion.projectId), inArray(datasetImages.sha256, group)))
      .all();
    const stillUsed = new Set(used.map((u) => u.sha));
    for (const sha of group) if (!stillUsed.has(sha)) orphans.push(imageObjectKey(deletion.projectId, sha));
  }
  // Objects first, rows second: a crash in between leaves rows whose objects are gone, and the retried step finds
  // the same rows and deletes nothing that is still needed; the other order would orphan objects for good.
  if (orphans.length > 0) await env.BUCKET.delete(orphans);
  const lastId = rows[rows.length - 1].id;
  await db.batch([
    db.delete(datasetImages).where(and(eq(datasetImages.datasetId, deletion.targetId), sql`${datasetImages.id} <= ${lastId}`)),
    db
      .update(deletions)
      .set({ cursor: lastId, rowsDeleted: sql`${deletions.rowsDeleted} + ${rows.length}`, objectsDeleted: sql`${deletions.objectsDeleted} + ${orphans.length}` })
      .where(eq(deletions.id, deletion.id)),
  ]);
  return false;
}

/** The dataset's archives and unfinished multipart uploads go too; then the deletion is done. */
async function finishDeletion(env: Env, db: Db, deletion: DeletionRow) {
  const prefix = datasetArchivesPrefix(deletion.projectId, deletion.targetId);
  const ingestIds = await db.select({ id: ingests.id }).from(ingests).where(eq(ingests.datasetId, deletion.targetId)).limit(1000).all();
  if (ingestIds.length > 0) await env.BUCKET.delete(ingestIds.map((i) => archiveEntriesObjectKey(deletion.projectId, i.id)));
  for (let page = 0; page < 10; page++) {
    const listed = await env.BUCKET.list({ prefix, limit: 1000 });
    if (listed.objects.length > 0) await env.BUCKET.delete(listed.objects.map((o) => o.key));
    if (!listed.truncated) break;
  }
  const open = await db.select().from(uploads).where(and(eq(uploads.datasetId, deletion.targetId), eq(uploads.status, "aborted"))).limit(50).all();
  for (const upload of open) {
    await env.BUCKET.resumeMultipartUpload(upload.objectKey, upload.r2UploadId).abort().catch(() => undefined);
  }
  if (open.length > 0) await db.batch([db.delete(uploadParts).where(inArray(uploadParts.uploadId, open.map((u) => u.id))), db.delete(uploads).where(inArray(uploads.id, open.map((u) => u.id)))]);
  if (open.length === 50) return; // more next step
  await db.update(deletions).set({ status: "done" }).where(eq(deletions.id, deletion.id));
}

/** Runs up to `maxSteps` steps (or until `deadline`); true when the deletion is complete. */
export async function runDeletion(env: Env, db: Db, deletionId: string, maxSteps: number, wallMs = MESSAGE_WALL_MS): Promise<boolean> {
  const started = Date.now();
  const deletion = await db.select().from(deletions).where(eq(deletions.id, deletionId)).get();
  if (!deletion || deletion.status === "done") return true;
  for (let step = 0; step < maxSteps && Date.now() - started < wallMs; step++) {
    if (await purgeStep(env, db, deletion)) return true;
  }
  return false;
}

/** Queue consumer: one message's worth of steps; returns the next message, or null when the deletion is done. */
export async function runPurgeMessage(env: Env, message: PurgeMessage): Promise<PurgeMessage | null> {
  const done = await runDeletion(env, getDb(env.DB), message.deletion_id, MESSAGE_STEPS);
  return done ? null : message;
}

/**
 * Scheduled sweep: deletions that made no progress for `staleMs` (their message died with its process) are sent to
 * the queue again. Claiming by bumping updated_at (only if still stale) makes two concurrent sweeps send one message.
 */
export async function resumeStalledDeletions(env: Env, db: Db, staleMs: number, nowMs = Date.now(), limit = 20): Promise<number> {
  const cutoff = new Date(nowMs - staleMs).toISOString();
  const stalled = await db.select({ id: deletions.id }).from(deletions).where(and(eq(deletions.status, "pending"), lt(deletions.updatedAt, cutoff))).limit(limit).all();
  let resumed = 0;
  for (const { id } of stalled) {
    const claimed = await db.update(deletions).set({ updatedAt: nowIso() }).where(and(eq(deletions.id, id), eq(deletions.status, "pending"), lt(deletions.updatedAt, cutoff))).returning({ id: deletions.id });
    if (claimed.length === 0) continue;
    await env.INGEST_QUEUE.send({ kind: "purge", deletion_id: id } satisfies PurgeMessage);
    resumed++;
  }
  return resumed;
}
