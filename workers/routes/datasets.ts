import { createRoute, z } from "@hono/zod-openapi";
import { ApiError, notFound } from "../../shared/errors";
import { MAX_ARCHIVE_BODY_BYTES, MAX_PART_BYTES, createDatasetRequest, createUploadRequest, datasetSchema, filenameSchema, imageUploadResponse, labelSchema, uploadPartSchema, uploadSchema } from "../../shared/schemas";
import { pageQuery } from "../services/pagination";
import { deleteDataset } from "../services/deletions";
import { createRouter } from "../app";
import { getConfig } from "../config";
import { enforceQuotas } from "../services/quotas";
import { readBodyLimited, requireContentLength } from "../services/bodies";
import { MAX_IMAGE_BYTES, createDataset, datasetView, getDataset, listDatasets, sanitizeShownName, storeImage } from "../services/datasets";
import { receiveArchive } from "../services/ingest";
import { MAX_PARTS, abortUpload, completeUpload, getUpload, listUploadParts, startUpload, storeUploadPart, uploadView } from "../services/uploads";
import { binaryBody, errors, idParam, jsonBody, jsonResponse, nextCursorSchema, security } from "./openapi-helpers";
import { EXAMPLE_IDS, exampleDataset, exampleImageUploaded, exampleUpload, page } from "./openapi-examples";

export const datasetRoutes = createRouter();

const datasetParam = z.object({ id: idParam("id", EXAMPLE_IDS.dataset, "the dataset's id") });
const ZIP_TYPES = ["application/zip", "application/x-zip-compressed", "application/octet-stream"];

async function loadDataset(c: { var: { db: any; caller: { projectId: string } } }, id: string) {
  const row = await getDataset(c.var.db, c.var.caller.projectId, id);
  if (!row) throw notFound("dataset", id);
  return row;
}

datasetRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets", tags: ["datasets"], security, summary: "Create a dataset",
    request: { body: jsonBody(createDatasetRequest, { name: "flowers" }) },
    responses: { 201: jsonResponse("The new, empty dataset", datasetSchema, { ...exampleDataset, status: "empty", version: 0, image_count: 0, bytes: 0, labels: [], rejected_count: 0, rejected: [], trainable: false, not_trainable_reason: "The dataset has no images yet.", ingest: { done: 0, total: 0, error: null } }), 400: errors[400], 401: errors[401] },
  }),
  async (c) => {
    await enforceQuotas(c.var.db, c.var.caller.projectId, getConfig(c.env).quotas, { datasets: 1 });
    const row = await createDataset(c.var.db, c.var.caller.projectId, c.req.valid("json").name);
    return c.json(await datasetView(c.var.db, row), 201);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets", tags: ["datasets"], security, summary: "List the project's datasets, newest first, a page at a time",
    request: { query: pageQuery },
    responses: { 200: jsonResponse("One page of datasets, newest first", z.object({ datasets: z.array(datasetSchema).describe("datasets, newest first"), next_cursor: nextCursorSchema }), page("datasets", exampleDataset)), 400: errors[400], 401: errors[401] },
  }),
  async (c) => c.json(await listDatasets(c.var.db, c.var.caller.projectId, c.req.valid("query")), 200),
);

datasetRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets/{id}", tags: ["datasets"], security, summary: "Read a dataset with its statistics and rejected files",
    request: { params: datasetParam },
    responses: { 200: jsonResponse("The dataset", datasetSchema, exampleDataset), 401: errors[401], 404: errors[404] },
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
    await deleteDataset(c.env, c.var.db, await loadDataset(c, c.req.valid("param").id));
    return c.body(null, 204);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "put", path: "/datasets/{id}/images/{label}/{filename}", tags: ["datasets"], security,
    summary: "Upload one image (JPEG or PNG) under a label; the same label/filename replaces the earlier image",
    request: {
      params: z.object({
        id: idParam("id", EXAMPLE_IDS.dataset, "the dataset's id"),
        label: z.string().meta({ param: { name: "label", in: "path" }, description: "the image's label (URL-encoded; 1 to 100 letters, digits, spaces or _ . - + ( ) & , ')", example: "daisy" }),
        filename: z.string().meta({ param: { name: "filename", in: "path" }, description: "its file name (URL-encoded, no folders)", example: "daisy_001.jpg" }),
      }),
      body: binaryBody("image/jpeg", "image/png", "application/octet-stream"),
    },
    responses: { 201: jsonResponse("Stored", imageUploadResponse, exampleImageUploaded), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409], 413: errors[413], 422: errors[422] },
  }),
  async (c) => {
    const { id, label: rawLabel, filename: rawFilename } = c.req.valid("param");
    const labelCheck = labelSchema.safeParse(rawLabel);
    if (!labelCheck.success) throw new ApiError("invalid_label", `Label '${sanitizeShownName(rawLabel, 120)}': ${labelCheck.error.issues[0].message}.`, { field: "label" });
    const fileCheck = filenameSchema.safeParse(rawFilename);
    if (!fileCheck.success) throw new ApiError("invalid_filename", `File name '${sanitizeShownName(rawFilename, 220)}': ${fileCheck.error.issues[0].message}.`, { field: "filename" });
    // Both NFC (shared/schemas.ts): the same label typed on macOS and Windows is one label.
    const label = labelCheck.data;
    const filename = fileCheck.data;
    const dataset = await loadDataset(c, id);
    // Peak memory: the image once (at most 32 MB; bench/memory measured +16.6 MiB for an 18.7 MiB PNG): its header
    // check walks every byte, so it is read whole into one buffer of its Content-Length, then stored from it.
    const bytes = await readBodyLimited(c.req.raw, MAX_IMAGE_BYTES, "image");
    await enforceQuotas(c.var.db, dataset.projectId, getConfig(c.env).quotas, { images: 1, bytes: bytes.length });
    return c.json(await storeImage(c.var.db, c.env.BUCKET, dataset, { label, filename, bytes }, getConfig(c.env).maxImagePixels), 201);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets/{id}/archive", tags: ["datasets"], security,
    summary: "Upload a ZIP (label/file, or train/label/file and val/label/file), at most 100 MB; ingestion runs in the background",
    request: { params: datasetParam, query: z.object({ filename: z.string().max(200).optional().describe("the archive's file name, used in messages about it").meta({ example: "flowers.zip" }) }), body: binaryBody("application/zip") },
    responses: { 202: jsonResponse("The dataset, status ingesting", datasetSchema, { ...exampleDataset, status: "ingesting", ingest: { done: 120, total: 401, error: null } }), 401: errors[401], 404: errors[404], 411: errors[411], 413: errors[413], 415: errors[415] },
  }),
  async (c) => {
    const dataset = await loadDataset(c, c.req.valid("param").id);
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (!ZIP_TYPES.includes(type)) throw new ApiError("unsupported_media_type", `Send the archive with Content-Type: application/zip (got '${type || "none"}').`);
    const archiveBytes = requireContentLength(c.req.raw, MAX_ARCHIVE_BODY_BYTES, "archive");
    // An archive holds at least as many image bytes as it weighs (photos do not compress), and at least one image.
    await enforceQuotas(c.var.db, dataset.projectId, getConfig(c.env).quotas, { images: 1, bytes: archiveBytes });
    // The user's file name (a `?filename=` query) goes with the archive so ingest errors can name it.
    const filename = (c.req.query("filename") ?? "").split(/[\\/]/).pop()!.slice(0, 200) || "the archive";
    // Peak memory: one chunk (about 64 KB): the body streams into R2 (bench/memory: no growth for a 36.7 MiB zip).
    await receiveArchive(c.env, c.var.db, dataset, c.req.raw.body!, filename);
    return c.json(await datasetView(c.var.db, (await getDataset(c.var.db, dataset.projectId, dataset.id))!), 202);
  },
);

// ---------------------------------------------------------------- multipart uploads of large archives
const uploadParams = z.object({ id: idParam("id", EXAMPLE_IDS.dataset, "the dataset's id"), upload_id: idParam("upload_id", EXAMPLE_IDS.upload, "the upload's id") });

async function loadUpload(c: { var: { db: any; caller: { projectId: string } } }, datasetId: string, uploadId: string) {
  const upload = await getUpload(c.var.db, c.var.caller.projectId, datasetId, uploadId);
  if (!upload) throw notFound("upload", uploadId);
  return upload;
}

datasetRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets/{id}/uploads", tags: ["datasets"], security,
    summary: "Start a multipart upload for an archive of any size (parts of `part_size` bytes, the last may be smaller)",
    request: { params: datasetParam, body: jsonBody(createUploadRequest, { filename: "flowers.zip", part_size: 67_108_864 }) },
    responses: { 201: jsonResponse("The upload", uploadSchema, { upload_id: EXAMPLE_IDS.upload, part_size: 67_108_864, filename: "flowers.zip", status: "open", max_parts: 10_000 }), 400: errors[400], 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const dataset = await loadDataset(c, c.req.valid("param").id);
    const { filename, part_size } = c.req.valid("json");
    return c.json(uploadView(await startUpload(c.var.db, c.env.BUCKET, dataset, filename, part_size)), 201);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets/{id}/uploads/{upload_id}", tags: ["datasets"], security, operationId: "getUpload",
    summary: "Read a multipart upload with the parts received so far (what an interrupted upload resumes from)",
    request: { params: uploadParams },
    responses: { 200: jsonResponse("The upload and its parts, by number", uploadSchema, exampleUpload), 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const { id, upload_id } = c.req.valid("param");
    await loadDataset(c, id);
    const upload = await loadUpload(c, id, upload_id);
    const parts = await listUploadParts(c.var.db, upload.id);
    return c.json({
      ...uploadView(upload),
      parts: parts.map((p) => ({ n: p.partNumber, etag: p.etag, bytes: p.bytes })),
      received_bytes: parts.reduce((sum, p) => sum + p.bytes, 0),
    }, 200);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "put", path: "/datasets/{id}/uploads/{upload_id}/parts/{n}", tags: ["datasets"], security,
    summary: "Upload part n (from 1); sending the same n again replaces it",
    request: { params: uploadParams.extend({ n: z.coerce.number().int().min(1).max(MAX_PARTS).meta({ param: { name: "n", in: "path" }, description: "the part's number, from 1", example: 1 }) }), body: binaryBody("application/octet-stream") },
    responses: { 200: jsonResponse("Stored part", uploadPartSchema, exampleUpload.parts![0]), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409], 411: errors[411], 413: errors[413] },
  }),
  async (c) => {
    const { id, upload_id, n } = c.req.valid("param");
    await loadDataset(c, id);
    const upload = await loadUpload(c, id, upload_id);
    // Peak memory: one chunk: the part streams into R2's multipart upload.
    const length = requireContentLength(c.req.raw, Math.min(upload.partSize, MAX_PART_BYTES), `part ${n}`);
    return c.json(await storeUploadPart(c.var.db, c.env.BUCKET, upload, n, c.req.raw.body!, length), 200);
  },
);

datasetRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets/{id}/uploads/{upload_id}/complete", tags: ["datasets"], security,
    summary: "Assemble the parts and start ingesting the archive",
    request: { params: uploadParams },
    responses: { 202: jsonResponse("The dataset, status ingesting", datasetSchema, { ...exampleDataset, status: "ingesting", ingest: { done: 0, total: 0, error: null } }), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id, upload_id } = c.req.valid("param");
    const dataset = await loadDataset(c, id);
    await completeUpload(c.env, c.var.db, await loadUpload(c, id, upload_id));
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
    await abortUpload(c.var.db, c.env.BUCKET, await loadUpload(c, id, upload_id));
    return c.body(null, 204);
  },
);
