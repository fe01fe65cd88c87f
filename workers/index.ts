/**
 * edgetune Worker entry: the HTTP API (Hono) and the ingest queue consumer.
 * Routes are mounted from one file per resource in routes/; services/ hold the logic and know nothing of Hono.
 */
import { ApiError } from "../shared/errors";
import { createRouter, errorResponse, ipRateLimit, jsonBodyLimit, requireApiKey, securityHeaders } from "./app";
import type { Env } from "./env";
import { backboneRoutes } from "./routes/backbones";
import { datasetRoutes } from "./routes/datasets";
import { diagnosticsRoutes } from "./routes/diagnostics";
import { datasetImageRoutes } from "./routes/dataset-images";
import { jobRoutes } from "./routes/jobs";
import { modelRoutes } from "./routes/models";
import { aliasRoutes } from "./routes/aliases";
import { predictRoutes } from "./routes/predict";
import { runnerRoutes } from "./routes/runner";
import { webhookRoutes } from "./routes/webhooks";
import { assignOperationIds } from "./routes/operation-ids";
import { attemptDelivery, type WebhookMessage } from "./services/webhooks";
import { runnerAdminRoutes } from "./routes/runners";
import { DOCS_NONCE_SLOT, docsContentSecurityPolicy, renderDocsHtml } from "./routes/docs";
import { DOCS_URLS, DOCUMENT_URLS, openApiDocument, type DocumentName } from "./routes/openapi-documents";
import { randomString } from "../shared/ids";
import { projectRoutes } from "./routes/projects";
import { getConfig } from "./config";
import { withMeteredD1, withUsageHeaders } from "./services/d1-meter";
import { runPurgeMessage, type PurgeMessage } from "./services/deletions";
import { runScheduledSweeps } from "./services/sweeps";
import { abandonIngest, runIngestChunk, type IngestMessage } from "./services/ingest";

export { JobDispatcher } from "./durable/job-dispatcher";
import { wakeRunners } from "./services/dispatch";

export const app = createRouter();

type QueueMessage = IngestMessage | PurgeMessage;

app.use("*", securityHeaders());
app.use("*", ipRateLimit());
app.use("/v1/*", jsonBodyLimit());
app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", description: "An API key of your project" });
app.openAPIRegistry.registerComponent("securitySchemes", "runnerToken", { type: "http", scheme: "bearer", description: "A runner's own token (POST /v1/runners, given to the runner as EDGETUNE_RUNNER_TOKEN); only for /v1/runner routes" });
app.use("/v1/*", async (c, next) => {
  if (c.req.path.startsWith("/v1/runner/")) return next();
  return requireApiKey()(c, next);
});
app.route("/v1", projectRoutes);
app.route("/v1", datasetRoutes);
app.route("/v1", datasetImageRoutes);
app.route("/v1", diagnosticsRoutes);
app.route("/v1", backboneRoutes);
app.route("/v1", jobRoutes);
app.route("/v1", modelRoutes);
app.route("/v1", predictRoutes);
app.route("/v1", aliasRoutes);
app.route("/v1", runnerAdminRoutes);
app.route("/v1", runnerRoutes);
app.route("/v1", webhookRoutes);

// In `wrangler dev` and production, `/` is the dashboard (dashboard/dist/index.html, Workers static assets) and never
// reaches the Worker; this answer is for callers of the Worker itself (the vitest pool).
app.get("/", (c) => c.json({ name: "edgetune", docs: "/docs", openapi: "/openapi.json", runner_openapi: "/runner/openapi.json" }));
// Every operation gets an operationId (routes/operation-ids.ts) once all routes are mounted.
assignOperationIds(app.openAPIRegistry.definitions as any);
// Two documents: the public API, and the runner protocol on its own (routes/openapi-documents.ts); /docs and
// /docs/runner render them as plain HTML on the server (routes/docs.ts).
const definitions = app.openAPIRegistry.definitions as any[];
const docsPages = new Map<DocumentName, string>();
for (const name of ["public", "runner"] as const) {
  app.get(DOCUMENT_URLS[name], (c) => c.json(openApiDocument(definitions, name)));
  app.get(DOCS_URLS[name], (c) => {
    const nonce = randomString(16);
    let page = docsPages.get(name);
    if (!page) docsPages.set(name, (page = renderDocsHtml(openApiDocument(definitions, name), name, DOCS_NONCE_SLOT)));
    c.header("content-security-policy", docsContentSecurityPolicy(nonce));
    return c.html(page.replaceAll(DOCS_NONCE_SLOT, nonce));
  });
}
app.notFound((c) => c.json(new ApiError("route_not_found", `No route ${c.req.method} ${c.req.path}. See /docs for the API.`).toBody(), 404));
app.onError((err, c) => errorResponse(err, `${c.req.method} ${c.req.path}`));

export default {
  async fetch(request, rawEnv, ctx) {
    // D1's production limits, enforced per invocation in every environment (services/d1-meter.ts).
    const { env, usage } = withMeteredD1(rawEnv);
    const response = await app.fetch(request, env, ctx);
    return getConfig(env).d1MeterHeaders ? withUsageHeaders(response, usage) : response;
  },
  async queue(batch, rawEnv) {
    const { env } = withMeteredD1(rawEnv);
    for (const message of batch.messages) {
      if ((message.body as unknown as WebhookMessage)?.kind === "webhook") {
        // One delivery attempt per message; a failed attempt comes back after its backoff through the queue.
        const delivery = message.body as unknown as WebhookMessage;
        try {
          const outcome = await attemptDelivery(env, delivery.delivery_id);
          if (outcome === "done") message.ack();
          else message.retry({ delaySeconds: outcome.retryInS });
        } catch (err) {
          console.error(`webhook delivery ${delivery.delivery_id} failed (attempt ${message.attempts}):`, err);
          message.retry({ delaySeconds: Math.min(300, 2 ** message.attempts) });
        }
        continue;
      }
      const body = message.body as QueueMessage;
      try {
        if (body?.kind === "ingest") {
          const next = await runIngestChunk(env, body);
          if (next) await env.INGEST_QUEUE.send(next);
        } else if (body?.kind === "purge") {
          const next = await runPurgeMessage(env, body);
          if (next) await env.INGEST_QUEUE.send(next);
        }
        message.ack();
      } catch (err) {
        console.error(`queue message ${JSON.stringify(body)} failed (attempt ${message.attempts}):`, err);
        if (message.attempts >= 10) {
          // The scheduled sweep resumes a purge that stopped; an ingest that keeps failing is marked failed.
          if (body?.kind === "ingest") await abandonIngest(env, body, err instanceof Error ? err.message : String(err));
          message.ack();
        } else {
          message.retry({ delaySeconds: Math.min(60, 2 ** message.attempts) });
        }
      }
    }
  },
  async scheduled(_controller, rawEnv) {
    const { env } = withMeteredD1(rawEnv);
    const report = await runScheduledSweeps(env);
    // Jobs the sweep requeued may be leasable now (or after their backoff): waiting runners re-check D1.
    if (report.leases > 0) await wakeRunners(env.DISPATCHER);
    if (Object.values(report).some((n) => n > 0)) console.log("scheduled sweep", JSON.stringify(report));
  },
} satisfies ExportedHandler<Env, QueueMessage>;
