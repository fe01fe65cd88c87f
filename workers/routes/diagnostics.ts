import { createRoute, z } from "@hono/zod-openapi";
import { DEFAULT_BACKBONE } from "../../shared/catalog";
import { ApiError, notFound } from "../../shared/errors";
import { DEFAULT_JOB_HEAD, hyperparametersSchema, NO_AUGMENTATION } from "../../shared/schemas";
import { createRouter } from "../app";
import { resolveBackbone } from "../services/backbones";
import { freezeVersion, getDataset, labelStats, notTrainableReason } from "../services/datasets";
import { getDiagnostics } from "../services/diagnostics";
import { createJob } from "../services/jobs";
import { errors, idParam, jsonBody, jsonResponse, security } from "./openapi-helpers";
import { EXAMPLE_IDS, exampleImageUploaded } from "./openapi-examples";

export const diagnosticsRoutes = createRouter();
const datasetParam = z.object({ id: idParam("id", EXAMPLE_IDS.dataset, "the dataset's id") });

const imageRef = z.object({
  sha256: z.string().describe("the image's SHA-256"),
  path: z.string().describe("its path as uploaded"),
  label: z.string().describe("its label"),
  split: z.enum(["train", "val"]).describe("where the report's split put it"),
});
export const diagnosticsReportSchema = z
  .object({
    dataset_id: z.string().describe("the dataset"),
    dataset_version: z.number().int().describe("the version the report describes"),
    backbone: z.string().describe("the backbone whose embeddings were compared"),
    created_at: z.string().describe("ISO 8601 UTC"),
    job_id: z.string().describe("the diagnostics job that made it"),
    near_duplicates: z
      .array(
        z.object({
          a: imageRef.describe("one image"),
          b: imageRef.describe("the other"),
          similarity: z.number().describe("cosine similarity of their centred embeddings (1: the same picture)"),
          leak: z.boolean().describe("one is in train and the other in val: validation sees a training image"),
        }),
      )
      .describe("pairs across train and val (leaks) first, then by similarity"),
    suspected_mislabels: z
      .array(
        imageRef
          .extend({
            suggested_label: z.string().describe("the label an out-of-fold head and most of its nearest neighbours prefer"),
            score: z.number().describe("out-of-fold probability of the suggested label minus that of the given one, in (0, 1]"),
          })
          .passthrough(),
      )
      .describe("images an out-of-fold head and their nearest neighbours both give another label, most suspicious first"),
    outliers: z.array(imageRef.extend({ score: z.number().describe("1 - mean cosine similarity (centred features) to its nearest images; higher: odder") }).passthrough()).describe("images far from their nearest images (robust z-score of at least 3.5), oddest first"),
  })
  .passthrough()
  .meta({ id: "DiagnosticsReport", description: "Near duplicates, train/val leaks, suspected mislabels and outliers of a dataset version" });
const ref = (sha256: string, path: string, split: "train" | "val") => ({ sha256, path, label: path.split("/")[0]!, split });

const startDiagnosticsRequest = z
  .object({ backbone: z.string().min(1).optional().describe("a backbone id or builtin name; default: the builtin default") })
  .strict()
  .meta({ id: "StartDiagnosticsRequest", description: "Which backbone's embeddings to compare" });

diagnosticsRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets/{id}/diagnostics", tags: ["datasets"], security,
    summary: "Compute a diagnostics report (near duplicates and train/val leaks, suspected mislabels, outliers) for the dataset's current version on a runner, from cached embeddings",
    request: { params: datasetParam, body: { ...jsonBody(startDiagnosticsRequest, { backbone: "mobilenet_v2" }), required: false } },
    responses: { 202: jsonResponse("The diagnostics job", z.object({ job_id: z.string().describe("the job computing it (GET /v1/jobs/{id})"), dataset_version: z.number().int().describe("the version it describes") }), { job_id: EXAMPLE_IDS.job, dataset_version: 3 }), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json") ?? {};
    const { db, caller } = c.var;
    const dataset = await getDataset(db, caller.projectId, id);
    if (!dataset) throw notFound("dataset", id);
    const { labels } = await labelStats(db, dataset.id, dataset.version);
    const reason = dataset.status === "ready" ? notTrainableReason(dataset.status, labels) : `The dataset is ${dataset.status}${dataset.status === "ingesting" ? "; wait until it is ready" : ""}.`;
    if (reason) throw new ApiError("dataset_not_trainable", reason, { dataset_id: dataset.id, status: dataset.status });
    const backbone = await resolveBackbone(db, caller.projectId, body.backbone ?? DEFAULT_BACKBONE.name);
    // The report describes one version: freeze it as a training job does.
    const version = await freezeVersion(db, dataset.id);
    const job = await createJob(db, {
      projectId: caller.projectId, datasetId: dataset.id, datasetVersion: version, backbone: backbone.id,
      config: { kind: "diagnostics", head: DEFAULT_JOB_HEAD, hyperparameters: hyperparametersSchema.parse({}), augmentation: NO_AUGMENTATION },
    });
    return c.json({ job_id: job.id, dataset_version: version }, 202);
  },
);

diagnosticsRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets/{id}/diagnostics", tags: ["datasets"], security, operationId: "getDatasetDiagnostics",
    summary: "The latest diagnostics report of the dataset's current version",
    request: { params: datasetParam },
    responses: {
      200: jsonResponse("The report", diagnosticsReportSchema, {
        dataset_id: EXAMPLE_IDS.dataset, dataset_version: 3, backbone: "mobilenet_v2", created_at: "2026-12-01T09:40:00.000Z", job_id: EXAMPLE_IDS.job,
        near_duplicates: [{ a: ref(exampleImageUploaded.sha256, "daisy/daisy_001.jpg", "train"), b: ref(EXAMPLE_IDS.otherSha256, "daisy/daisy_001_copy.jpg", "val"), similarity: 0.998, leak: true }],
        suspected_mislabels: [{ ...ref(EXAMPLE_IDS.otherSha256, "roses/tulip_like.jpg", "train"), suggested_label: "tulips", score: 0.8 }],
        outliers: [{ ...ref(exampleImageUploaded.sha256, "sunflowers/screenshot.png", "train"), score: 3.1 }],
      }),
      401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const dataset = await getDataset(c.var.db, c.var.caller.projectId, id);
    if (!dataset) throw notFound("dataset", id);
    const report = await getDiagnostics(c.env.BUCKET, dataset.projectId, dataset.id, dataset.version);
    if (!report) {
      throw new ApiError("diagnostics_not_found", `Dataset '${id}' has no diagnostics report for its current version ${dataset.version}. Start one with POST /v1/datasets/${id}/diagnostics and read it here once its job succeeds.`, { dataset_id: id, dataset_version: dataset.version });
    }
    return c.json(report as z.infer<typeof diagnosticsReportSchema>, 200);
  },
);
