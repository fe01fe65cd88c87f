/** `/v1/webhooks`: signed event deliveries to the tenant's own https endpoint (services/webhooks.ts). */
import { createRoute, z } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import { notFound } from "../../shared/errors";
import { createRouter } from "../app";
import { webhookDeliveries, webhooks } from "../db/schema";
import { afterCursor, newestFirst, pageOf, pageQuery } from "../services/pagination";
import { WEBHOOK_EVENTS, createWebhook, deliveryView, webhookView } from "../services/webhooks";
import { errors, idParam, jsonBody, jsonResponse, nextCursorSchema, security } from "./openapi-helpers";
import { EXAMPLE_IDS, page } from "./openapi-examples";

export const webhookRoutes = createRouter();

const createWebhookRequest = z
  .object({
    url: z.string().url().max(2000).describe("https URL on a public host that receives a JSON POST per event").meta({ example: "https://example.com/hooks/edgetune" }),
    events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).describe("which events to send").meta({ example: ["job.succeeded", "job.failed", "dataset.ready"] }),
  })
  .strict()
  .meta({ id: "CreateWebhookRequest", description: "Where to send which events" });
const webhookSchema = z
  .object({
    id: z.string().describe("the webhook's id (`wh_...`)"),
    url: z.string().describe("where events are POSTed"),
    events: z.array(z.string()).describe("the events it receives"),
    secret: z.string().optional().describe("HMAC-SHA256 key of the `edgetune-signature` header; shown only when the webhook is created"),
    created_at: z.string().describe("ISO 8601 UTC"),
    updated_at: z.string().describe("ISO 8601 UTC"),
  })
  .meta({ id: "Webhook", description: "A receiver of signed event POSTs" });
const deliverySchema = z
  .object({
    id: z.string().describe("the delivery's id"),
    webhook_id: z.string().describe("the webhook it is for"),
    event_id: z.string().describe("the event's id, also `id` in the delivered body: the same event is delivered once"),
    event: z.string().describe("the event type, e.g. job.succeeded"),
    status: z.enum(["pending", "delivered", "failed"]).describe("pending: being tried (with backoff); delivered: the receiver answered 2xx; failed: given up"),
    attempts: z.number().int().describe("POSTs tried so far"),
    last_status_code: z.number().int().nullable().describe("the receiver's HTTP status at the last attempt, null when it could not be reached"),
    last_error: z.string().nullable().describe("why the last attempt failed (status, timeout, connection error); null once delivered"),
    delivered_at: z.string().nullable().describe("when the receiver answered 2xx"),
    created_at: z.string().describe("ISO 8601 UTC: when the event happened"),
    updated_at: z.string().describe("ISO 8601 UTC: the last attempt"),
  })
  .meta({ id: "WebhookDelivery", description: "One event's delivery to one webhook" });
const exampleWebhook: z.output<typeof webhookSchema> = {
  id: EXAMPLE_IDS.webhook, url: "https://example.com/hooks/edgetune", events: ["job.succeeded", "job.failed", "dataset.ready"], created_at: "2026-12-01T09:00:00.000Z", updated_at: "2026-12-01T09:00:00.000Z",
};
const exampleDelivery: z.output<typeof deliverySchema> = {
  id: "whd_5m9n3p7q1r4s8t2v6w0x3y7z1a", webhook_id: EXAMPLE_IDS.webhook, event_id: `${EXAMPLE_IDS.job}.succeeded`, event: "job.succeeded", status: "delivered", attempts: 2,
  last_status_code: 200, last_error: null, delivered_at: "2026-12-01T09:34:20.000Z", created_at: "2026-12-01T09:34:12.000Z", updated_at: "2026-12-01T09:34:20.000Z",
};
const webhookParam = z.object({ id: idParam("id", EXAMPLE_IDS.webhook, "the webhook's id") });

async function loadWebhook(c: { var: { db: any; caller: { projectId: string } } }, id: string) {
  const row = await c.var.db.select().from(webhooks).where(and(eq(webhooks.id, id), eq(webhooks.projectId, c.var.caller.projectId))).get();
  if (!row) throw notFound("webhook", id);
  return row as typeof webhooks.$inferSelect;
}

webhookRoutes.openapi(
  createRoute({
    method: "post", path: "/webhooks", tags: ["webhooks"], security, operationId: "createWebhook",
    summary: "Register a webhook: each event is POSTed as JSON, signed `edgetune-signature: t=<unix s>,v1=<hex HMAC-SHA256 of '<t>.<body>'>`, retried with backoff until a 2xx",
    request: { body: jsonBody(createWebhookRequest, { url: exampleWebhook.url, events: ["job.succeeded", "job.failed", "dataset.ready"] }) },
    responses: { 201: jsonResponse("The webhook with its secret (shown once)", webhookSchema, { ...exampleWebhook, secret: "whsec_3kR8mQ2vX9pL5tN7wY1cB4zF6hJ0dS" }), 400: errors[400], 401: errors[401], 422: errors[422] },
  }),
  async (c) => {
    const { url, events } = c.req.valid("json");
    return c.json(await createWebhook(c.env, c.var.db, c.var.caller.projectId, url, events), 201);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "get", path: "/webhooks", tags: ["webhooks"], security, operationId: "listWebhooks", summary: "List webhooks, newest first (never their secrets)",
    request: { query: pageQuery },
    responses: { 200: jsonResponse("One page of webhooks", z.object({ webhooks: z.array(webhookSchema).describe("webhooks, newest first"), next_cursor: nextCursorSchema }), page("webhooks", exampleWebhook)), 400: errors[400], 401: errors[401] },
  }),
  async (c) => {
    const page = c.req.valid("query");
    const rows = await c.var.db.select().from(webhooks).where(and(eq(webhooks.projectId, c.var.caller.projectId), afterCursor(webhooks.createdAt, webhooks.id, page.cursor))).orderBy(...newestFirst(webhooks.createdAt, webhooks.id)).limit(page.limit + 1).all();
    const { items, nextCursor } = pageOf(rows, page.limit, (r) => r);
    return c.json({ webhooks: items.map((r) => webhookView(r)), next_cursor: nextCursor }, 200);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "delete", path: "/webhooks/{id}", tags: ["webhooks"], security, operationId: "deleteWebhook", summary: "Delete a webhook (pending deliveries are dropped)",
    request: { params: webhookParam },
    responses: { 204: { description: "Deleted" }, 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const hook = await loadWebhook(c, c.req.valid("param").id);
    await c.var.db.delete(webhooks).where(eq(webhooks.id, hook.id));
    return c.body(null, 204);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "get", path: "/webhooks/{id}/deliveries", tags: ["webhooks"], security, operationId: "listWebhookDeliveries",
    summary: "A webhook's deliveries, newest first: status, attempts, the receiver's last status code and the last error",
    request: { params: webhookParam, query: pageQuery },
    responses: { 200: jsonResponse("One page of deliveries", z.object({ deliveries: z.array(deliverySchema).describe("deliveries, newest first"), next_cursor: nextCursorSchema }), page("deliveries", exampleDelivery)), 400: errors[400], 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const hook = await loadWebhook(c, c.req.valid("param").id);
    const page = c.req.valid("query");
    const rows = await c.var.db.select().from(webhookDeliveries).where(and(eq(webhookDeliveries.webhookId, hook.id), afterCursor(webhookDeliveries.createdAt, webhookDeliveries.id, page.cursor))).orderBy(...newestFirst(webhookDeliveries.createdAt, webhookDeliveries.id)).limit(page.limit + 1).all();
    const { items, nextCursor } = pageOf(rows, page.limit, (r) => r);
    return c.json({ deliveries: items.map(deliveryView), next_cursor: nextCursor }, 200);
  },
);
