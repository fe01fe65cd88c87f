/**
 * Runner administration (admin key): `POST /v1/runners` gives a runner its own token (shown once), `GET /v1/runners`
 * lists them with when each was last seen and the job it holds, `DELETE /v1/runners/:id` revokes one. A runner is
 * infrastructure of the deployment, not of a project, so project keys answer 403 here.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ApiError } from "../../shared/errors";
import { createRouter } from "../app";
import { createRunner, listRunners, revokeRunner, type RunnerRow } from "../services/runners";
import { sweepExpiredLeases } from "../services/jobs";
import { jobEndedNotifier } from "../services/webhooks";
import { errors, idParam, jsonBody, jsonResponse, nextCursorSchema, security } from "./openapi-helpers";
import { EXAMPLE_IDS } from "./openapi-examples";

export const runnerAdminRoutes = createRouter();

const runnerSchema = z
  .object({
    id: z.string().describe("the runner's id (`rnr_...`)"),
    name: z.string().describe("the name given at registration"),
    prefix: z.string().describe("the token's first characters, to tell runners apart"),
    created_at: z.string().describe("ISO 8601 UTC"),
    updated_at: z.string().describe("ISO 8601 UTC"),
    last_seen_at: z.string().nullable().describe("the runner's last request, to within 30 s"),
    jobs: z
      .array(
        z.object({
          id: z.string().describe("the job's id"),
          project_id: z.string().describe("its project"),
          lease_expires_at: z.string().nullable().describe("when the lease lapses without a heartbeat"),
        }),
      )
      .describe("jobs it holds a lease on"),
    token: z.string().optional().describe("the runner's token (EDGETUNE_RUNNER_TOKEN): shown once, at creation"),
  })
  .meta({ id: "Runner", description: "A registered runner (it leases jobs with its own token)" });
const exampleRunner: z.output<typeof runnerSchema> = {
  id: EXAMPLE_IDS.runner, name: "gpu-box-1", prefix: "et_rnr_8Hk2", created_at: "2026-12-01T08:00:00.000Z", updated_at: "2026-12-01T08:00:00.000Z",
  last_seen_at: "2026-12-01T09:33:40.000Z", jobs: [{ id: EXAMPLE_IDS.job, project_id: EXAMPLE_IDS.project, lease_expires_at: "2026-12-01T09:35:40.000Z" }],
};

const view = (row: RunnerRow, held: Array<{ id: string; projectId: string; runnerId: string | null; leaseExpiresAt: string | null }> = [], token?: string) => ({
  id: row.id,
  name: row.name,
  prefix: row.tokenPrefix,
  created_at: row.createdAt,
  updated_at: row.updatedAt,
  last_seen_at: row.lastSeenAt,
  jobs: held.filter((j) => j.runnerId === row.id).map((j) => ({ id: j.id, project_id: j.projectId, lease_expires_at: j.leaseExpiresAt })),
  ...(token ? { token } : {}),
});

const requireAdmin = (isAdmin: boolean) => {
  if (!isAdmin) throw new ApiError("admin_key_required", "Only an admin key (EDGETUNE_ADMIN_KEY) can manage runners.");
};

const encodeCursor = (row: RunnerRow) => btoa(`${row.createdAt}~${row.id}`).replace(/=+$/, "");
function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const [createdAt, id] = atob(cursor).split("~");
    if (createdAt && id?.startsWith("rnr_")) return { createdAt, id };
  } catch {}
  throw new ApiError("invalid_cursor", "The cursor is not one this list gave out; start again without it.", { cursor: cursor.slice(0, 100) });
}

runnerAdminRoutes.openapi(
  createRoute({
    method: "post", path: "/runners", tags: ["runners"], security, summary: "Register a runner and get its token (shown once); admin key only",
    request: { body: jsonBody(z.object({ name: z.string().trim().min(1).max(200).describe("a name to tell runners apart") }).strict().meta({ id: "CreateRunnerRequest", description: "A runner to register" }), { name: "gpu-box-1" }) },
    responses: { 201: jsonResponse("The runner and its token", runnerSchema, { ...exampleRunner, last_seen_at: null, jobs: [], token: "et_rnr_8Hk2vQ9mL4xR7tY1wZ5cB3nF6jD0pS2u" }), 400: errors[400], 401: errors[401], 403: errors[403] },
  }),
  async (c) => {
    requireAdmin(c.var.caller.isAdmin);
    const { row, token } = await createRunner(c.var.db, c.req.valid("json").name);
    c.header("cache-control", "no-store");
    return c.json(view(row, [], token), 201);
  },
);

runnerAdminRoutes.openapi(
  createRoute({
    method: "get", path: "/runners", tags: ["runners"], security, summary: "List active runners (newest first) with last_seen_at and the jobs they hold; admin key only",
    request: {
      query: z.object({
        limit: z.coerce.number().int().min(1).max(100).default(50).describe("items per page, 1 to 100"),
        cursor: z.string().max(300).optional().describe("the next_cursor of the previous page; leave out for the first page"),
      }),
    },
    responses: { 200: jsonResponse("Runners", z.object({ runners: z.array(runnerSchema).describe("runners, newest first"), next_cursor: nextCursorSchema }), { runners: [exampleRunner], next_cursor: null }), 400: errors[400], 401: errors[401], 403: errors[403] },
  }),
  async (c) => {
    requireAdmin(c.var.caller.isAdmin);
    const { limit, cursor } = c.req.valid("query");
    const { rows, held, more } = await listRunners(c.var.db, limit, cursor ? decodeCursor(cursor) : undefined);
    return c.json({ runners: rows.map((r) => view(r, held)), next_cursor: more ? encodeCursor(rows[rows.length - 1]!) : null }, 200);
  },
);

runnerAdminRoutes.openapi(
  createRoute({
    method: "delete", path: "/runners/{id}", tags: ["runners"], security, summary: "Revoke a runner's token; the jobs it held go back to the queue",
    request: { params: z.object({ id: idParam("id", EXAMPLE_IDS.runner, "the runner's id") }) },
    responses: { 204: { description: "Revoked" }, 401: errors[401], 403: errors[403], 404: errors[404] },
  }),
  async (c) => {
    requireAdmin(c.var.caller.isAdmin);
    const { id } = c.req.valid("param");
    if (!(await revokeRunner(c.var.db, id))) throw new ApiError("runner_not_found", `No active runner '${id}'. List them with GET /v1/runners.`, { id });
    // Its leases were expired by the revocation: put those jobs back in the queue now.
    await sweepExpiredLeases(c.var.db, Date.now(), jobEndedNotifier(c.env));
    return c.body(null, 204);
  },
);
