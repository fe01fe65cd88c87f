import { createRoute, z } from "@hono/zod-openapi";
import { eq, sql } from "drizzle-orm";
import { DEFAULT_BACKBONE } from "../../shared/catalog";
import { ApiError, notFound } from "../../shared/errors";
import { DEFAULT_JOB_HEAD, hyperparametersSchema, NO_AUGMENTATION } from "../../shared/schemas";
import { createRouter } from "../app";
import { datasets } from "../db/schema";
import { resolveBackbone } from "../services/backbones";
import { getDataset, labelStats, notTrainableReason } from "../services/datasets";
import { getDiagnostics } from "../services/diagnostics";
import { createJob } from "../services/jobs";
import { errors, idParam, jsonBody, jsonResponse, security } from "./openapi-helpers";

export const diagnosticsRoutes = createRouter();
const datasetParam = z.object({ id: idParam("id", "ds_...") });

const imageRef = z.object({ sha256: z.string(), path: z.string(), label: z.string(), split: z.enum(["train", "val"]) });
export const diagnosticsReportSchema = z
  .object({
    dataset_id: z.string(),
    dataset_version: z.number().int(),
    backbone: z.string(),
    created_at: z.string(),
    job_id: z.string(),
    near_duplicates: z.array(z.object({ a: imageRef, b: imageRef, similarity: z.number(), leak: z.boolean() })).describe("pairs across train and val (leaks) first, then by similarity"),
    suspected_mislabels: z.array(imageRef.extend({ suggested_label: z.string(), score: z.number() }).passthrough()),
    outliers: z.array(imageRef.extend({ score: z.number() }).passthrough()),
  })
  .passthrough()
  .meta({ id: "DiagnosticsReport" });

const startDiagnosticsRequest = z
  .object({ backbone: z.string().min(1).optional().describe("a backbone id or builtin name; default: the builtin default") })
  .strict()
  .meta({ id: "StartDiagnosticsRequest" });

diagnosticsRoutes.openapi(
  createRoute({
    method: "post", path: "/datasets/{id}/diagnostics", tags: ["datasets"], security,
    summary: "Compute a diagnostics report (near duplicates and train/val leaks, suspected mislabels, outliers) for the dataset's current version on a runner, from cached embeddings",
    request: { params: datasetParam, body: { required: false, content: { "application/json": { schema: startDiagnosticsRequest } } } },
    responses: { 202: jsonResponse("The diagnostics job", z.object({ job_id: z.string(), dataset_version: z.number().int() })), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409] },
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
    const frozen = await db.update(datasets).set({ frozenVersion: sql`max(${datasets.frozenVersion}, ${datasets.version})` }).where(eq(datasets.id, dataset.id)).returning({ version: datasets.version }).get();
    const job = await createJob(db, {
      projectId: caller.projectId, datasetId: dataset.id, datasetVersion: frozen!.version, backbone: backbone.id,
      config: { kind: "diagnostics", head: DEFAULT_JOB_HEAD, hyperparameters: hyperparametersSchema.parse({}), augmentation: NO_AUGMENTATION },
    });
    return c.json({ job_id: job.id, dataset_version: frozen!.version }, 202);
  },
);

diagnosticsRoutes.openapi(
  createRoute({
    method: "get", path: "/datasets/{id}/diagnostics", tags: ["datasets"], security,
    summary: "The latest diagnostics report of the dataset's current version",
    request: { params: datasetParam },
    responses: { 200: jsonResponse("The report", diagnosticsReportSchema), 401: errors[401], 404: errors[404] },
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
