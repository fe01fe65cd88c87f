import { createRoute, z } from "@hono/zod-openapi";
import { ApiError, notFound } from "../../shared/errors";
import { apiKeySchema, createKeyRequest, createProjectRequest } from "../../shared/schemas";
import { pageQuery } from "../services/pagination";
import { createRouter } from "../app";
import { getConfig } from "../config";
import type { Db } from "../services/db";
import { QUOTA_NAMES, projectQuotas, quotaUsage, setProjectQuotas, type QuotaName, type Quotas } from "../services/quotas";
import { createKey, parseAdminKeys, type AdminKey } from "../services/auth";
import { createProject, getProject, listActiveKeys, revokeKey, type ApiKeyRow } from "../services/projects";
import { errors, idParam, jsonBody, jsonResponse, security } from "./openapi-helpers";

export const projectRoutes = createRouter();

const keyView = (row: ApiKeyRow, secret?: string) => ({
  id: row.id,
  name: row.name,
  prefix: row.secretPrefix,
  scope: row.scope,
  admin: false,
  created_at: row.createdAt,
  updated_at: row.updatedAt,
  last_used_at: row.lastUsedAt,
  ...(secret ? { secret } : {}),
});

const quotaSchema = z.object(Object.fromEntries(QUOTA_NAMES.map((n) => [n, z.number().int().min(0).nullable().optional()])) as Record<QuotaName, z.ZodOptional<z.ZodNullable<z.ZodNumber>>>).strict();

projectRoutes.openapi(
  createRoute({
    method: "put", path: "/projects/{id}/quotas", tags: ["projects"], security, summary: "Set a project's quotas (admin key only); a null or missing quota takes the deployment's default",
    request: { params: z.object({ id: idParam("id", "prj_...") }), body: jsonBody(quotaSchema) },
    responses: { 200: jsonResponse("The project's quotas and usage", z.object({ quotas: z.array(z.object({ quota: z.string(), limit: z.number(), used: z.number() })) })), 400: errors[400], 401: errors[401], 403: errors[403], 404: errors[404] },
  }),
  async (c) => {
    if (!c.var.caller.isAdmin) throw new ApiError("admin_key_required", "Only an admin key (EDGETUNE_ADMIN_KEY) can set quotas.");
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const overrides = Object.fromEntries(Object.entries(body).filter(([, v]) => typeof v === "number")) as Partial<Quotas>;
    if (!(await setProjectQuotas(c.var.db, id, overrides))) throw notFound("project", id);
    return c.json({ quotas: await quotaView(c.var.db, id, getConfig(c.env).quotas) }, 200);
  },
);

projectRoutes.openapi(
  createRoute({
    method: "get", path: "/quotas", tags: ["projects"], security, summary: "The caller's project's quotas: each one's limit and what is used",
    responses: { 200: jsonResponse("Quotas and usage", z.object({ quotas: z.array(z.object({ quota: z.string(), limit: z.number(), used: z.number() })) })), 401: errors[401] },
  }),
  async (c) => c.json({ quotas: await quotaView(c.var.db, c.var.caller.projectId, getConfig(c.env).quotas) }, 200),
);

async function quotaView(db: Db, projectId: string, defaults: Quotas) {
  const [limits, used] = await Promise.all([projectQuotas(db, projectId, defaults), quotaUsage(db, projectId)]);
  return QUOTA_NAMES.map((quota) => ({ quota, limit: limits[quota], used: used[quota] }));
}

const adminKeyView = (key: AdminKey) => ({
  id: key.id, name: "admin", prefix: key.prefix, scope: "full" as const, admin: true, created_at: null, updated_at: null, last_used_at: null,
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
    const { name, scope } = c.req.valid("json");
    const { row, secret } = await createKey(c.var.db, c.var.caller.projectId, name, scope);
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
    const query = c.req.valid("query");
    const { items, nextCursor } = await listActiveKeys(c.var.db, c.var.caller.projectId, query);
    // The admin caller also sees the deployment's admin keys (several while one is being rotated), never their
    // secrets: on the first page, before the stored keys.
    const admins = c.var.caller.isAdmin && !query.cursor ? (await parseAdminKeys(getConfig(c.env).adminKey ?? undefined)).map(adminKeyView) : [];
    return c.json({ keys: [...admins, ...items.map((r) => keyView(r))], next_cursor: nextCursor }, 200);
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
    if (c.var.caller.isAdmin && (await parseAdminKeys(getConfig(c.env).adminKey ?? undefined)).some((k) => k.id === id)) {
      throw new ApiError("admin_key_not_deletable", "Admin keys live in the deployment's EDGETUNE_ADMIN_KEY setting: rotate one by setting the new and the old key (comma-separated), moving clients, then setting only the new one.", { id });
    }
    if (!(await revokeKey(c.var.db, c.var.caller.projectId, id))) throw notFound("key", id);
    return c.body(null, 204);
  },
);
