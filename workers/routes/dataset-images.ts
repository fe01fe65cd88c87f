import { createRoute, z } from "@hono/zod-openapi";
import { ApiError, notFound } from "../../shared/errors";
import { filenameSchema, labelSchema } from "../../shared/schemas";
import { createRouter } from "../app";
import { getDataset, readImage } from "../services/datasets";
import { SHA256_PATTERN, findImageInAnyVersion, listImages, moveImage, removeImage } from "../services/dataset-images";
import { binaryResponse, errors, idParam, jsonBody, jsonResponse, nextCursorSchema, security } from "./openapi-helpers";
import { EXAMPLE_IDS, page } from "./openapi-examples";

export const datasetImageRoutes = createRouter();

const splitSchema = z.enum(["train", "val", "auto"]).describe("train or val: the dataset's own split; auto: a job's validation_fraction decides");
const imageSchema = z
  .object({
    sha256: z.string().describe("hex SHA-256 of the bytes: the image's id"),
    path: z.string().describe("the file's path as uploaded: label/file, or train/label/file and val/label/file"),
    label: z.string().describe("its label"),
    split: splitSchema.describe("train or val when the upload said so; auto: a job's held-out fraction decides"),
    width: z.number().int().describe("pixels, after EXIF rotation"),
    height: z.number().int().describe("pixels, after EXIF rotation"),
    bytes: z.number().int().describe("size as uploaded"),
    format: z.string().describe("`jpeg` or `png`"),
  })
  .meta({ id: "DatasetImage", description: "An image of a dataset version" });
const exampleImage: z.output<typeof imageSchema> = { sha256: EXAMPLE_IDS.sha256, path: "daisy/daisy_001.jpg", label: "daisy", split: "auto", width: 320, height: 240, bytes: 48_213, format: "jpeg" };
const imageParams = z.object({
  id: idParam("id", EXAMPLE_IDS.dataset, "the dataset's id"),
  sha256: z.string().regex(SHA256_PATTERN, "a sha256 is 64 lowercase hex characters").meta({ param: { name: "sha256", in: "path" }, description: "the image's SHA-256 (hex)", example: EXAMPLE_IDS.sha256 }),
});
const editResponse = z
  .object({ dataset_version: z.number().int().describe("the new dataset version"), image: imageSchema })
  .meta({ id: "DatasetImageEdit", description: "The result of an edit: the new version and the image" });

async function loadDataset(c: { var: { db: any; caller: { projectId: string } } }, id: string) {
  const row = await getDataset(c.var.db, c.var.caller.projectId, id);
  if (!row) throw notFound("dataset", id);
  return row;
}

datasetImageRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets/{id}/images", tags: ["datasets"], security, operationId: "listDatasetImages",
    summary: "List the images of the dataset's current version, newest first, optionally of one label or split",
    request: {
      params: z.object({ id: idParam("id", EXAMPLE_IDS.dataset, "the dataset's id") }),
      query: z.object({
        label: labelSchema.optional().describe("only images of this label"),
        split: splitSchema.optional().describe("only images of this split"),
        limit: z.coerce.number().int().min(1).max(100).default(50).describe("items per page, 1 to 100"),
        cursor: z.string().min(1).max(200).optional().describe("the next_cursor of the previous page; leave out for the first page"),
      }),
    },
    responses: { 200: jsonResponse("One page of images", z.object({ images: z.array(imageSchema).describe("images, newest first"), next_cursor: nextCursorSchema }), page("images", exampleImage)), 400: errors[400], 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const dataset = await loadDataset(c, c.req.valid("param").id);
    return c.json(await listImages(c.var.db, dataset, c.req.valid("query")), 200);
  },
);

datasetImageRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets/{id}/images/{sha256}", tags: ["datasets"], security, operationId: "getDatasetImage",
    summary: "The image's bytes with its content type (any version of the dataset, so older models' validation images stay visible)",
    request: { params: imageParams },
    responses: {
      200: binaryResponse("The image, as uploaded", "image/jpeg", "image/png"),
      400: errors[400], 401: errors[401], 404: errors[404],
    },
  }),
  async (c) => {
    const { id, sha256 } = c.req.valid("param");
    const dataset = await loadDataset(c, id);
    const row = await findImageInAnyVersion(c.var.db, dataset.id, sha256);
    const object = row ? await readImage(c.env.BUCKET, dataset.projectId, sha256) : null;
    if (!row || !object) throw new ApiError("image_not_found", `Dataset '${dataset.id}' has no image with sha256 '${sha256}'.`, { sha256 });
    // Peak memory: one chunk: the bytes stream from R2.
    return new Response(object.body, {
      status: 200,
      headers: {
        "content-type": `image/${row.format}`,
        "content-length": String(object.size),
        // Content-addressed: these bytes never change. Private: only this project's keys may read them.
        "cache-control": "private, max-age=31536000, immutable",
        "x-content-type-options": "nosniff",
      },
    });
  },
);

datasetImageRoutes.openapi(
  createRoute({
    method: "delete", path: "/datasets/{id}/images/{sha256}", tags: ["datasets"], security, operationId: "deleteDatasetImage",
    summary: "Remove an image; makes a new dataset version (versions jobs used keep it)",
    request: { params: imageParams },
    responses: { 200: jsonResponse("The new version and the removed image", editResponse, { dataset_version: 4, image: exampleImage }), 400: errors[400], 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const { id, sha256 } = c.req.valid("param");
    const { version, image } = await removeImage(c.var.db, await loadDataset(c, id), sha256);
    return c.json({ dataset_version: version, image }, 200);
  },
);

datasetImageRoutes.openapi(
  createRoute({
    method: "patch", path: "/datasets/{id}/images/{sha256}", tags: ["datasets"], security, operationId: "updateDatasetImage",
    summary: "Move an image to another label and/or split; makes a new dataset version (versions jobs used keep it as it was)",
    request: {
      params: imageParams,
      body: jsonBody(
        z
          .object({
            label: labelSchema.optional(),
            split: splitSchema.optional(),
            filename: filenameSchema.optional().describe("a new file name, e.g. when another image has this name under the target label"),
          })
          .strict()
          .refine((b) => b.label !== undefined || b.split !== undefined || b.filename !== undefined, "send label, split, filename or several")
          .meta({ id: "UpdateDatasetImageRequest", description: "Where the image should be: label, split, file name (at least one)" }),
        { label: "dandelion", split: "val" },
      ),
    },
    responses: { 200: jsonResponse("The new version and the image where it is now", editResponse, { dataset_version: 4, image: { ...exampleImage, path: "val/dandelion/daisy_001.jpg", label: "dandelion", split: "val" } }), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id, sha256 } = c.req.valid("param");
    const { version, image } = await moveImage(c.var.db, await loadDataset(c, id), sha256, c.req.valid("json"));
    return c.json({ dataset_version: version, image }, 200);
  },
);
