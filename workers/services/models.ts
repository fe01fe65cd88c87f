import { and, desc, eq } from "drizzle-orm";
import { ApiError } from "../../shared/errors";
import { aliases, models } from "../db/schema";
import type { Db } from "./db";
import { afterCursor, newestFirst, pageOf, type PageQuery } from "./pagination";
import { modelArtifactKey, modelObjectPrefix } from "./object-keys";

export type ModelRow = typeof models.$inferSelect;

export async function getModel(db: Db, projectId: string, id: string): Promise<ModelRow | null> {
  return (await db.select().from(models).where(and(eq(models.id, id), eq(models.projectId, projectId))).get()) ?? null;
}

/** One page of the project's models, newest first (services/pagination.ts). */
export async function listModels(db: Db, projectId: string, page: PageQuery) {
  const rows = await db.select().from(models).where(and(eq(models.projectId, projectId), afterCursor(models.createdAt, models.id, page.cursor))).orderBy(...newestFirst(models.createdAt, models.id)).limit(page.limit + 1).all();
  const { items, nextCursor } = pageOf(rows, page.limit, (r) => r);
  return { models: items.map(modelView), next_cursor: nextCursor };
}

export function modelView(row: ModelRow) {
  return {
    id: row.id,
    job_id: row.jobId,
    dataset_id: row.datasetId,
    dataset_version: row.datasetVersion,
    backbone: row.backbone,
    labels: row.labels as string[],
    metrics: row.metrics as { accuracy: number; per_class: { label: string; precision: number; recall: number; f1: number; support: number }[]; confusion_matrix: number[][] } & Record<string, unknown>,
    head_bytes: row.headBytes,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

/**
 * Deletes the model and its artifacts. Aliases pointing at it block (409 in_use naming them: their predictions would
 * fail) unless `force`, which removes them too (their history keeps the id).
 */
export async function deleteModel(db: Db, bucket: R2Bucket, row: ModelRow, options: { force?: boolean } = {}) {
  if (!options.force) {
    const pointing = await db.select({ name: aliases.name }).from(aliases).where(and(eq(aliases.projectId, row.projectId), eq(aliases.modelId, row.id))).limit(21).all();
    if (pointing.length > 0) {
      const names = pointing.slice(0, 20).map((a) => a.name);
      throw new ApiError("in_use", `Alias(es) ${names.map((n) => `'${n}'`).join(", ")}${pointing.length > 20 ? " and more" : ""} point at model '${row.id}'. Point them at another model (PUT /v1/aliases/:name) or delete them first, or repeat with ?force=true to delete the model and those aliases.`, { dependents: { aliases: names } });
    }
  }
  await db.batch([db.delete(models).where(eq(models.id, row.id)), db.delete(aliases).where(and(eq(aliases.projectId, row.projectId), eq(aliases.modelId, row.id)))]);
  // Every attempt's artifacts (services/object-keys.ts modelAttemptPrefix), not only the winning one's.
  const prefix = `${modelObjectPrefix(row.projectId, row.id)}/`;
  for (let page = 0, cursor: string | undefined; page < 10; page++) {
    const listed = await bucket.list({ prefix, cursor });
    if (listed.objects.length > 0) await bucket.delete(listed.objects.map((o) => o.key));
    if (!listed.truncated) break;
    cursor = listed.cursor;
  }
}

/** One stored artifact of the model (head.json, model.json, card.json, ...), or null when it is not in storage. */
export async function readModelArtifact(bucket: R2Bucket, row: Pick<ModelRow, "objectPrefix">, name: string): Promise<R2ObjectBody | null> {
  return bucket.get(modelArtifactKey(row.objectPrefix, name));
}

/** Stores one artifact a runner uploads for the model its job registers. */
export async function storeModelArtifact(bucket: R2Bucket, prefix: string, artifact: string, bytes: Uint8Array): Promise<void> {
  await bucket.put(modelArtifactKey(prefix, artifact), bytes);
}

/** True when the model's compact head (head.json) is in storage: a job may only complete once it is. */
export async function isHeadStored(bucket: R2Bucket, prefix: string): Promise<boolean> {
  return (await bucket.head(modelArtifactKey(prefix, "head.json"))) !== null;
}
