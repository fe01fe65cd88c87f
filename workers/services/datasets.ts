/**
 * Datasets and their images. Versioning: uploads write into `datasets.version`; once a job references a version it is
 * frozen (`frozen_version`), and the next write starts version + 1. A row belongs to snapshot v when
 * added_version <= v < removed_version (or removed_version is null), so a job reads exactly the images it was created
 * with while uploads go on. Image bytes live in R2, content-addressed per project.
 */
import { and, desc, eq, gt, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { ApiError, withContext } from "../../shared/errors";
import { newId, sha256Hex } from "../../shared/ids";
import { inspectImage } from "../../shared/image/sniff";
import { chunk } from "../../shared/chunk";
import { mapBounded } from "../../shared/concurrency";
import { datasetImages, datasetRejections, datasets, ingests, jobs } from "../db/schema";
import type { Db } from "./db";
import { afterCursor, newestFirst, pageOf, type PageQuery } from "./pagination";
import { nowIso } from "./db";
import { imageObjectKey } from "./object-keys";

export type DatasetRow = typeof datasets.$inferSelect;
export type ImageRow = typeof datasetImages.$inferSelect;

/** A label needs this many images before a job may train on the dataset (fewer gives a meaningless split). */
export const MIN_IMAGES_PER_LABEL = 5;
/**
 * Largest single image file accepted (bytes), also the inflate cap for archive entries. The header check
 * (shared/image/sniff.ts) walks every byte, so an image is held whole while it is checked: 32 MB (a 50-megapixel JPEG
 * at high quality) keeps one upload at a quarter of the 128 MB isolate.
 */
export const MAX_IMAGE_BYTES = 32 * 1024 * 1024;
const REJECTIONS_SHOWN = 200;

export async function getDataset(db: Db, projectId: string, id: string): Promise<DatasetRow | null> {
  return (await db.select().from(datasets).where(and(eq(datasets.id, id), eq(datasets.projectId, projectId))).get()) ?? null;
}

export async function createDataset(db: Db, projectId: string, name: string): Promise<DatasetRow> {
  const now = nowIso();
  return db.insert(datasets).values({ id: newId("ds"), projectId, name, createdAt: now, updatedAt: now }).returning().get();
}

/**
 * Stores one uploaded image under `label/filename` in the dataset's writable version (replacing an image at the same
 * path): checks its header (ImageError, answered 422 by the error handler, naming the path), writes the bytes to R2
 * by content hash, records the row. 409 `duplicate_image` when the same bytes are already at another path.
 */
export async function storeImage(db: Db, bucket: R2Bucket, dataset: DatasetRow, image: { label: string; filename: string; bytes: Uint8Array }, maxPixels: number) {
  const { label, filename, bytes } = image;
  let info;
  try {
    info = inspectImage(bytes, { maxPixels });
  } catch (err) {
    throw withContext(err, "", { path: `${label}/${filename}` });
  }
  const sha256 = await sha256Hex(bytes);
  await bucket.put(imageObjectKey(dataset.projectId, sha256), bytes, { httpMetadata: { contentType: `image/${info.format}` } });
  const version = await writableVersion(db, dataset.id);
  const [outcome] = await recordImages(db, dataset.id, version, [{ label, filename, split: "auto", sha256, bytes: bytes.length, format: info.format, width: info.width, height: info.height }]);
  if (outcome.status === "duplicate") {
    throw new ApiError("duplicate_image", `This image is already in the dataset as '${outcome.existingPath}'. Each image is kept once, so it cannot straddle the train/val split.`, { existing_path: outcome.existingPath, sha256 });
  }
  if (dataset.status !== "ingesting") await db.update(datasets).set({ status: "ready", error: null, updatedAt: nowIso() }).where(eq(datasets.id, dataset.id));
  return { sha256, label, filename, width: info.width, height: info.height, format: info.format, bytes: bytes.length, dataset_version: version };
}

/**
 * The bytes of up to `shas.length` images, read `concurrency` at a time, at most `maxBytes` in all: images past the
 * budget are left out and the caller asks again, and one larger than the whole budget is never in a batch (the
 * runner reads it alone, streamed, from GET /v1/runner/jobs/:id/images/:sha256). Missing images come back as null.
 * Peak memory: `maxBytes`.
 */
export async function readImageBatch(bucket: R2Bucket, projectId: string, shas: string[], budget: { maxBytes: number; concurrency: number }): Promise<Array<[string, Uint8Array | null]>> {
  const found: Array<[string, Uint8Array | null]> = [];
  let total = 0;
  await mapBounded(shas, budget.concurrency, async (sha) => {
    const object = await bucket.get(imageObjectKey(projectId, sha));
    if (!object) {
      found.push([sha, null]);
      return;
    }
    if (total + object.size > budget.maxBytes) {
      await object.body.cancel(); // over budget: left out, the caller asks again
      return;
    }
    total += object.size;
    found.push([sha, new Uint8Array(await object.arrayBuffer())]);
  });
  return found;
}

/** The stored bytes of one of the project's images, or null when they are not in storage. */
export async function readImage(bucket: R2Bucket, projectId: string, sha256: string): Promise<R2ObjectBody | null> {
  return bucket.get(imageObjectKey(projectId, sha256));
}

/**
 * Which of `shas` are images of snapshot `version` of the dataset (one statement per 90 hashes: D1 binds at most 100
 * parameters). What a runner may read or write for its leased job is bounded by this.
 */
export async function shasInSnapshot(db: Db, datasetId: string, version: number, shas: string[]): Promise<Set<string>> {
  const unique = [...new Set(shas)];
  const found = new Set<string>();
  for (let start = 0; start < unique.length; start += 90) {
    const rows = await db.selectDistinct({ sha256: datasetImages.sha256 }).from(datasetImages)
      .where(and(inSnapshot(datasetId, version), inArray(datasetImages.sha256, unique.slice(start, start + 90)))).all();
    for (const row of rows) found.add(row.sha256);
  }
  return found;
}

/**
 * The pack of a snapshot: its id, sha256 of its sorted, distinct image hashes joined by newlines (as runners compute
 * it), and those hashes. One statement; memory about 150 bytes per image (3 MB for 20,000).
 */
export async function snapshotPack(db: Db, datasetId: string, version: number): Promise<{ id: string; shas: Set<string> }> {
  const rows = await db.selectDistinct({ sha256: datasetImages.sha256 }).from(datasetImages).where(inSnapshot(datasetId, version)).all();
  const sorted = rows.map((r) => r.sha256).sort();
  return { id: await sha256Hex(sorted.join("\n")), shas: new Set(sorted) };
}

/** Snapshot condition for `version` (see the module comment). */
export const inSnapshot = (datasetId: string, version: number) =>
  and(eq(datasetImages.datasetId, datasetId), lte(datasetImages.addedVersion, version), or(isNull(datasetImages.removedVersion), gt(datasetImages.removedVersion, version)));

/** Freezes the dataset's current version for a job and returns it: the next write starts version + 1. */
export async function freezeVersion(db: Db, datasetId: string): Promise<number> {
  const frozen = await db.update(datasets).set({ frozenVersion: sql`max(${datasets.frozenVersion}, ${datasets.version})` }).where(eq(datasets.id, datasetId)).returning({ version: datasets.version }).get();
  if (!frozen) throw new ApiError("dataset_not_found", `Dataset '${datasetId}' no longer exists.`);
  return frozen.version;
}

/** The images of snapshot `version`, by label, split and file name. */
export async function listSnapshotImages(db: Db, datasetId: string, version: number) {
  return db
    .select({ sha256: datasetImages.sha256, label: datasetImages.label, split: datasetImages.split, filename: datasetImages.filename })
    .from(datasetImages)
    .where(inSnapshot(datasetId, version))
    .orderBy(datasetImages.label, datasetImages.split, datasetImages.filename)
    .all();
}

/** The version writes go into, starting a new one when the current version is frozen by a job. */
export async function writableVersion(db: Db, datasetId: string): Promise<number> {
  const row = await db
    .update(datasets)
    .set({ version: sql`case when ${datasets.version} <= ${datasets.frozenVersion} then ${datasets.frozenVersion} + 1 else ${datasets.version} end`, updatedAt: nowIso() })
    .where(eq(datasets.id, datasetId))
    .returning({ version: datasets.version })
    .get();
  if (!row) throw new ApiError("dataset_not_found", `Dataset '${datasetId}' no longer exists.`);
  return row.version;
}

export interface NewImage {
  label: string;
  filename: string;
  split: "train" | "val" | "auto";
  sha256: string;
  bytes: number;
  format: string;
  width: number;
  height: number;
}

export type RecordOutcome = { path: string; status: "added" | "unchanged" } | { path: string; status: "duplicate"; existingPath: string };

const pathOf = (i: { label: string; filename: string; split: string }) => `${i.split === "auto" ? "" : `${i.split}/`}${i.label}/${i.filename}`;
const entryKey = pathOf;

/**
 * Records images into `version` with replace semantics (same label/filename replaces the earlier image) and rejects
 * exact duplicates (same sha256 at another path in the snapshot: duplicates inflate metrics when they straddle the
 * train/val split). Idempotent: re-recording the same batch changes nothing, which makes ingest chunks retryable.
 */
export async function recordImages(db: Db, datasetId: string, version: number, images: NewImage[]): Promise<RecordOutcome[]> {
  if (images.length === 0) return [];
  const live = new Map<string, ImageRow>();
  const bySha = new Map<string, ImageRow>();
  for (const group of chunk(images, 45)) {
    const rows = await db
      .select()
      .from(datasetImages)
      .where(and(inSnapshot(datasetId, version), or(inArray(datasetImages.filename, group.map((i) => i.filename)), inArray(datasetImages.sha256, group.map((i) => i.sha256)))))
      .all();
    for (const row of rows) {
      live.set(entryKey(row), row);
      bySha.set(row.sha256, row);
    }
  }
  const outcomes: RecordOutcome[] = [];
  const statements: any[] = [];
  for (const image of images) {
    const key = entryKey(image);
    const existing = live.get(key);
    const duplicate = bySha.get(image.sha256);
    if (existing && existing.sha256 === image.sha256) {
      outcomes.push({ path: pathOf(image), status: "unchanged" });
      continue;
    }
    if (duplicate && entryKey(duplicate) !== key) {
      outcomes.push({ path: pathOf(image), status: "duplicate", existingPath: pathOf(duplicate) });
      continue;
    }
    if (existing) {
      statements.push(
        existing.addedVersion === version
          ? db.delete(datasetImages).where(eq(datasetImages.id, existing.id))
          : db.update(datasetImages).set({ removedVersion: version }).where(eq(datasetImages.id, existing.id)),
      );
    }
    const row = { datasetId, ...image, addedVersion: version };
    statements.push(db.insert(datasetImages).values(row).onConflictDoNothing());
    const fake = { ...row, id: -1, removedVersion: null } as ImageRow;
    live.set(key, fake);
    bySha.set(image.sha256, fake);
    outcomes.push({ path: pathOf(image), status: "added" });
  }
  for (const group of chunk(statements, 50)) await db.batch(group as [any, ...any[]]);
  return outcomes;
}

/**
 * A name from a tenant's archive as it may be stored and shown back: control characters and lone surrogates replaced
 * by U+FFFD, NFC, and at most `max` characters (a zip entry name can be 65,535 bytes; the rejection list shows it).
 */
export function sanitizeShownName(name: string, max = 300): string {
  // eslint-disable-next-line no-control-regex
  const clean = name.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, "\ufffd").replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd").normalize("NFC");
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

export async function recordRejections(db: Db, datasetId: string, ingestId: string | null, rejections: { path: string; code: string; message: string }[]) {
  // 6 columns per row and at most 100 bound parameters per statement.
  for (const group of chunk(rejections, 15)) {
    await db.insert(datasetRejections).values(group.map((r) => ({ datasetId, ingestId, code: r.code, path: sanitizeShownName(r.path), message: sanitizeShownName(r.message, 1000) }))).onConflictDoNothing();
  }
}

export interface LabelStats {
  name: string;
  count: number;
  train: number;
  val: number;
}

export async function labelStats(db: Db, datasetId: string, version: number): Promise<{ labels: LabelStats[]; imageCount: number; bytes: number }> {
  const rows = await db
    .select({
      name: datasetImages.label,
      count: sql<number>`count(*)`,
      val: sql<number>`sum(case when ${datasetImages.split} = 'val' then 1 else 0 end)`,
      bytes: sql<number>`sum(${datasetImages.bytes})`,
    })
    .from(datasetImages)
    .where(inSnapshot(datasetId, version))
    .groupBy(datasetImages.label)
    .orderBy(datasetImages.label)
    .all();
  const labels = rows.map((r) => ({ name: r.name, count: Number(r.count), train: Number(r.count) - Number(r.val), val: Number(r.val) }));
  return { labels, imageCount: labels.reduce((s, l) => s + l.count, 0), bytes: rows.reduce((s, r) => s + Number(r.bytes), 0) };
}

/** Why a job cannot train on these labels, or null when it can. */
export function notTrainableReason(status: DatasetRow["status"], labels: LabelStats[]): string | null {
  if (status === "ingesting") return "An archive is still being ingested; wait until the dataset is ready.";
  if (labels.length < 2) return `A classifier needs at least 2 labels; this dataset has ${labels.length}. Upload images under at least 2 label folders.`;
  const few = labels.filter((l) => l.count < MIN_IMAGES_PER_LABEL);
  if (few.length > 0) return `Every label needs at least ${MIN_IMAGES_PER_LABEL} images; too few in: ${few.map((l) => `${l.name} (${l.count})`).join(", ")}.`;
  const withVal = labels.filter((l) => l.val > 0);
  if (withVal.length > 0 && withVal.length < labels.length) {
    const missing = labels.filter((l) => l.val === 0 || l.train === 0).map((l) => l.name);
    if (missing.length > 0) return `The dataset uses train/ and val/ folders, but these labels lack a train or val image: ${missing.join(", ")}.`;
  }
  return null;
}

/** The dataset as API.md describes it. */
export async function datasetView(db: Db, row: DatasetRow) {
  return (await datasetViews(db, [row]))[0];
}

type IngestRow = typeof ingests.$inferSelect;

/**
 * Views of a page of datasets in five queries whatever the page's size (at most 100 datasets: the ids are each query's
 * only bound parameters, constants are inlined, so at most 100 per statement): one per dataset made a 50-dataset page cost 250 queries and a 200-dataset list pass D1's 1,000.
 */
export async function datasetViews(db: Db, rows: DatasetRow[]) {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const [labelRows, rejectedRows, rejectedCounts, activeIngests, lastIngests] = await Promise.all([
    db
      .select({
        datasetId: datasetImages.datasetId,
        name: datasetImages.label,
        count: sql<number>`count(*)`,
        val: sql<number>`sum(case when ${datasetImages.split} = 'val' then 1 else 0 end)`,
        bytes: sql<number>`sum(${datasetImages.bytes})`,
      })
      .from(datasetImages)
      .innerJoin(datasets, eq(datasets.id, datasetImages.datasetId))
      .where(and(inArray(datasetImages.datasetId, ids), lte(datasetImages.addedVersion, datasets.version), or(isNull(datasetImages.removedVersion), gt(datasetImages.removedVersion, datasets.version))))
      .groupBy(datasetImages.datasetId, datasetImages.label)
      .orderBy(datasetImages.datasetId, datasetImages.label)
      .all(),
    // The newest REJECTIONS_SHOWN per dataset.
    db
      .select()
      .from(
        db
          .select({ datasetId: datasetRejections.datasetId, path: datasetRejections.path, code: datasetRejections.code, message: datasetRejections.message, rank: sql<number>`row_number() over (partition by ${datasetRejections.datasetId} order by ${datasetRejections.id} desc)`.as("rank") })
          .from(datasetRejections)
          .where(inArray(datasetRejections.datasetId, ids))
          .as("ranked"),
      )
      .where(sql`rank <= ${sql.raw(String(REJECTIONS_SHOWN))}`)
      .all(),
    db
      .select({ datasetId: datasetRejections.datasetId, n: sql<number>`count(*)`, dup: sql<number>`sum(case when ${datasetRejections.code} = 'duplicate_image' then 1 else 0 end)` })
      .from(datasetRejections)
      .where(inArray(datasetRejections.datasetId, ids))
      .groupBy(datasetRejections.datasetId)
      .all(),
    db
      .select({ datasetId: ingests.datasetId, done: sql<number>`coalesce(sum(${ingests.cursor}), 0)`, total: sql<number>`coalesce(sum(${ingests.total}), 0)` })
      .from(ingests)
      .where(and(inArray(ingests.datasetId, ids), sql`${ingests.status} in ('queued', 'running')`))
      .groupBy(ingests.datasetId)
      .all(),
    db
      .select()
      .from(
        db
          .select({ datasetId: ingests.datasetId, cursor: ingests.cursor, total: ingests.total, error: ingests.error, rank: sql<number>`row_number() over (partition by ${ingests.datasetId} order by ${ingests.createdAt} desc, ${ingests.id} desc)`.as("rank") })
          .from(ingests)
          .where(inArray(ingests.datasetId, ids))
          .as("ranked_ingests"),
      )
      .where(sql`rank = 1`)
      .all(),
  ]);
  const group = <T extends { datasetId: string }>(items: T[]) => {
    const map = new Map<string, T[]>();
    for (const item of items) map.set(item.datasetId, [...(map.get(item.datasetId) ?? []), item]);
    return map;
  };
  const labelsBy = group(labelRows);
  const rejectedBy = group(rejectedRows);
  const countsBy = new Map(rejectedCounts.map((r) => [r.datasetId, r]));
  const activeBy = new Map(activeIngests.map((r) => [r.datasetId, r]));
  const lastBy = new Map(lastIngests.map((r) => [r.datasetId, r as Pick<IngestRow, "cursor" | "total" | "error">]));
  return rows.map((row) => {
    const stats = labelsBy.get(row.id) ?? [];
    const labels = stats.map((r) => ({ name: r.name, count: Number(r.count), train: Number(r.count) - Number(r.val), val: Number(r.val) }));
    const rejectedCount = countsBy.get(row.id);
    const activeIngest = activeBy.get(row.id);
    const lastIngest = lastBy.get(row.id);
    const reason = notTrainableReason(row.status, labels);
    const ingesting = row.status === "ingesting";
    return {
      id: row.id,
      name: row.name,
      status: row.status,
      version: row.version,
      image_count: labels.reduce((sum, l) => sum + l.count, 0),
      bytes: stats.reduce((sum, r) => sum + Number(r.bytes), 0),
      labels,
      rejected_count: Number(rejectedCount?.n ?? 0),
      rejected: (rejectedBy.get(row.id) ?? []).map((r) => ({ path: r.path, code: r.code, message: r.message })),
      duplicate_count: Number(rejectedCount?.dup ?? 0),
      trainable: row.status === "ready" && reason === null,
      not_trainable_reason: row.status === "ready" || ingesting ? reason : row.error ?? reason ?? `The dataset is ${row.status}.`,
      ingest: ingesting
        ? { done: Number(activeIngest?.done ?? 0), total: Number(activeIngest?.total ?? 0), error: null }
        : { done: lastIngest?.cursor ?? 0, total: lastIngest?.total ?? 0, error: lastIngest?.error ?? null },
      error: row.error,
      created_at: row.createdAt,
      updated_at: row.updatedAt,
    };
  });
}

/** One page of the project's datasets, newest first (services/pagination.ts). */
export async function listDatasets(db: Db, projectId: string, page: PageQuery) {
  const rows = await db
    .select()
    .from(datasets)
    .where(and(eq(datasets.projectId, projectId), afterCursor(datasets.createdAt, datasets.id, page.cursor)))
    .orderBy(...newestFirst(datasets.createdAt, datasets.id))
    .limit(page.limit + 1)
    .all();
  const { items, nextCursor } = pageOf(rows, page.limit, (r) => r);
  return { datasets: await datasetViews(db, items), next_cursor: nextCursor };
}

/** Refuses to delete a dataset a queued or running job trains on (409 dataset_in_use). */
export async function assertDatasetDeletable(db: Db, row: DatasetRow): Promise<void> {
  const active = await db.select({ id: jobs.id }).from(jobs).where(and(eq(jobs.datasetId, row.id), inArray(jobs.status, ["queued", "running"]))).limit(1).get();
  if (active) throw new ApiError("dataset_in_use", `Job '${active.id}' is training on this dataset; cancel it (POST /v1/jobs/${active.id}/cancel) before deleting the dataset.`, { job_id: active.id });
}

