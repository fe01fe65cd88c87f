import { createRoute, z } from "@hono/zod-openapi";
import { ApiError, notFound } from "../../shared/errors";
import { apiKeySchema, createKeyRequest, createProjectRequest } from "../../shared/schemas";
import { pageQuery } from "../services/pagination";
import { createRouter } from "../app";
import { createKey } from "../services/auth";
import { createProject, getProject, listActiveKeys, revokeKey, type ApiKeyRow } from "../services/projects";
import { errors, idParam, jsonBody, jsonResponse, security } from "./openapi-helpers";

export const projectRoutes = createRouter();

const keyView = (row: ApiKeyRow, secret?: string) => ({
  id: row.id,
  name: row.name,
  prefix: row.secretPrefix,
  created_at: row.createdAt,
  updated_at: row.updatedAt,
  last_used_at: row.lastUsedAt,
  ...(secret ? { secret } : {}),
});

projectRoutes.openapi(
  createRoute({
    method: "post", path: "/projects", tags: ["projects"], security, summary: "Create a project (tenant) and its first key; admin key only",
    request: { body: jsonBody(createProjectRequest) },
    responses: { 201: jsonResponse("The project and its first key (the secret is shown once)", z.object({ project: z.object({ id: z.string(), name: z.string() }), key: apiKeySchema })), 400: errors[400], 401: errors[401], 403: { description: "Not the admin key" } },
  }),
  async (c) => {
    if (!c.var.caller.isAdmin) throw new ApiError("admin_key_required", "Only the admin key (EDGETUNE_ADMIN_KEY) can create projects.");
    const { name } = c.req.valid("json");
    const { project, key, secret } = await createProject(c.var.db, name);
    return c.json({ project: { id: project.id, name }, key: keyView(key, secret) }, 201);
  },
);

projectRoutes.openapi(
  createRoute({
    method: "get", path: "/project", tags: ["projects"], security, operationId: "getProject",
    summary: "The project the API key belongs to (clients call it to check a key, e.g. `edgetune login`)",
    responses: { 200: jsonResponse("The caller's project", z.object({ id: z.string(), name: z.string(), admin: z.boolean().describe("true for the operator's admin key") })), 401: errors[401] },
  }),
  async (c) => {
    const { projectId, isAdmin } = c.var.caller;
    const row = await getProject(c.var.db, projectId);
    return c.json({ id: projectId, name: row?.name ?? projectId, admin: isAdmin }, 200);
  },
);

projectRoutes.openapi(
  createRoute({
    method: "post", path: "/keys", tags: ["keys"], security, summary: "Create an API key for the caller's project",
    request: { body: jsonBody(createKeyRequest) },
    responses: { 201: jsonResponse("The key; its secret is shown only here", apiKeySchema), 400: errors[400], 401: errors[401] },
  }),
  async (c) => {
    const { name } = c.req.valid("json");
    const { row, secret } = await createKey(c.var.db, c.var.caller.projectId, name);
    return c.json(keyView(row, secret), 201);
  },
);

projectRoutes.openapi(
  createRoute({
    method: "get", path: "/keys", tags: ["keys"], security, summary: "List the project's active keys (never their secrets), newest first, a page at a time",
    request: { query: pageQuery },
    responses: { 200: jsonResponse("One page of keys", z.object({ keys: z.array(apiKeySchema), next_cursor: z.string().nullable().describe("pass as ?cursor= for the next page; null on the last page") })), 400: errors[400], 401: errors[401] },
  }),
  async (c) => {
    const { items, nextCursor } = await listActiveKeys(c.var.db, c.var.caller.projectId, c.req.valid("query"));
    return c.json({ keys: items.map((r) => keyView(r)), next_cursor: nextCursor }, 200);
  },
);

projectRoutes.openapi(
  createRoute({
    method: "delete", path: "/keys/{id}", tags: ["keys"], security, summary: "Revoke a key",
    request: { params: z.object({ id: idParam("id", "key_...") }) },
    responses: { 204: { description: "Revoked" }, 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    if (!(await revokeKey(c.var.db, c.var.caller.projectId, id))) throw notFound("key", id);
    return c.body(null, 204);
  },
);
