/**
 * Multipart uploads of large archives: an R2 multipart upload per `uploads` row, its parts recorded in
 * `upload_parts` (number, etag, bytes) so completing checks them and an interrupted client can resume.
 */
import { and, asc, eq } from "drizzle-orm";
import { ApiError } from "../../shared/errors";
import { newId } from "../../shared/ids";
import { DEFAULT_PART_BYTES, MIN_PART_BYTES } from "../../shared/schemas";
import { uploadParts, uploads } from "../db/schema";
import type { Env } from "../env";
import type { DatasetRow } from "./datasets";
import { nowIso, type Db } from "./db";
import { startIngest } from "./ingest";
import { archiveObjectKey } from "./object-keys";

export type UploadRow = typeof uploads.$inferSelect;
export type UploadPartRow = typeof uploadParts.$inferSelect;

/** R2 allows at most 10,000 parts per multipart upload. */
export const MAX_PARTS = 10_000;

export async function getUpload(db: Db, projectId: string, datasetId: string, uploadId: string): Promise<UploadRow | null> {
  return (await db.select().from(uploads).where(and(eq(uploads.id, uploadId), eq(uploads.datasetId, datasetId), eq(uploads.projectId, projectId))).get()) ?? null;
}

/** The parts received so far, by number: at most 10,000 rows of three small columns, one statement. */
export async function listUploadParts(db: Db, uploadId: string): Promise<UploadPartRow[]> {
  return db.select().from(uploadParts).where(eq(uploadParts.uploadId, uploadId)).orderBy(asc(uploadParts.partNumber)).all();
}

export function uploadView(upload: Pick<UploadRow, "id" | "partSize" | "filename" | "status">) {
  return { upload_id: upload.id, part_size: upload.partSize, filename: upload.filename, status: upload.status as "open" | "completed" | "aborted", max_parts: MAX_PARTS };
}

/** 409 `upload_not_open` unless parts may still be added to the upload. */
export function requireOpen(upload: UploadRow): void {
  if (upload.status !== "open") throw new ApiError("upload_not_open", `Upload '${upload.id}' is ${upload.status}; start a new one with POST /v1/datasets/${upload.datasetId}/uploads.`);
}

export async function startUpload(db: Db, bucket: R2Bucket, dataset: DatasetRow, filename: string, partSize = DEFAULT_PART_BYTES): Promise<UploadRow> {
  const id = newId("up");
  const key = archiveObjectKey(dataset.projectId, dataset.id, id);
  const multipart = await bucket.createMultipartUpload(key, { httpMetadata: { contentType: "application/zip" }, customMetadata: { filename } });
  return db.insert(uploads).values({ id, datasetId: dataset.id, projectId: dataset.projectId, filename, objectKey: key, r2UploadId: multipart.uploadId, partSize }).returning().get();
}

/** Stores part `n` (sending the same n again replaces it); `length` is the checked Content-Length of `body`. */
export async function storeUploadPart(db: Db, bucket: R2Bucket, upload: UploadRow, n: number, body: ReadableStream, length: number) {
  requireOpen(upload);
  const part = await bucket.resumeMultipartUpload(upload.objectKey, upload.r2UploadId).uploadPart(n, body);
  // updated_at marks activity: the scheduled sweep aborts uploads idle for a day (services/sweeps.ts).
  await db.batch([
    db.insert(uploadParts).values({ uploadId: upload.id, partNumber: n, etag: part.etag, bytes: length }).onConflictDoUpdate({ target: [uploadParts.uploadId, uploadParts.partNumber], set: { etag: part.etag, bytes: length } }),
    db.update(uploads).set({ updatedAt: nowIso() }).where(eq(uploads.id, upload.id)),
  ]);
  return { n, etag: part.etag, bytes: length };
}

/** Checks the parts (1..N without gaps, all but the last exactly `part_size`), assembles them and starts ingesting. */
export async function completeUpload(env: Env, db: Db, upload: UploadRow): Promise<void> {
  requireOpen(upload);
  const parts = await listUploadParts(db, upload.id);
  if (parts.length === 0) throw new ApiError("no_parts", "No parts were uploaded; PUT the archive's parts before completing.");
  const gap = parts.findIndex((p, i) => p.partNumber !== i + 1);
  if (gap >= 0) throw new ApiError("missing_part", `Part ${gap + 1} is missing; parts must be numbered 1..N without gaps.`, { part: gap + 1 });
  const short = parts.slice(0, -1).find((p) => p.bytes !== upload.partSize);
  if (short) throw new ApiError("invalid_part_size", `Part ${short.partNumber} has ${short.bytes} bytes; every part but the last must be exactly ${upload.partSize} bytes. Upload it again.`, { part: short.partNumber, part_size: upload.partSize });
  if (parts.length > 1 && upload.partSize < MIN_PART_BYTES) throw new ApiError("invalid_part_size", `Parts must be at least ${MIN_PART_BYTES} bytes.`);
  await env.BUCKET.resumeMultipartUpload(upload.objectKey, upload.r2UploadId).complete(parts.map((p) => ({ partNumber: p.partNumber, etag: p.etag })));
  const claimed = await db.update(uploads).set({ status: "completed" }).where(and(eq(uploads.id, upload.id), eq(uploads.status, "open"))).returning({ id: uploads.id });
  if (claimed.length === 0) throw new ApiError("upload_not_open", `Upload '${upload.id}' was completed or aborted concurrently.`);
  await startIngest(env, db, upload.projectId, upload.datasetId, upload.objectKey, upload.id.replace(/^up_/, "ing_"));
}

/** Aborts the R2 upload and forgets its parts. */
export async function abortUpload(db: Db, bucket: R2Bucket, upload: UploadRow): Promise<void> {
  requireOpen(upload);
  await bucket.resumeMultipartUpload(upload.objectKey, upload.r2UploadId).abort();
  await db.batch([db.update(uploads).set({ status: "aborted" }).where(eq(uploads.id, upload.id)), db.delete(uploadParts).where(eq(uploadParts.uploadId, upload.id))]);
}
