import { createRoute, z } from "@hono/zod-openapi";
import { findBuiltinBackbone } from "../../shared/catalog";
import { ApiError, notFound } from "../../shared/errors";
import { PREPROCESS_VERSION } from "../../shared/image/preprocess";
import { compareEvaluations } from "../../shared/compare";
import { bundleManifestSchema, modelComparisonSchema, modelSchema } from "../../shared/schemas";
import { forceQuery, pageQuery } from "../services/pagination";
import { createRouter } from "../app";
import { resolveBackbone } from "../services/backbones";
import { BUNDLE_FILE_NAMES, describeBundle, openBundleFile } from "../services/bundles";
import { deleteModel, getModel, listModels, loadEvaluation, modelView, modelViewFull, readModelArtifact } from "../services/models";
import { binaryResponse, errors, idParam, jsonResponse, nextCursorSchema, security } from "./openapi-helpers";
import { EXAMPLE_IDS, exampleComparison, exampleModel, page } from "./openapi-examples";

export const modelRoutes = createRouter();
const exampleManifest: z.output<typeof bundleManifestSchema> = {
  format: "edgetune-bundle/2", model_id: EXAMPLE_IDS.model, labels: exampleModel.labels,
  backbone: { id: "mobilenet_v1_075", name: "mobilenet_v1_075", format: "layers-model", source: "tfjs-models mobilenet_v1_0.75_224", license: "Apache-2.0 (Google)" },
  feature_spec: { feature_layers: ["conv_pw_9_relu", "conv_pw_13_relu"], pooling: "avg" },
  preprocessing: { version: "1", input_size: [224, 224], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: "squash" },
  top_k: 5, entry: "edgetune.mjs",
  paths: { backbone_model: "backbone/model.json", backbone_weights: "backbone/weights.bin", head_manifest: "head/head.json", head_weights: "head/head.bin", jpeg_decoder: "mozjpeg_dec.wasm", png_decoder: "squoosh_png_bg.wasm" },
  files: [
    { path: "edgetune.json", url: `/v1/models/${EXAMPLE_IDS.model}/bundle/manifest` },
    { path: "labels.json", url: `/v1/models/${EXAMPLE_IDS.model}/bundle/files/labels.json` },
    { path: "backbone/model.json", url: `/v1/models/${EXAMPLE_IDS.model}/bundle/files/backbone-model.json`, bytes: 91_245 },
    { path: "backbone/weights.bin", url: `/v1/models/${EXAMPLE_IDS.model}/bundle/files/backbone-weights.bin`, bytes: 10_327_784 },
    { path: "head/head.json", url: `/v1/models/${EXAMPLE_IDS.model}/bundle/files/head.json`, bytes: 412 },
    { path: "head/head.bin", url: `/v1/models/${EXAMPLE_IDS.model}/bundle/files/head.bin`, bytes: 20_500 },
    { path: "edgetune.mjs", url: "/bundle-runtime/edgetune.mjs" },
  ],
};
const modelParam = z.object({ id: idParam("id", EXAMPLE_IDS.model, "the model's id") });

async function loadModel(c: { var: { db: any; caller: { projectId: string } } }, id: string) {
  const row = await getModel(c.var.db, c.var.caller.projectId, id);
  if (!row) throw notFound("model", id);
  return row;
}

modelRoutes.openapi(
  createRoute({
    method: "get", path: "/models", tags: ["models"], security, summary: "List models, newest first, a page at a time",
    request: { query: pageQuery },
    responses: { 200: jsonResponse("One page of models", z.object({ models: z.array(modelSchema).describe("models, newest first"), next_cursor: nextCursorSchema }), page("models", exampleModel)), 400: errors[400], 401: errors[401] },
  }),
  async (c) => c.json(await listModels(c.var.db, c.var.caller.projectId, c.req.valid("query")), 200),
);

// Registered before /models/{id}, which would otherwise take "compare" for an id.
modelRoutes.openapi(
  createRoute({
    method: "get", path: "/models/compare", tags: ["models"], security, operationId: "compareModels",
    summary: "Compare two models of the same dataset on the validation images both saw: paired counts and the exact McNemar test",
    request: { query: z.object({ a: z.string().min(1).meta({ example: EXAMPLE_IDS.model, description: "one model's id" }), b: z.string().min(1).meta({ example: EXAMPLE_IDS.otherModel, description: "the other model's id (same dataset)" }) }) },
    responses: { 200: jsonResponse("The comparison", modelComparisonSchema, exampleComparison), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { a, b } = c.req.valid("query");
    const [rowA, rowB] = await Promise.all([loadModel(c, a), loadModel(c, b)]);
    if (rowA.datasetId !== rowB.datasetId) {
      throw new ApiError("models_not_comparable", `Models '${a}' and '${b}' were trained on different datasets (${rowA.datasetId}, ${rowB.datasetId}); compare models of the same dataset.`, { a_dataset_id: rowA.datasetId, b_dataset_id: rowB.datasetId });
    }
    const [evaluationA, evaluationB] = await Promise.all([loadEvaluation(c.env.BUCKET, rowA), loadEvaluation(c.env.BUCKET, rowB)]);
    return c.json({ a, b, ...compareEvaluations(evaluationA, evaluationB) }, 200);
  },
);

modelRoutes.openapi(
  createRoute({
    method: "get", path: "/models/{id}", tags: ["models"], security, summary: "Read a model with its validation metrics",
    request: { params: modelParam },
    responses: { 200: jsonResponse("The model", modelSchema, exampleModel), 401: errors[401], 404: errors[404] },
  }),
  async (c) => c.json(await modelViewFull(c.env.BUCKET, await loadModel(c, c.req.valid("param").id)), 200),
);

modelRoutes.openapi(
  createRoute({
    method: "delete", path: "/models/{id}", tags: ["models"], security, summary: "Delete a model and its artifacts; 409 in_use while aliases point at it, unless ?force=true (which deletes those aliases too)",
    request: { params: modelParam, query: forceQuery },
    responses: { 204: { description: "Deleted" }, 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    await deleteModel(c.var.db, c.env.BUCKET, await loadModel(c, c.req.valid("param").id), { force: c.req.valid("query").force });
    return c.body(null, 204);
  },
);

const FILES = ["model.json", "weights.bin", "head.json", "head.bin", "card.json", "evaluation.json", "blocks.bin"] as const;

modelRoutes.openapi(
  createRoute({
    method: "get", path: "/models/{id}/files/{name}", tags: ["models"], security,
    summary: "One artifact: the head as a tfjs layers model (model.json, weights.bin), edgetune's compact head (head.json, head.bin), a fine-tuned model's blocks (blocks.bin), the model card, or every validation image's prediction (evaluation.json)",
    request: { params: modelParam.extend({ name: z.enum(FILES).meta({ param: { name: "name", in: "path" }, description: "which artifact" }) }) },
    responses: { 200: binaryResponse("The file: JSON for the .json files, raw little-endian float32 weights for the .bin files", "application/json", "application/octet-stream"), 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const { id, name } = c.req.valid("param");
    const row = await loadModel(c, id);
    // Peak memory: one chunk: the artifact streams from R2.
    const object = await readModelArtifact(c.env.BUCKET, row, name);
    if (!object) throw new ApiError("artifact_not_found", `Model '${id}' has no ${name}.`);
    return new Response(object.body, { headers: { "content-type": name.endsWith(".json") ? "application/json" : "application/octet-stream", "content-disposition": `attachment; filename="${id}-${name}"` } });
  },
);

modelRoutes.openapi(
  createRoute({
    method: "get", path: "/models/{id}/bundle", tags: ["models"], security, operationId: "getModelBundle",
    summary: "The head as a tfjs layers model (weights inline in JSON), a reference to the backbone and the preprocessing parameters (format edgetune-bundle/1, kept for existing clients). For a bundle that runs on its own, use /bundle/manifest",
    request: { params: modelParam },
    responses: {
      200: jsonResponse(
        "The bundle (JSON, format edgetune-bundle/1)",
        z
          .object({ format: z.string().describe("the bundle format and its version, e.g. `edgetune-bundle/1`") })
          .passthrough()
          .meta({ description: "The legacy bundle: the model, its labels, the backbone reference, the preprocessing parameters and the head with inline weights" }),
        { format: "edgetune-bundle/1", labels: exampleModel.labels },
      ),
      401: errors[401], 404: errors[404],
    },
  }),
  async (c) => {
    const row = await loadModel(c, c.req.valid("param").id);
    const [modelJson, weights] = await Promise.all([readModelArtifact(c.env.BUCKET, row, "model.json"), readModelArtifact(c.env.BUCKET, row, "weights.bin")]);
    if (!modelJson || !weights) throw new ApiError("artifact_not_found", `Model '${row.id}' has no tfjs head artifacts.`);
    const backbone = await resolveBackbone(c.var.db, row.projectId, row.backbone).catch(() => null);
    const builtin = findBuiltinBackbone(row.backbone);
    const bytes = new Uint8Array(await weights.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return c.json({
      format: "edgetune-bundle/1",
      model: modelView(row),
      labels: row.labels,
      backbone: backbone ? { id: backbone.id, name: backbone.name, spec: backbone.spec, source: builtin?.source ?? `GET /v1/backbones/${backbone.id}`, license: builtin?.license } : { id: row.backbone, deleted: true },
      preprocessing: { version: PREPROCESS_VERSION, ...(backbone ? { input_size: backbone.spec.input_size, normalization: backbone.spec.normalization, resize: backbone.spec.resize, pooling: backbone.spec.pooling, feature_layer: backbone.spec.feature_layer } : {}) },
      head: { model_json: await modelJson.json(), weights_base64: btoa(binary) },
      usage: "Run the backbone up to feature_layer, global-pool (pooling) into the embedding, then head = tf.loadLayersModel(tf.io.fromMemory(model_json.modelTopology, model_json.weightsManifest[0].weights, weights)); head.predict(embedding) gives probabilities over labels.",
    }, 200);
  },
);

// The self-contained bundle: a manifest, then one GET per file. Peak memory per request: the manifest route holds the
// model row and a JSON document of a few KB (labels, spec, ~16 file entries; sizes come from R2 head() calls); the
// files route holds nothing but R2's body stream, which the response pipes through in chunks. Measured by
// bench/memory (isolate heap, peak - before): manifest +0.3 MiB; the 10 MB backbone weights +0.0; a 48 MiB file +0.0.
// No base64 string, no file in memory.
modelRoutes.openapi(
  createRoute({
    method: "get", path: "/models/{id}/bundle/manifest", tags: ["models"], security,
    summary: "The self-contained bundle's manifest (edgetune.json): labels, backbone, feature layers, preprocessing, and every file to download (backbone and head weights, the predict module, the decoders, examples)",
    request: { params: modelParam },
    responses: { 200: jsonResponse("The manifest", bundleManifestSchema, exampleManifest), 401: errors[401], 404: errors[404], 409: errors[409], 503: errors[503] },
  }),
  async (c) => c.json(await describeBundle(c.var.db, c.env.BUCKET, await loadModel(c, c.req.valid("param").id)), 200),
);

modelRoutes.openapi(
  createRoute({
    method: "get", path: "/models/{id}/bundle/files/{name}", tags: ["models"], security,
    summary: "One file of the self-contained bundle, streamed: the backbone (backbone-model.json, backbone-weights.bin), the head (head.json, head.bin; as a tfjs model head-model.json, head-weights.bin) or labels.json",
    request: { params: modelParam.extend({ name: z.enum(BUNDLE_FILE_NAMES).meta({ param: { name: "name", in: "path" }, description: "which file" }) }) },
    responses: { 200: binaryResponse("The file: JSON for the .json files, raw weights for the .bin files", "application/json", "application/octet-stream"), 401: errors[401], 404: errors[404], 409: errors[409] },
  }),
  async (c) => {
    const { id, name } = c.req.valid("param");
    const file = await openBundleFile(c.var.db, c.env.BUCKET, await loadModel(c, id), name);
    if (!file) throw new ApiError("artifact_not_found", `Model '${id}' has no ${name} in storage.`);
    const headers: Record<string, string> = { "content-type": file.contentType, "content-length": String(file.bytes), "content-disposition": `attachment; filename="${name}"` };
    if (file.etag) headers.etag = file.etag;
    return new Response(file.body, { headers });
  },
);
