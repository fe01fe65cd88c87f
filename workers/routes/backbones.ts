import { createRoute, z } from "@hono/zod-openapi";
import { BUILTIN_BACKBONES, findBuiltinBackbone } from "../../shared/catalog";
import { ApiError } from "../../shared/errors";
import { backboneSpecSchema, type BackboneSpec } from "../../shared/schemas";
import { forceQuery, pageQuery } from "../services/pagination";
import { createRouter } from "../app";
import {
  backboneView, deleteBackbone, getBackboneRow, importBackbone, listBackbones, openModelUrl, openModelZip, validateModel, withUploadedModelForm,
} from "../services/backbones";
import { getConfig } from "../config";
import { enforceQuotas } from "../services/quotas";
import { errors, idParam, jsonResponse, nextCursorSchema, security } from "./openapi-helpers";
import { page } from "./openapi-examples";

export const backboneRoutes = createRouter();

const backboneSchema = z
  .object({
    id: z.string().describe("the backbone's id: `bb_...`, or a builtin's id"),
    name: z.string().describe("its name (builtin names are reserved); POST /v1/jobs takes the id or the name"),
    builtin: z.boolean().describe("shipped with edgetune (not deletable) or imported by the project"),
    format: z.enum(["layers-model", "graph-model"]).describe("the tfjs model format of its model.json"),
    spec: backboneSpecSchema,
    param_count: z.number().int().nullable().describe("elements over all weights; null for builtin backbones"),
    weight_bytes: z.number().int().nullable().describe("size of the weight files"),
    cost: z
      .object({
        flops: z.number().int().describe("floating-point operations for one image up to the feature layers (a multiply-add counts 2)"),
        float_weight_bytes: z.number().int().describe("every weight as float32, as an engine holds them"),
        peak_activation_bytes: z.number().int().nullable().describe("the most float32 activation bytes alive at once, batch 1"),
      })
      .nullable()
      .describe("estimated from the graph at import; null for builtin backbones and for backbones imported before estimates existed"),
    edge: z
      .object({
        servable: z.boolean().describe("whether the Worker predicts from images with it (else only from embeddings)"),
        reason: z.string().nullable().describe("why predictions from images are refused (409 backbone_too_large); null when servable"),
      })
      .describe("whether the edge can run it"),
    description: z.string().nullable().describe("what it is and what it is good at (builtins)"),
    source: z.string().nullable().describe("where the weights come from (builtins)"),
    license: z.string().nullable().describe("the weights' license (builtins)"),
    created_at: z.string().nullable().describe("ISO 8601 UTC; null for builtins"),
    updated_at: z.string().nullable().describe("ISO 8601 UTC; null for builtins"),
  })
  .meta({ id: "Backbone", description: "A frozen feature extractor: a builtin, or a tfjs model the project imported" });
const exampleBackbone: z.output<typeof backboneSchema> = {
  id: "bb_0q4r8s2t6v9w3x7y1z5a8b2c6d", name: "efficientnet_lite0", builtin: false, format: "graph-model",
  spec: { name: "efficientnet_lite0", feature_layer: "efficientnet-lite0/model/head/tpu_batch_normalization/FusedBatchNormV3", input_size: [224, 224], normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, pooling: "avg", resize: "squash" },
  param_count: 3_371_000, weight_bytes: 13_484_000, cost: { flops: 814_000_000, float_weight_bytes: 13_484_000, peak_activation_bytes: 9_633_792 }, edge: { servable: true, reason: null }, description: null, source: null, license: null, created_at: "2026-12-01T09:00:00.000Z", updated_at: "2026-12-01T09:00:00.000Z",
};

const importFromUrlRequest = backboneSpecSchema
  .extend({ url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL of a tfjs model.json" }).describe("the model.json; its weight files are fetched relative to it") })
  .meta({ id: "ImportBackboneFromUrl", description: "A backbone spec plus the URL of its tfjs model.json" });

/** Documented only: the multipart form is parsed by hand so the body limit holds before anything is buffered. */
const multipartSchema = {
  type: "object" as const,
  required: ["spec", "model"],
  properties: {
    spec: { type: "string" as const, description: "The backbone spec as a JSON string (see BackboneSpec)" },
    model: { type: "string" as const, format: "binary", description: "A zip holding model.json and its weight files (at most 100 MB)" },
  },
};

const backboneParam = z.object({ id: idParam("id", "mobilenet_v2", "a backbone's id (`bb_...`) or a builtin's id or name") });

/** The same 400 `invalid_request` shape as the app's validation hook, for fields parsed by hand. */
function invalidField(target: string, issues: { path: string; message: string }[]): ApiError {
  return new ApiError("invalid_request", `${target} field '${issues[0].path}': ${issues[0].message}`, { target, issues });
}

function parseSpec(value: unknown): BackboneSpec {
  let json: unknown;
  try {
    json = JSON.parse(String(value));
  } catch {
    throw invalidField("form", [{ path: "spec", message: "must be the backbone spec as a JSON string" }]);
  }
  const result = backboneSpecSchema.safeParse(json);
  if (!result.success) throw invalidField("form", result.error.issues.map((issue) => ({ path: ["spec", ...issue.path].join("."), message: issue.message })));
  return result.data;
}

function refuseReservedName(spec: BackboneSpec): void {
  if (findBuiltinBackbone(spec.name)) {
    throw new ApiError("backbone_name_reserved", `'${spec.name}' is the name of a builtin backbone; give yours another spec.name.`, { field: "spec.name" });
  }
}

backboneRoutes.openapi(
  createRoute({
    method: "post", path: "/backbones", tags: ["backbones"], security,
    summary: "Import your own tfjs model (layers or graph) as a frozen backbone: a zip upload (multipart) or a model.json URL (JSON)",
    description:
      "multipart/form-data: `spec` (BackboneSpec as JSON) and `model` (a zip with model.json and its weight files, possibly in a sub-folder; at most 100 MB). " +
      "application/json: the BackboneSpec fields plus `url` of a model.json whose weight files sit beside it. Weights at most 100 MB. " +
      "422 codes: model_json_missing, model_json_invalid, unsupported_model_format, weight_file_missing, weight_size_mismatch, feature_layer_not_found, " +
      "feature_layer_not_spatial, input_size_mismatch, extra_input_sizes_builtin_only, unsupported_input_shape, model_fetch_failed, url_not_allowed, not_a_zip, corrupt_zip, corrupt_entry, " +
      "zip_bomb (an entry declaring a compression ratio above 20:1 for weights, 100:1 for model.json: refused before it is inflated), entry_too_large; " +
      "the import audit (shared/backbone/audit.ts): model_layer_not_allowed (Lambda, custom or other non-allowlisted Keras layers), model_op_not_allowed, " +
      "model_control_flow (While, If, Switch, Merge, tensor lists/arrays...), model_function_library, model_dynamic_shape (an input dimension other than the batch left free), each naming the layer or node. " +
      "The URL obeys the deployment's URL policy: https, a public host (also after DNS and on each of at most 3 redirects), weight paths relative to model.json on the same origin.",
    request: {
      body: {
        required: false,
        content: {
          "multipart/form-data": { schema: multipartSchema, example: { spec: JSON.stringify(exampleBackbone.spec), model: "(zip bytes)" } },
          "application/json": { schema: importFromUrlRequest, example: { ...exampleBackbone.spec, url: "https://models.example.com/efficientnet_lite0/model.json" } },
        },
      },
    },
    responses: {
      201: jsonResponse("The new backbone", backboneSchema, exampleBackbone), 400: errors[400], 401: errors[401], 409: errors[409], 413: errors[413], 415: errors[415], 422: errors[422],
    },
  }),
  async (c) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    const { db, caller } = c.var;
    await enforceQuotas(db, caller.projectId, getConfig(c.env).quotas, { backbones: 1 });
    if (type === "application/json") {
      // Validated by the route's JSON validator (it runs for JSON bodies only; the body is optional for the multipart form).
      const { url, ...spec } = c.req.valid("json" as never) as z.infer<typeof importFromUrlRequest>;
      refuseReservedName(spec);
      const opened = await openModelUrl(url, getConfig(c.env).urlPolicy);
      const summary = validateModel(opened.modelJson, spec, url);
      const row = await importBackbone(db, c.env.BUCKET, caller.projectId, spec, opened.modelJson, summary, opened.files);
      return c.json(backboneView(row), 201);
    }
    if (type !== "multipart/form-data") {
      throw new ApiError("unsupported_media_type", `Send multipart/form-data (spec + model zip) or application/json (spec fields + url); got '${type || "none"}'.`);
    }
    // Peak memory: one 8 MiB R2 part buffer while the body streams into R2, then one 64 KB inflater chunk per weight
    // file (services/backbones.ts MAX_MODEL_BODY_BYTES says why), plus model.json (at most 20 MB) parsed once.
    const row = await withUploadedModelForm(c.env.BUCKET, caller.projectId, c.req.raw, async ({ fields, model }) => {
      const specField = fields.get("spec");
      if (specField === undefined) throw invalidField("form", [{ path: "spec", message: "required: the backbone spec as a JSON string" }]);
      const spec = parseSpec(specField);
      if (model === null) throw invalidField("form", [{ path: "model", message: "required: a zip file holding model.json and its weight files" }]);
      refuseReservedName(spec);
      const opened = await openModelZip(model);
      const summary = validateModel(opened.modelJson, spec, opened.modelJsonPath);
      return importBackbone(db, c.env.BUCKET, caller.projectId, spec, opened.modelJson, summary, opened.files);
    });
    return c.json(backboneView(row), 201);
  },
);

backboneRoutes.openapi(
  createRoute({
    method: "get", path: "/backbones", tags: ["backbones"], security, summary: "List the builtin backbones, then the project's own (newest first), a page at a time",
    request: { query: pageQuery },
    responses: { 200: jsonResponse("One page of backbones", z.object({ backbones: z.array(backboneSchema).describe("builtins first, then the project's own, newest first"), next_cursor: nextCursorSchema }), page("backbones", exampleBackbone)), 400: errors[400], 401: errors[401] },
  }),
  async (c) => c.json(await listBackbones(c.var.db, c.var.caller.projectId, c.req.valid("query")), 200),
);

backboneRoutes.openapi(
  createRoute({
    method: "get", path: "/backbones/{id}", tags: ["backbones"], security, summary: "Read a backbone: a builtin one by id or name, or one of the project's by id",
    request: { params: backboneParam },
    responses: { 200: jsonResponse("The backbone", backboneSchema, exampleBackbone), 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const builtin = findBuiltinBackbone(id);
    if (builtin) return c.json(backboneView(builtin), 200);
    const row = await getBackboneRow(c.var.db, c.var.caller.projectId, id);
    if (!row) throw notFoundBackbone(id);
    return c.json(backboneView(row), 200);
  },
);

backboneRoutes.openapi(
  createRoute({
    method: "delete", path: "/backbones/{id}", tags: ["backbones"], security,
    summary: "Delete one of the project's backbones and its files (builtin ones cannot be deleted)",
    description: "409 `in_use` names the models trained on it (after the delete they can predict only from embeddings); `?force=true` deletes it anyway. A queued or running job on it always answers 409 `backbone_in_use`.",
    request: { params: backboneParam, query: forceQuery },
    responses: { 204: { description: "Deleted" }, 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    if (findBuiltinBackbone(id)) throw new ApiError("builtin_backbone", `'${id}' is a builtin backbone; only your own backbones can be deleted.`, { id });
    const row = await getBackboneRow(c.var.db, c.var.caller.projectId, id);
    if (!row) throw notFoundBackbone(id);
    await deleteBackbone(c.var.db, c.env.BUCKET, row, { force: c.req.valid("query").force });
    return c.body(null, 204);
  },
);

function notFoundBackbone(id: string): ApiError {
  return new ApiError("backbone_not_found", `No backbone '${id}' in this project. List them with GET /v1/backbones (builtin names: ${BUILTIN_BACKBONES.map((b) => b.name).join(", ")}).`, { id });
}
