/**
 * The images of a dataset version: listing, reading bytes, and the two edits the dashboard's one-click fixes need
 * (remove an image, move it to another label or split). Every edit starts a NEW dataset version in the same D1 batch
 * (a transaction) that changes the rows, so a version a job or a diagnostics report already used never changes and
 * a job created concurrently sees either none or all of an edit. Image bytes are content-addressed in R2 and kept:
 * older versions still reference them (deleteDataset removes the orphans).
 */
import { and, desc, eq, lt, sql } from "drizzle-orm";
import { ApiError } from "../../shared/errors";
import { datasetImages, datasets } from "../db/schema";
import type { Db } from "./db";
import { nowIso } from "./db";
import { inSnapshot, type DatasetRow, type ImageRow } from "./datasets";

export type Split = "train" | "val" | "auto";

/** `path` as uploaded: `label/file`, or `train/label/file` / `val/label/file` when the archive used split folders. */
export const imagePath = (i: { label: string; filename: string; split: string }) => `${i.split === "auto" ? "" : `${i.split}/`}${i.label}/${i.filename}`;

export function imageView(row: ImageRow) {
  return { sha256: row.sha256, path: imagePath(row), label: row.label, split: row.split, width: row.width, height: row.height, bytes: row.bytes, format: row.format };
}

export const SHA256_PATTERN = /^[0-9a-f]{64}$/;

// Cursors are opaque to clients: the last row id seen, base64url-encoded. Rows are listed newest first (id desc).
export const encodeImageCursor = (id: number) => btoa(`img:${id}`).replace(/=+$/, "");
export function decodeImageCursor(cursor: string): number {
  let text = "";
  try {
    text = atob(cursor);
  } catch {
    /* falls through to the error below */
  }
  const match = /^img:(\d{1,15})$/.exec(text);
  if (!match) throw new ApiError("invalid_cursor", "This cursor is not one this list returned. Pass the next_cursor of the previous page, or leave cursor out to start over.", { field: "cursor" });
  return Number(match[1]);
}

export interface ImageListQuery {
  label?: string;
  split?: Split;
  limit: number;
  cursor?: string;
}

/** One page of the images in the dataset's current version. Bounded: one query of at most limit + 1 rows. */
export async function listImages(db: Db, dataset: DatasetRow, query: ImageListQuery) {
  const conditions = [inSnapshot(dataset.id, dataset.version)];
  if (query.label !== undefined) conditions.push(eq(datasetImages.label, query.label));
  if (query.split !== undefined) conditions.push(eq(datasetImages.split, query.split));
  if (query.cursor !== undefined) conditions.push(lt(datasetImages.id, decodeImageCursor(query.cursor)));
  const rows = await db.select().from(datasetImages).where(and(...conditions)).orderBy(desc(datasetImages.id)).limit(query.limit + 1).all();
  const page = rows.slice(0, query.limit);
  return { images: page.map(imageView), next_cursor: rows.length > query.limit ? encodeImageCursor(page[page.length - 1].id) : null };
}

/**
 * The row of an image in any version of the dataset (newest first): a model's misclassified validation images may
 * come from a version that later edits changed, and their bytes must stay readable.
 */
export async function findImageInAnyVersion(db: Db, datasetId: string, sha256: string): Promise<ImageRow | null> {
  return (await db.select().from(datasetImages).where(and(eq(datasetImages.datasetId, datasetId), eq(datasetImages.sha256, sha256))).orderBy(desc(datasetImages.id)).limit(1).get()) ?? null;
}

async function liveImage(db: Db, dataset: DatasetRow, sha256: string): Promise<ImageRow> {
  const row = await db.select().from(datasetImages).where(and(inSnapshot(dataset.id, dataset.version), eq(datasetImages.sha256, sha256))).get();
  if (!row) {
    throw new ApiError("image_not_found", `No image with sha256 '${sha256}' in the current version (${dataset.version}) of dataset '${dataset.id}'. List them with GET /v1/datasets/${dataset.id}/images.`, { sha256 });
  }
  return row;
}

// SQL that starts the next version: one past both the current and the frozen one.
const bumpVersion = (db: Db, datasetId: string) =>
  db
    .update(datasets)
    .set({ version: sql`max(${datasets.version}, ${datasets.frozenVersion}) + 1`, updatedAt: nowIso() })
    .where(eq(datasets.id, datasetId));
const newVersionOf = (datasetId: string) => sql`(select ${datasets.version} from ${datasets} where ${datasets.id} = ${datasetId})`;

async function versionOf(db: Db, datasetId: string): Promise<number> {
  const row = await db.select({ version: datasets.version }).from(datasets).where(eq(datasets.id, datasetId)).get();
  if (!row) throw new ApiError("dataset_not_found", `Dataset '${datasetId}' no longer exists.`);
  return row.version;
}

/** Removes the image from a new version; returns that version. */
export async function removeImage(db: Db, dataset: DatasetRow, sha256: string): Promise<{ version: number; image: ReturnType<typeof imageView> }> {
  const row = await liveImage(db, dataset, sha256);
  await db.batch([
    bumpVersion(db, dataset.id),
    db.update(datasetImages).set({ removedVersion: newVersionOf(dataset.id) as any }).where(and(eq(datasetImages.id, row.id), sql`${datasetImages.removedVersion} is null`)),
  ]);
  return { version: await versionOf(db, dataset.id), image: imageView(row) };
}

/**
 * Moves the image to another label and/or split, optionally renaming it, in a new version (same bytes). 409
 * `path_taken` when another image already sits at the target path (send a new `filename` to move it anyway). A change to nothing answers the image as it is, with no new version.
 */
export async function moveImage(db: Db, dataset: DatasetRow, sha256: string, change: { label?: string; split?: Split; filename?: string }) {
  const row = await liveImage(db, dataset, sha256);
  const target = { label: change.label ?? row.label, split: change.split ?? row.split, filename: change.filename ?? row.filename };
  if (target.label === row.label && target.split === row.split && target.filename === row.filename) return { version: dataset.version, image: imageView(row), changed: false };
  const occupant = await db
    .select()
    .from(datasetImages)
    .where(and(inSnapshot(dataset.id, dataset.version), eq(datasetImages.label, target.label), eq(datasetImages.split, target.split), eq(datasetImages.filename, target.filename)))
    .get();
  if (occupant) {
    throw new ApiError("path_taken", `Another image already is '${imagePath(target)}'. Send a different filename with the move, or delete or move that one first.`, { path: imagePath(target), sha256: occupant.sha256 });
  }
  const { id: _id, addedVersion: _added, removedVersion: _removed, ...copy } = row;
  await db.batch([
    bumpVersion(db, dataset.id),
    db.update(datasetImages).set({ removedVersion: newVersionOf(dataset.id) as any }).where(and(eq(datasetImages.id, row.id), sql`${datasetImages.removedVersion} is null`)),
    db.insert(datasetImages).values({ ...copy, ...target, addedVersion: newVersionOf(dataset.id) as any }),
  ]);
  const moved = await db.select().from(datasetImages).where(and(eq(datasetImages.datasetId, dataset.id), eq(datasetImages.sha256, sha256), sql`${datasetImages.removedVersion} is null`)).orderBy(desc(datasetImages.id)).limit(1).get();
  return { version: await versionOf(db, dataset.id), image: imageView(moved ?? { ...row, ...target }), changed: true };
}
