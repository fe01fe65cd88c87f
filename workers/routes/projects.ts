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
import { errors, idParam, jsonBody, jsonResponse, nextCursorSchema, security } from "./openapi-helpers";
import { EXAMPLE_IDS, exampleKey, page } from "./openapi-examples";

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

const QUOTA_MEANING: Record<QuotaName, string> = {
  bytes: "bytes of stored images",
  images: "stored images",
  datasets: "datasets",
  backbones: "the project's own backbones",
  queued_jobs: "jobs waiting for a runner",
  running_jobs: "jobs running at once",
};
const quotaSchema = z
  .object(Object.fromEntries(QUOTA_NAMES.map((n) => [n, z.number().int().min(0).nullable().optional().describe(`most ${QUOTA_MEANING[n]}; null: the deployment's default`)])) as Record<QuotaName, z.ZodOptional<z.ZodNullable<z.ZodNumber>>>)
  .strict()
  .meta({ id: "QuotaSettings", description: "Per-project limits to set" });
const quotasResponse = z
  .object({
    quotas: z
      .array(
        z.object({
          quota: z.enum(QUOTA_NAMES).describe("bytes, images, datasets, backbones, queued_jobs or running_jobs"),
          limit: z.number().describe("the most allowed"),
          used: z.number().describe("what the project uses now"),
        }),
      )
      .describe("every quota"),
  })
  .meta({ id: "Quotas", description: "A project's quotas and usage" });
const exampleQuotas: z.output<typeof quotasResponse> = {
  quotas: [
    { quota: "bytes", limit: 10_737_418_240, used: 58_213_774 },
    { quota: "images", limit: 100_000, used: 400 },
    { quota: "datasets", limit: 100, used: 1 },
    { quota: "backbones", limit: 20, used: 0 },
    { quota: "queued_jobs", limit: 20, used: 0 },
    { quota: "running_jobs", limit: 4, used: 1 },
  ],
};
const projectSchema = z.object({ id: z.string().describe("the project's id (`prj_...`)"), name: z.string().describe("its name") });

projectRoutes.openapi(
  createRoute({
    method: "put", path: "/projects/{id}/quotas", tags: ["projects"], security, summary: "Set a project's quotas (admin key only); a null or missing quota takes the deployment's default",
    request: { params: z.object({ id: idParam("id", EXAMPLE_IDS.project, "the project's id") }), body: jsonBody(quotaSchema, { images: 100_000, running_jobs: 4, bytes: null }) },
    responses: { 200: jsonResponse("The project's quotas and usage", quotasResponse, exampleQuotas), 400: errors[400], 401: errors[401], 403: errors[403], 404: errors[404] },
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
    method: "get", path: "/quotas", tags: ["projects"], security, operationId: "getQuotas", summary: "The caller's project's quotas: each one's limit and what is used",
    responses: { 200: jsonResponse("Quotas and usage", quotasResponse, exampleQuotas), 401: errors[401] },
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
    request: { body: jsonBody(createProjectRequest, { name: "acme" }) },
    responses: {
      201: jsonResponse("The project and its first key (the secret is shown once)", z.object({ project: projectSchema.describe("the new project"), key: apiKeySchema }), { project: { id: EXAMPLE_IDS.project, name: "acme" }, key: { ...exampleKey, name: "key" } }),
      400: errors[400], 401: errors[401], 403: errors[403],
    },
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
    responses: { 200: jsonResponse("The caller's project", projectSchema.extend({ admin: z.boolean().describe("true for the operator's admin key") }), { id: EXAMPLE_IDS.project, name: "acme", admin: false }), 401: errors[401] },
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
    request: { body: jsonBody(createKeyRequest, { name: "ci", scope: "full" }) },
    responses: { 201: jsonResponse("The key; its secret is shown only here", apiKeySchema, exampleKey), 400: errors[400], 401: errors[401] },
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
    responses: { 200: jsonResponse("One page of keys", z.object({ keys: z.array(apiKeySchema).describe("keys, newest first (the admin caller sees the admin keys first)"), next_cursor: nextCursorSchema }), page("keys", { ...exampleKey, secret: undefined })), 400: errors[400], 401: errors[401] },
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
    request: { params: z.object({ id: idParam("id", EXAMPLE_IDS.key, "the key's id") }) },
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
