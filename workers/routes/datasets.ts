import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, desc, eq } from "drizzle-orm";
import { ApiError, notFound, withContext } from "../../shared/errors";
import { newId, sha256Hex } from "../../shared/ids";
import { inspectImage } from "../../shared/image/sniff";
import {
  DEFAULT_PART_BYTES, MAX_ARCHIVE_BODY_BYTES, MAX_PART_BYTES, MIN_PART_BYTES, createDatasetRequest, createUploadRequest, datasetSchema, filenameSchema, imageUploadResponse, labelSchema, uploadSchema,
} from "../../shared/schemas";
import { pageQuery } from "../services/pagination";
import { createRouter } from "../app";
import { datasets, uploadParts, uploads } from "../db/schema";
import { readBodyLimited, requireContentLength } from "../services/bodies";
import { MAX_IMAGE_BYTES, datasetView, deleteDataset, listDatasets, getDataset, imageObjectKey, recordImages, writableVersion } from "../services/datasets";
import { nowIso } from "../services/db";
import { archiveObjectKey, startIngest } from "../services/ingest";
import { binaryBody, errors, idParam, jsonBody, jsonResponse, security } from "./openapi-helpers";

export const datasetRoutes = createRouter();

const datasetParam = z.object({ id: idParam("id", "ds_...") });
const ZIP_TYPES = ["application/zip", "application/x-zip-compressed", "application/octet-stream"];
/** R2 allows at most 10,000 parts per multipart upload. */
const MAX_PARTS = 10_000;

async function loadDataset(c: { var: { db: any; caller: { projectId: string } } }, id: string) {
  const row = await getDataset(c.var.db, c.var.caller.projectId, id);
  if (!row) throw notFound("dataset", id);
  return row;
}

datasetRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets", tags: ["datasets"], security, summary: "Create a dataset",
    request: { body: jsonBody(createDatasetRequest) },
    responses: { 201: jsonResponse("The new, empty dataset", datasetSchema), 400: errors[400], 401: errors[401] },
  }),
  async (c) => {
    const { name } = c.req.valid("json");
    const now = nowIso();
    const row = await c.var.db.insert(datasets).values({ id: newId("ds"), projectId: c.var.caller.projectId, name, createdAt: now, updatedAt: now }).returning().get();
    return c.json(await datasetView(c.var.db, row), 201);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets", tags: ["datasets"], security, summary: "List the project's datasets, newest first, a page at a time",
    request: { query: pageQuery },
    responses: { 200: jsonResponse("One page of datasets, newest first", z.object({ datasets: z.array(datasetSchema), next_cursor: z.string().nullable().describe("pass as ?cursor= for the next page; null on the last page") })), 400: errors[400], 401: errors[401] },
  }),
  async (c) => c.json(await listDatasets(c.var.db, c.var.caller.projectId, c.req.valid("query")), 200),
);

datasetRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets/{id}", tags: ["datasets"], security, summary: "Read a dataset with its statistics and rejected files",
    request: { params: datasetParam },
    responses: { 200: jsonResponse("The dataset", datasetSchema), 401: errors[401], 404: errors[404] },
  }),
  async (c) => c.json(await datasetView(c.var.db, await loadDataset(c, c.req.valid("param").id)), 200),
);

datasetRoutes.openapi(
  createRoute({
    method: "delete", path: "/datasets/{id}", tags: ["datasets"], security, summary: "Delete a dataset and its images (models trained on it stay)",
    request: { params: datasetParam },
    responses: { 204: { description: "Deleted" }, 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    await deleteDataset(c.var.db, c.env.BUCKET, await loadDataset(c, c.req.valid("param").id));
    return c.body(null, 204);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "put", path: "/datasets/{id}/images/{label}/{filename}", tags: ["datasets"], security,
    summary: "Upload one image (JPEG or PNG) under a label; the same label/filename replaces the earlier image",
    request: {
      params: z.object({ id: idParam("id", "ds_..."), label: z.string().meta({ param: { name: "label", in: "path" } }), filename: z.string().meta({ param: { name: "filename", in: "path" } }) }),
      body: binaryBody("image/jpeg", "image/png", "application/octet-stream"),
    },
    responses: { 201: jsonResponse("Stored", imageUploadResponse), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409], 413: errors[413], 422: errors[422] },
  }),
  async (c) => {
    const { id, label, filename } = c.req.valid("param");
    const labelCheck = labelSchema.safeParse(label);
    if (!labelCheck.success) throw new ApiError("invalid_label", `Label '${label}': ${labelCheck.error.issues[0].message}.`, { field: "label" });
    const fileCheck = filenameSchema.safeParse(filename);
    if (!fileCheck.success) throw new ApiError("invalid_filename", `File name '${filename}': ${fileCheck.error.issues[0].message}.`, { field: "filename" });
    const dataset = await loadDataset(c, id);
    const bytes = await readBodyLimited(c.req.raw, MAX_IMAGE_BYTES, "image");
    let info;
    try {
      info = inspectImage(bytes, { maxPixels: Number(c.env.MAX_IMAGE_PIXELS ?? 40_000_000) });
    } catch (err) {
      throw withContext(err, "", { path: `${label}/${filename}` });
    }
    const sha256 = await sha256Hex(bytes);
    await c.env.BUCKET.put(imageObjectKey(dataset.projectId, sha256), bytes, { httpMetadata: { contentType: `image/${info.format}` } });
    const version = await writableVersion(c.var.db, dataset.id);
    const [outcome] = await recordImages(c.var.db, dataset.id, version, [{ label, filename, split: "auto", sha256, bytes: bytes.length, format: info.format, width: info.width, height: info.height }]);
    if (outcome.status === "duplicate") {
      throw new ApiError("duplicate_image", `This image is already in the dataset as '${outcome.existingPath}'. Each image is kept once, so it cannot straddle the train/val split.`, { existing_path: outcome.existingPath, sha256 });
    }
    if (dataset.status !== "ingesting") await c.var.db.update(datasets).set({ status: "ready", error: null, updatedAt: nowIso() }).where(eq(datasets.id, dataset.id));
    return c.json({ sha256, label, filename, width: info.width, height: info.height, format: info.format, bytes: bytes.length, dataset_version: version }, 201);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets/{id}/archive", tags: ["datasets"], security,
    summary: "Upload a ZIP (label/file, or train/label/file and val/label/file), at most 100 MB; ingestion runs in the background",
    request: { params: datasetParam, query: z.object({ filename: z.string().max(200).optional().describe("the archive's file name, used in messages about it") }), body: binaryBody("application/zip") },
    responses: { 202: jsonResponse("The dataset, status ingesting", datasetSchema), 401: errors[401], 404: errors[404], 411: { description: "Content-Length missing" }, 413: errors[413], 415: errors[415] },
  }),
  async (c) => {
    const dataset = await loadDataset(c, c.req.valid("param").id);
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (!ZIP_TYPES.includes(type)) throw new ApiError("unsupported_media_type", `Send the archive with Content-Type: application/zip (got '${type || "none"}').`);
    requireContentLength(c.req.raw, MAX_ARCHIVE_BODY_BYTES, "archive");
    const ingestId = newId("ing");
    const key = archiveObjectKey(dataset.projectId, dataset.id, ingestId);
    // The user's file name (a `?filename=` query) goes with the archive so ingest errors can name it.
    const filename = (c.req.query("filename") ?? "").split(/[\\/]/).pop()!.slice(0, 200) || "the archive";
    await c.env.BUCKET.put(key, c.req.raw.body!, { customMetadata: { filename } });
    await startIngest(c.env, c.var.db, dataset.projectId, dataset.id, key, ingestId);
    return c.json(await datasetView(c.var.db, (await getDataset(c.var.db, dataset.projectId, dataset.id))!), 202);
  },
);

// ---------------------------------------------------------------- multipart uploads of large archives
const uploadParams = z.object({ id: idParam("id", "ds_..."), upload_id: idParam("upload_id", "up_...") });

async function loadUpload(c: any, datasetId: string, uploadId: string) {
  const upload = await c.var.db.select().from(uploads).where(and(eq(uploads.id, uploadId), eq(uploads.datasetId, datasetId), eq(uploads.projectId, c.var.caller.projectId))).get();
  if (!upload) throw notFound("upload", uploadId);
  return upload as typeof uploads.$inferSelect;
}
const requireOpen = (upload: typeof uploads.$inferSelect) => {
  if (upload.status !== "open") throw new ApiError("upload_not_open", `Upload '${upload.id}' is ${upload.status}; start a new one with POST /v1/datasets/${upload.datasetId}/uploads.`);
};

datasetRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets/{id}/uploads", tags: ["datasets"], security,
    summary: "Start a multipart upload for an archive of any size (parts of `part_size` bytes, the last may be smaller)",
    request: { params: datasetParam, body: jsonBody(createUploadRequest) },
    responses: { 201: jsonResponse("The upload", uploadSchema), 400: errors[400], 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const dataset = await loadDataset(c, c.req.valid("param").id);
    const { filename, part_size } = c.req.valid("json");
    const id = newId("up");
    const key = archiveObjectKey(dataset.projectId, dataset.id, id);
    const multipart = await c.env.BUCKET.createMultipartUpload(key, { httpMetadata: { contentType: "application/zip" }, customMetadata: { filename } });
    const partSize = part_size ?? DEFAULT_PART_BYTES;
    await c.var.db.insert(uploads).values({ id, datasetId: dataset.id, projectId: dataset.projectId, filename, objectKey: key, r2UploadId: multipart.uploadId, partSize });
    return c.json({ upload_id: id, part_size: partSize, filename, status: "open", max_parts: MAX_PARTS }, 201);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets/{id}/uploads/{upload_id}", tags: ["datasets"], security, operationId: "getUpload",
    summary: "Read a multipart upload with the parts received so far (what an interrupted upload resumes from)",
    request: { params: uploadParams },
    responses: { 200: jsonResponse("The upload and its parts, by number", uploadSchema), 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const { id, upload_id } = c.req.valid("param");
    await loadDataset(c, id);
    const upload = await loadUpload(c, id, upload_id);
    // At most 10,000 parts of three small columns: one statement, well inside D1's limits.
    const parts = await c.var.db.select().from(uploadParts).where(eq(uploadParts.uploadId, upload.id)).orderBy(asc(uploadParts.partNumber)).all();
    return c.json({
      upload_id: upload.id, part_size: upload.partSize, filename: upload.filename, status: upload.status, max_parts: MAX_PARTS,
      parts: parts.map((p) => ({ n: p.partNumber, etag: p.etag, bytes: p.bytes })),
      received_bytes: parts.reduce((sum, p) => sum + p.bytes, 0),
    }, 200);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "put", path: "/datasets/{id}/uploads/{upload_id}/parts/{n}", tags: ["datasets"], security,
    summary: "Upload part n (from 1); sending the same n again replaces it",
    request: { params: uploadParams.extend({ n: z.coerce.number().int().min(1).max(MAX_PARTS).meta({ param: { name: "n", in: "path" } }) }), body: binaryBody("application/octet-stream") },
    responses: { 200: jsonResponse("Stored part", z.object({ n: z.number().int(), etag: z.string(), bytes: z.number().int() })), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409], 411: { description: "Content-Length missing" }, 413: errors[413] },
  }),
  async (c) => {
    const { id, upload_id, n } = c.req.valid("param");
    await loadDataset(c, id);
    const upload = await loadUpload(c, id, upload_id);
    requireOpen(upload);
    const length = requireContentLength(c.req.raw, Math.min(upload.partSize, MAX_PART_BYTES), `part ${n}`);
    const part = await c.env.BUCKET.resumeMultipartUpload(upload.objectKey, upload.r2UploadId).uploadPart(n, c.req.raw.body!);
    await c.var.db.insert(uploadParts).values({ uploadId: upload.id, partNumber: n, etag: part.etag, bytes: length }).onConflictDoUpdate({ target: [uploadParts.uploadId, uploadParts.partNumber], set: { etag: part.etag, bytes: length } });
    return c.json({ n, etag: part.etag, bytes: length }, 200);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets/{id}/uploads/{upload_id}/complete", tags: ["datasets"], security,
    summary: "Assemble the parts and start ingesting the archive",
    request: { params: uploadParams },
    responses: { 202: jsonResponse("The dataset, status ingesting", datasetSchema), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id, upload_id } = c.req.valid("param");
    const dataset = await loadDataset(c, id);
    const upload = await loadUpload(c, id, upload_id);
    requireOpen(upload);
    const parts = await c.var.db.select().from(uploadParts).where(eq(uploadParts.uploadId, upload.id)).orderBy(asc(uploadParts.partNumber)).all();
    if (parts.length === 0) throw new ApiError("no_parts", "No parts were uploaded; PUT the archive's parts before completing.");
    const gap = parts.findIndex((p, i) => p.partNumber !== i + 1);
    if (gap >= 0) throw new ApiError("missing_part", `Part ${gap + 1} is missing; parts must be numbered 1..N without gaps.`, { part: gap + 1 });
    const short = parts.slice(0, -1).find((p) => p.bytes !== upload.partSize);
    if (short) throw new ApiError("invalid_part_size", `Part ${short.partNumber} has ${short.bytes} bytes; every part but the last must be exactly ${upload.partSize} bytes. Upload it again.`, { part: short.partNumber, part_size: upload.partSize });
    if (parts.length > 1 && upload.partSize < MIN_PART_BYTES) throw new ApiError("invalid_part_size", `Parts must be at least ${MIN_PART_BYTES} bytes.`);
    await c.env.BUCKET.resumeMultipartUpload(upload.objectKey, upload.r2UploadId).complete(parts.map((p) => ({ partNumber: p.partNumber, etag: p.etag })));
    const claimed = await c.var.db.update(uploads).set({ status: "completed" }).where(and(eq(uploads.id, upload.id), eq(uploads.status, "open"))).returning({ id: uploads.id });
    if (claimed.length === 0) throw new ApiError("upload_not_open", `Upload '${upload.id}' was completed or aborted concurrently.`);
    await startIngest(c.env, c.var.db, dataset.projectId, dataset.id, upload.objectKey, upload.id.replace(/^up_/, "ing_"));
    return c.json(await datasetView(c.var.db, (await getDataset(c.var.db, dataset.projectId, dataset.id))!), 202);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "delete", path: "/datasets/{id}/uploads/{upload_id}", tags: ["datasets"], security, summary: "Abort a multipart upload and discard its parts",
    request: { params: uploadParams },
    responses: { 204: { description: "Aborted" }, 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id, upload_id } = c.req.valid("param");
    await loadDataset(c, id);
    const upload = await loadUpload(c, id, upload_id);
    requireOpen(upload);
    await c.env.BUCKET.resumeMultipartUpload(upload.objectKey, upload.r2UploadId).abort();
    await c.var.db.batch([c.var.db.update(uploads).set({ status: "aborted" }).where(eq(uploads.id, upload.id)), c.var.db.delete(uploadParts).where(eq(uploadParts.uploadId, upload.id))]);
    return c.body(null, 204);
  },
);
