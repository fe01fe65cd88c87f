/**
 * `POST /v1/models/:id/predict`: class probabilities for images (bytes, multipart, base64 JSON) or precomputed
 * embeddings. The work is in services/inference.ts; aliases.ts serves the same prediction by alias name.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ApiError } from "../../shared/errors";
import { predictionSchema, predictJsonRequest, predictQuerySchema } from "../../shared/schemas";
import { createRouter, type AppEnv } from "../app";
import { getServableModel, inferenceStats, MAX_EMBEDDINGS_PER_REQUEST, MAX_IMAGES_PER_REQUEST, predict, type PredictionResult } from "../services/inference";
import { MAX_PREDICT_BODY_BYTES, readPredictInput } from "../services/predict-input";
import { errors, idParam, jsonResponse, security } from "./openapi-helpers";
import { EXAMPLE_IDS, examplePrediction } from "./openapi-examples";

export const predictRoutes = createRouter();

predictRoutes.openAPIRegistry.register("PredictJsonRequest", predictJsonRequest);

const binary = { schema: z.string().meta({ format: "binary", description: "one image's bytes (JPEG or PNG)" }) };

/** The request body as the OpenAPI document describes it. No zod schema is attached, so nothing parses it early. */
export const predictBody = {
  required: true,
  description: `At most ${MAX_IMAGES_PER_REQUEST} images or ${MAX_EMBEDDINGS_PER_REQUEST} embeddings, ${MAX_PREDICT_BODY_BYTES} bytes in all.`,
  content: {
    "image/jpeg": binary,
    "image/png": binary,
    "multipart/form-data": {
      schema: { type: "object" as const, description: "any number of file fields, one image each, predicted in form order", additionalProperties: { type: "string" as const, format: "binary", description: "an image file (JPEG or PNG)" } },
      example: { image: "(daisy_001.jpg bytes)", second: "(tulip_007.png bytes)" },
    },
    "application/json": {
      schema: { $ref: "#/components/schemas/PredictJsonRequest" },
      examples: {
        images: { summary: "base64 images", value: { images: ["/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHSEfHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q=="] } },
        embeddings: { summary: "precomputed embeddings", value: { embeddings: [[0.12, 0, 1.73, 0.48]] } },
      },
    },
  },
};

export const predictResponses = {
  200: jsonResponse("One list per input, most probable label first, at most top_k long", predictionSchema, examplePrediction),
  400: errors[400],
  401: errors[401],
  404: errors[404],
  409: { ...errors[409], description: "The model is not ready (its job has not succeeded), or its backbone cannot be served from images: backbone_too_large with details.reason (input_size, memory, flops) when it is above the edge budget" },
  413: { ...errors[413], description: "Body, image count or image pixels over the limit (the limit is in details)" },
  415: errors[415],
  422: { ...errors[422], description: "An image cannot be decoded (details name its index and file name), or an embedding has the wrong length" },
  503: { ...errors[503], description: "Inference is unavailable right now (tfjs failed to start, or the backbone's files are not in storage yet), or the isolate is busy (edge_busy: another backbone loading, or its image predictions at their limit; Retry-After says when to come back)" },
};

const cacheStatsSchema = z.object({
  entries: z.number().int().describe("items cached"),
  bytes: z.number().int().describe("their estimated size"),
  maxEntries: z.number().int().describe("most items kept"),
  maxBytes: z.number().int().describe("most bytes kept"),
  hits: z.number().int().describe("lookups answered from the cache"),
  misses: z.number().int().describe("lookups that were not"),
  loads: z.number().int().describe("loads started (misses that did not join a load in flight)"),
  evictions: z.number().int().describe("items dropped to stay within the limits"),
  inFlight: z.number().int().describe("keys being loaded right now"),
});
const inferenceStatsSchema = z
  .object({
    heads: cacheStatsSchema.describe("the cache of model heads"),
    backbones: cacheStatsSchema
      .extend({
        resident: z
          .array(
            z.object({
              key: z.string().describe("backbone id and weights version"),
              engine: z.string().describe("the engine that embeds with it"),
              dim: z.number().int().describe("embedding length"),
              weight_bytes: z.number().int().describe("size of its weights"),
              users: z.number().int().describe("requests using it now"),
            }),
          )
          .describe("backbones loaded in this isolate"),
      })
      .describe("the cache of loaded backbones"),
    tfjs: z
      .object({
        tensors: z.number().int().describe("live tensors"),
        tensor_bytes: z.number().int().describe("their bytes"),
        wasm_heap_bytes: z.number().int().nullable().describe("the WASM backend's heap (it only grows)"),
      })
      .nullable()
      .describe("tfjs memory, once tfjs is initialised; null before"),
  })
  .meta({ id: "InferenceStats", description: "What one isolate holds for serving" });
const emptyCache = { entries: 0, bytes: 0, maxEntries: 32, maxBytes: 16_777_216, hits: 0, misses: 0, loads: 0, evictions: 0, inFlight: 0 };
const exampleStats: z.output<typeof inferenceStatsSchema> = {
  heads: { ...emptyCache, entries: 1, bytes: 20_480, hits: 41, misses: 1, loads: 1 },
  backbones: { ...emptyCache, maxEntries: 2, maxBytes: 40_000_000, entries: 1, bytes: 10_485_760, hits: 41, misses: 1, loads: 1, resident: [{ key: "mobilenet_v2@nsfwjs-4.4.0", engine: "tfjs-wasm", dim: 576, weight_bytes: 10_485_760, users: 0 }] },
  tfjs: { tensors: 262, tensor_bytes: 10_612_224, wasm_heap_bytes: 62_914_560 },
};

/**
 * Reads the request's inputs and predicts with `modelId` of the caller's project. Peak memory: the body once (at
 * most 32 MB, services/predict-input.ts; a JSON body of base64 images also holds its text and the decoded bytes,
 * about 2.5 times the body), the decoded pixels of one image at a time (PREDICT_MAX_PIXELS: 2 MP adds at most about 12 MB),
 * plus the backbone's resident WASM heap (60 to 110 MB measured by bench/predict): the route that bounds the
 * isolate.
 */
export async function predictForModel(c: Context<AppEnv>, modelId: string, topK: number): Promise<PredictionResult> {
  const model = await getServableModel(c.var.db, c.var.caller.projectId, modelId);
  const input = await readPredictInput(c.req.raw);
  return predict(c.env, c.var.db, model, input, topK);
}

predictRoutes.openapi(
  createRoute({
    method: "post", path: "/models/{id}/predict", tags: ["models"], security,
    summary: "Predict: class probabilities per image (or per precomputed embedding), most probable first",
    request: { params: z.object({ id: idParam("id", EXAMPLE_IDS.model, "the model's id") }), query: predictQuerySchema, body: predictBody },
    responses: predictResponses,
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    return c.json(await predictForModel(c, id, c.req.valid("query").top_k), 200);
  },
);

predictRoutes.openapi(
  createRoute({
    method: "get", path: "/inference/stats", tags: ["models"], security, operationId: "getInferenceStats",
    summary: "What this isolate holds for serving: cached heads and backbones, tfjs memory (admin key only)",
    responses: { 200: jsonResponse("Cache and memory figures of the isolate that answered", inferenceStatsSchema, exampleStats), 401: errors[401], 403: errors[403] },
  }),
  async (c) => {
    if (!c.var.caller.isAdmin) throw new ApiError("admin_key_required", "Only the admin key (EDGETUNE_ADMIN_KEY) can read isolate statistics.");
    return c.json(await inferenceStats(), 200);
  },
);
