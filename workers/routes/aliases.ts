/**
 * `/v1/aliases`: named pointers to models, switched atomically (services/aliases.ts), and prediction by alias name.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { aliasNameSchema, aliasSchema, predictionSchema, predictQuerySchema, putAliasRequest } from "../../shared/schemas";
import { pageQuery } from "../services/pagination";
import { createRouter } from "../app";
import { aliasNotFound, assertServesImages, aliasView, deleteAlias, getAlias, getAliasHistory, listAliases, putAlias } from "../services/aliases";
import { getServableModel } from "../services/inference";
import { errors, jsonBody, jsonResponse, nextCursorSchema, security } from "./openapi-helpers";
import { EXAMPLE_IDS, exampleAlias, examplePrediction, page } from "./openapi-examples";
import { predictBody, predictForModel, predictResponses } from "./predict";

export const aliasRoutes = createRouter();
const nameParam = z.object({ name: aliasNameSchema.meta({ param: { name: "name", in: "path" }, example: "prod", description: "the alias name" }) });

aliasRoutes.openapi(
  createRoute({
    method: "get", path: "/aliases", tags: ["aliases"], security, summary: "List the project's aliases, newest first, a page at a time",
    request: { query: pageQuery },
    responses: { 200: jsonResponse("One page of aliases", z.object({ aliases: z.array(aliasSchema).describe("aliases, newest first"), next_cursor: nextCursorSchema }), page("aliases", exampleAlias)), 400: errors[400], 401: errors[401] },
  }),
  async (c) => c.json(await listAliases(c.var.db, c.var.caller.projectId, c.req.valid("query")), 200),
);

aliasRoutes.openapi(
  createRoute({
    method: "put", path: "/aliases/{name}", tags: ["aliases"], security,
    summary: "Point an alias at a model (creates it, or switches it atomically; the history keeps the previous model for a rollback)",
    request: { params: nameParam, body: jsonBody(putAliasRequest, { model_id: EXAMPLE_IDS.model }) },
    responses: {
      200: jsonResponse("Switched (or already pointing there)", aliasSchema, exampleAlias),
      201: jsonResponse("Created", aliasSchema, { name: "prod", model_id: EXAMPLE_IDS.model, created_at: exampleAlias.created_at, updated_at: exampleAlias.created_at, previous_model_id: null }),
      400: errors[400], 401: errors[401], 404: errors[404], 409: { ...errors[409], description: "The model is not ready (model_not_ready), or cannot predict from images because its backbone was deleted (backbone_deleted)" },
    },
  }),
  async (c) => {
    const { name } = c.req.valid("param");
    const { model_id } = c.req.valid("json");
    const projectId = c.var.caller.projectId;
    const model = await getServableModel(c.var.db, projectId, model_id);
    await assertServesImages(c.var.db, model);
    const { alias, created } = await putAlias(c.var.db, projectId, name, model.id);
    return c.json(aliasView(alias, await getAliasHistory(c.var.db, projectId, name)), created ? 201 : 200);
  },
);

aliasRoutes.openapi(
  createRoute({
    method: "get", path: "/aliases/{name}", tags: ["aliases"], security, summary: "An alias: the model it names now and its switches, newest first",
    request: { params: nameParam },
    responses: { 200: jsonResponse("The alias with its history", aliasSchema, exampleAlias), 400: errors[400], 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const { name } = c.req.valid("param");
    const alias = await getAlias(c.var.db, c.var.caller.projectId, name);
    if (!alias) throw aliasNotFound(name);
    return c.json(aliasView(alias, await getAliasHistory(c.var.db, c.var.caller.projectId, name)), 200);
  },
);

aliasRoutes.openapi(
  createRoute({
    method: "delete", path: "/aliases/{name}", tags: ["aliases"], security, summary: "Delete an alias (its model stays)",
    request: { params: nameParam },
    responses: { 204: { description: "Deleted" }, 400: errors[400], 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const { name } = c.req.valid("param");
    if (!(await deleteAlias(c.var.db, c.var.caller.projectId, name))) throw aliasNotFound(name);
    return c.body(null, 204);
  },
);

aliasRoutes.openapi(
  createRoute({
    method: "post", path: "/aliases/{name}/predict", tags: ["aliases"], security,
    summary: "Predict with the model the alias names now (same bodies and answers as POST /v1/models/{id}/predict)",
    request: { params: nameParam, query: predictQuerySchema, body: predictBody },
    responses: { ...predictResponses, 200: jsonResponse("As for a model, plus the alias name", predictionSchema.extend({ alias: z.string().describe("the alias that was asked for") }), { ...examplePrediction, alias: "prod" }) },
  }),
  async (c) => {
    const { name } = c.req.valid("param");
    const alias = await getAlias(c.var.db, c.var.caller.projectId, name);
    if (!alias) throw aliasNotFound(name);
    const result = await predictForModel(c, alias.modelId, c.req.valid("query").top_k);
    return c.json({ ...result, alias: alias.name }, 200);
  },
);
