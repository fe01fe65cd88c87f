import { and, desc, eq } from "drizzle-orm";
import { ApiError } from "../../shared/errors";
import type { EvaluatedImage } from "../../shared/compare";
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

type ModelMetrics = { accuracy: number; per_class: { label: string; precision: number; recall: number; f1: number; support: number }[]; confusion_matrix: number[][] } & Record<string, unknown>;

/**
 * Metrics up to this size (JSON) live whole on the model row; larger ones go to R2 (`metrics.json` beside the head)
 * with a summary on the row. D1 refuses a row over 2 MB, and the confusion matrix grows with labels squared: 1,000
 * labels make 2 to 4 MB of it (tests/workers/model-metrics.test.ts sends 2 MB). 256 KB keeps a page of 100 models
 * listed at most about 25 MB.
 */
export const METRICS_INLINE_MAX_BYTES = 256 * 1024;
/** A summary's fields larger than this (JSON) are left out of it: they are in the full metrics. */
const SUMMARY_FIELD_MAX_BYTES = 16 * 1024;
export const METRICS_ARTIFACT = "metrics.json";

/**
 * What the model row stores for `metrics`: the metrics themselves when they fit METRICS_INLINE_MAX_BYTES, else (after
 * writing them whole to `{prefix}/metrics.json`) a summary with `summary_only: true`: accuracy and every other small
 * field, `per_class` while it fits, `confusion_matrix: []`. GET /v1/models/:id reads the full metrics back
 * (`modelViewFull`); lists show the summary. Peak memory: the metrics' JSON once (at most the complete request's
 * 16 MB body limit, routes/runner.ts) plus the summary.
 */
export async function storeModelMetrics(bucket: R2Bucket, prefix: string, metrics: Record<string, unknown>): Promise<Record<string, unknown>> {
  const json = JSON.stringify(metrics);
  if (json.length <= METRICS_INLINE_MAX_BYTES) return metrics;
  await bucket.put(modelArtifactKey(prefix, METRICS_ARTIFACT), json, { httpMetadata: { contentType: "application/json" } });
  const summary: Record<string, unknown> = { confusion_matrix: [], per_class: [] };
  for (const [field, value] of Object.entries(metrics)) {
    if (field === "confusion_matrix") continue;
    const size = JSON.stringify(value)?.length ?? 0;
    if (size <= SUMMARY_FIELD_MAX_BYTES || (field === "per_class" && size <= METRICS_INLINE_MAX_BYTES / 2)) summary[field] = value;
  }
  summary.summary_only = true;
  return summary;
}

/** The model with its full metrics: from R2 when the row holds only their summary (storeModelMetrics). */
export async function modelViewFull(bucket: R2Bucket, row: ModelRow) {
  const view = modelView(row);
  if (!(view.metrics as Record<string, unknown>).summary_only) return view;
  const object = await bucket.get(modelArtifactKey(row.objectPrefix, METRICS_ARTIFACT));
  if (!object) throw new ApiError("artifact_not_found", `Model '${row.id}' has lost its full metrics (${METRICS_ARTIFACT}); its summary is in GET /v1/models.`, { model_id: row.id });
  return { ...view, metrics: (await object.json()) as ModelMetrics };
}

export function modelView(row: ModelRow) {
  return {
    id: row.id,
    job_id: row.jobId,
    dataset_id: row.datasetId,
    dataset_version: row.datasetVersion,
    backbone: row.backbone,
    labels: row.labels as string[],
    metrics: row.metrics as ModelMetrics,
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

/** Stores one artifact a runner uploads for the model its job registers (a stream must have a known length). */
export async function storeModelArtifact(bucket: R2Bucket, prefix: string, artifact: string, body: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
  await bucket.put(modelArtifactKey(prefix, artifact), body);
}

/** True when the model's compact head (head.json) is in storage: a job may only complete once it is. */
export async function isHeadStored(bucket: R2Bucket, prefix: string): Promise<boolean> {
  return (await bucket.head(modelArtifactKey(prefix, "head.json"))) !== null;
}

/**
 * A model's per-image validation results (the runner's `evaluation.json`). 8 MB is about 40,000 images; two of them
 * parsed stay far inside the isolate's 128 MB (peak memory of the compare route: 2 x 8 MB of text and their parse).
 */
const MAX_EVALUATION_BYTES = 8 * 1024 * 1024;

export async function loadEvaluation(bucket: R2Bucket, row: { id: string; objectPrefix: string }): Promise<EvaluatedImage[]> {
  const object = await bucket.get(modelArtifactKey(row.objectPrefix, "evaluation.json"));
  if (!object) throw new ApiError("evaluation_missing", `Model '${row.id}' has no per-image validation results (it was trained before they were recorded). Train it again to compare it.`, { model_id: row.id });
  if (object.size > MAX_EVALUATION_BYTES) {
    await object.body.cancel();
    throw new ApiError("evaluation_too_large", `Model '${row.id}' was validated on more images than a comparison handles here (${object.size} bytes of results, limit ${MAX_EVALUATION_BYTES}).`, { model_id: row.id, limit_bytes: MAX_EVALUATION_BYTES });
  }
  const parsed = (await object.json()) as { images?: EvaluatedImage[] };
  return parsed.images ?? [];
}
