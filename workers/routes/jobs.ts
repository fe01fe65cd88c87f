import { createRoute, z } from "@hono/zod-openapi";
import { wakeRunners } from "../services/dispatch";
import { streamSSE } from "hono/streaming";
import { ApiError, notFound } from "../../shared/errors";
import { createJobRequest, jobSchema } from "../../shared/schemas";
import { pageQuery } from "../services/pagination";
import { KEY_RECHECK_MS, MAX_STREAM_MS, POLL_MIN_MS, QUERY_BUDGET, closeStream, nextPollMs, openStream, renewStream } from "../services/event-streams";
import { emitSafely } from "../services/webhooks";
import { getConfig } from "../config";
import { enforceQuotas } from "../services/quotas";
import { createRouter } from "../app";
import { cancelJob, getJob, isTerminal, jobView, listEvents, listJobs, startJob } from "../services/jobs";
import { errors, idParam, jsonBody, jsonResponse, nextCursorSchema, security } from "./openapi-helpers";
import { EXAMPLE_IDS, exampleJob, page } from "./openapi-examples";

export const jobRoutes = createRouter();
const jobParam = z.object({ id: idParam("id", EXAMPLE_IDS.job, "the job's id") });
const queuedJob = { ...exampleJob, status: "queued" as const, attempt: 0, progress: { phase: null, done: 0, total: 0 }, metrics: { epochs: [] }, started_at: null };

jobRoutes.openapi(
  createRoute({
    method: "post", path: "/jobs", tags: ["jobs"], security,
    summary: "Start a fine-tune job: frozen backbone (or all of it below the last blocks with fine_tune), new head trained on the dataset's current version",
    description: "422 codes: job_too_costly (epochs x images past the limit), fine_tune_unsupported (a backbone without blocks edgetune knows, or fine_tune with augmentation).",
    request: { body: jsonBody(createJobRequest, { dataset_id: EXAMPLE_IDS.dataset, backbone: "mobilenet_v2", head: { type: "auto" }, hyperparameters: { epochs: 100, seed: 42 } }) },
    responses: { 201: jsonResponse("The queued job", jobSchema, queuedJob), 400: errors[400], 401: errors[401], 404: errors[404], 409: errors[409], 422: errors[422] },
  }),
  async (c) => {
    await enforceQuotas(c.var.db, c.var.caller.projectId, getConfig(c.env).quotas, { queued_jobs: 1 });
    const job = await startJob(c.var.db, c.var.caller.projectId, c.req.valid("json"));
    await wakeRunners(c.env.DISPATCHER); // a waiting runner leases it within milliseconds
    return c.json(jobView(job), 201);
  },
);

jobRoutes.openapi(
  createRoute({
    method: "get", path: "/jobs", tags: ["jobs"], security, summary: "List jobs, newest first",
    request: {
      query: pageQuery.extend({
        dataset_id: z.string().optional().describe("only this dataset's jobs").meta({ example: EXAMPLE_IDS.dataset }),
        status: z.enum(["queued", "running", "succeeded", "failed", "canceled"]).optional().describe("only jobs in this status"),
      }),
    },
    responses: { 200: jsonResponse("One page of jobs", z.object({ jobs: z.array(jobSchema).describe("jobs, newest first"), next_cursor: nextCursorSchema }), page("jobs", exampleJob)), 400: errors[400], 401: errors[401] },
  }),
  async (c) => {
    const { dataset_id, status, ...page } = c.req.valid("query");
    return c.json(await listJobs(c.var.db, c.var.caller.projectId, { datasetId: dataset_id, status }, page), 200);
  },
);

jobRoutes.openapi(
  createRoute({
    method: "get", path: "/jobs/{id}", tags: ["jobs"], security, summary: "Read a job: status, progress, per-epoch metrics, model id",
    request: { params: jobParam },
    responses: { 200: jsonResponse("The job", jobSchema, exampleJob), 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    // A read never writes: lapsed leases are swept when runners lease and by the scheduled sweep (every minute).
    const job = await getJob(c.var.db, c.var.caller.projectId, c.req.valid("param").id);
    if (!job) throw notFound("job", c.req.valid("param").id);
    return c.json(jobView(job), 200);
  },
);

jobRoutes.openapi(
  createRoute({
    method: "post", path: "/jobs/{id}/cancel", tags: ["jobs"], security, summary: "Cancel: a queued job at once, a running one at its next heartbeat (seconds)",
    request: { params: jobParam },
    responses: { 202: jsonResponse("The job: canceled, or still running with cancel requested", jobSchema, { ...queuedJob, status: "canceled", finished_at: "2026-12-01T09:31:00.000Z" }), 401: errors[401], 404: errors[404] },
  }),
  async (c) => {
    const job = await getJob(c.var.db, c.var.caller.projectId, c.req.valid("param").id);
    if (!job) throw notFound("job", c.req.valid("param").id);
    const after = await cancelJob(c.var.db, job);
    if (after.status === "canceled" && job.status !== "canceled") await emitSafely(c.env, job.projectId, "job.canceled", `${job.id}.canceled`, { job: { id: job.id, status: "canceled", dataset_id: job.datasetId, error: null } });
    return c.json(jobView(after), 202);
  },
);


jobRoutes.openapi(
  createRoute({
    method: "get", path: "/jobs/{id}/events", tags: ["jobs"], security, operationId: "streamJobEvents",
    summary: "Server-Sent Events: `status`, `progress`, `metrics` (one per epoch) and `cancel_requested`; resumes after Last-Event-ID; ends after the final status",
    description: "Each event's `data` is JSON: `status` {status, attempt?, model_id?, error?}, `progress` {phase, done, total}, `metrics` (one EpochMetrics), `cancel_requested` {}; the stream ends with an `end` event whose data is the final Job. Reconnect with the Last-Event-ID header (or ?after=) to resume after the last event seen; 429 `rate_limited` when the key has too many streams open.",
    request: {
      params: jobParam,
      query: z.object({ after: z.string().optional().describe("resume after this event id (the same as the Last-Event-ID header)").meta({ example: "12" }) }),
    },
    responses: {
      200: {
        description: "An event stream",
        content: {
          "text/event-stream": {
            schema: z.string().meta({ description: "Server-Sent Events: `id`, `event` and JSON `data` lines per event" }),
            example: 'id: 7\nevent: progress\ndata: {"phase":"embedding","done":128,"total":400}\n\nid: 8\nevent: metrics\ndata: {"epoch":1,"train_loss":1.21,"val_loss":0.94,"train_accuracy":0.61,"val_accuracy":0.74}\n\n',
          },
        },
      },
      401: errors[401], 404: errors[404], 429: errors[429],
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { db, caller } = c.var;
    const job = await getJob(db, caller.projectId, id);
    if (!job) throw notFound("job", id);
    let after = Number(c.req.header("last-event-id") ?? c.req.query("after") ?? 0) || 0;
    // Limits (services/event-streams.ts): streams per key, key re-check, polling back-off, a query budget.
    let streamId: string;
    try {
      streamId = await openStream(db, caller.keyId, id);
    } catch (err) {
      if (err instanceof ApiError && err.code === "rate_limited") return c.json(err.toBody(), 429, { "retry-after": String(KEY_RECHECK_MS / 1000) });
      throw err;
    }
    return streamSSE(c, async (stream) => {
      const started = Date.now();
      let queries = 0;
      let pollMs = POLL_MIN_MS;
      let checkedAt = started;
      try {
        while (!stream.aborted && Date.now() - started < MAX_STREAM_MS && queries < QUERY_BUDGET) {
          if (Date.now() - checkedAt >= KEY_RECHECK_MS) {
            checkedAt = Date.now();
            queries += 2;
            if (!(await renewStream(db, streamId, caller.keyId))) {
              await stream.writeSSE({ event: "error", data: JSON.stringify({ code: "invalid_api_key", message: "This API key was revoked; the stream ends." }) });
              return;
            }
          }
          const events = await listEvents(db, id, after);
          queries++;
          for (const event of events) {
            await stream.writeSSE({ id: String(event.id), event: event.type, data: JSON.stringify(event.data) });
            after = event.id;
          }
          if (events.length === 0) {
            const current = await getJob(db, caller.projectId, id);
            queries++;
            if (!current || isTerminal(current.status)) {
              await stream.writeSSE({ event: "end", data: JSON.stringify(current ? jobView(current) : null) });
              return;
            }
          }
          pollMs = nextPollMs(pollMs, events.length > 0);
          if (events.length === 0) await stream.sleep(pollMs);
        }
      } finally {
        await closeStream(db, streamId).catch(() => undefined);
      }
    });
  },
);
