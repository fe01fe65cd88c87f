/**
 * The scheduled sweep (workers/services/sweeps.ts) does the cleanup and recovery reads used to do, and each part is
 * idempotent under concurrent runs.
 */
import { createScheduledController, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../workers/index";
import { getDb } from "../../workers/services/db";
import { runIngestChunk } from "../../workers/services/ingest";
import { leaseJob, sweepExpiredLeases } from "../../workers/services/jobs";
import { DELIVERY_STALL_MS, resumeStalledIngests, runScheduledSweeps } from "../../workers/services/sweeps";
import { resumeStalledDeliveries } from "../../workers/services/webhooks";
import { makePng } from "../fixtures/images";
import { buildZip, call, callJson, createDataset, createProject, createTrainableDataset, drainIngests } from "./helpers";

const LONG_AGO = "2000-01-01T00:00:00.000Z";

async function runningJob() {
  const { key, projectId, datasetId } = await createTrainableDataset();
  const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
  await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(job.id).run();
  const lease = await leaseJob(getDb(env.DB), "runner-a");
  expect(lease?.job.id).toBe(job.id);
  return { key, projectId, job };
}

describe("scheduled sweeps", () => {
  it("a read never writes: a lapsed lease is swept by the cron handler, not by GET", async () => {
    const { key, job } = await runningJob();
    await env.DB.prepare("update jobs set lease_expires_at = ? where id = ?").bind(LONG_AGO, job.id).run();
    const before = await env.DB.prepare("select status, updated_at from jobs where id = ?").bind(job.id).first();
    await callJson("GET", `/v1/jobs/${job.id}`, { key });
    await callJson("GET", "/v1/jobs", { key });
    expect(await env.DB.prepare("select status, updated_at from jobs where id = ?").bind(job.id).first()).toEqual(before);
    await worker.scheduled!(createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" }), env as any);
    const after = (await callJson("GET", `/v1/jobs/${job.id}`, { key })).body;
    expect(after.status).toBe("queued");
    expect(after.error).toContain("lost its runner");
  });

  it("a job the sweep fails (lease lapsed on its last attempt) queues one job.failed webhook delivery, like a runner's /fail", async () => {
    const { projectId, job } = await runningJob();
    await env.DB.prepare("insert into webhooks (id, project_id, url, events, secret) values (?, ?, ?, ?, ?)")
      .bind("wh_sweeptest", projectId, "https://hooks.example.com/edgetune", JSON.stringify(["job.failed", "job.succeeded"]), "whsec_test")
      .run();
    await env.DB.prepare("update jobs set lease_expires_at = ?, attempt = max_attempts where id = ?").bind(LONG_AGO, job.id).run();
    const sent: unknown[] = [];
    const queue = { send: async (message: unknown) => void sent.push(message) };
    const sweepEnv = { ...env, INGEST_QUEUE: queue } as any;
    expect((await runScheduledSweeps(sweepEnv)).leases).toBe(1);
    expect((await runScheduledSweeps(sweepEnv)).leases).toBe(0); // swept once: no second event
    const deliveries = await env.DB.prepare("select id, event, event_id, payload from webhook_deliveries where project_id = ?").bind(projectId).all<{ id: string; event: string; event_id: string; payload: string }>();
    expect(deliveries.results.map((d) => [d.event, d.event_id])).toEqual([["job.failed", `${job.id}.failed`]]);
    const payload = JSON.parse(deliveries.results[0]!.payload);
    expect(payload.data.job).toMatchObject({ id: job.id, status: "failed", dataset_id: job.dataset_id });
    expect(payload.data.job.error).toMatch(/^Failed after \d+ attempts\. Attempt \d+ lost its runner/);
    expect(sent).toEqual([{ kind: "webhook", delivery_id: deliveries.results[0]!.id }]);
  });

  it("a job whose lease lapses with attempts left goes back to the queue and sends no webhook", async () => {
    const { projectId, job } = await runningJob();
    await env.DB.prepare("insert into webhooks (id, project_id, url, events, secret) values (?, ?, ?, ?, ?)")
      .bind("wh_sweeptest2", projectId, "https://hooks.example.com/edgetune", JSON.stringify(["job.failed", "job.canceled"]), "whsec_test")
      .run();
    await env.DB.prepare("update jobs set lease_expires_at = ? where id = ?").bind(LONG_AGO, job.id).run();
    const sent: unknown[] = [];
    expect((await runScheduledSweeps({ ...env, INGEST_QUEUE: { send: async (m: unknown) => void sent.push(m) } } as any)).leases).toBe(1);
    expect(sent).toEqual([]);
    expect((await env.DB.prepare("select count(*) as n from webhook_deliveries where project_id = ?").bind(projectId).first<{ n: number }>())!.n).toBe(0);
  });

  it("concurrent sweeps of one lapsed lease append one status event", async () => {
    const { job } = await runningJob();
    await env.DB.prepare("update jobs set lease_expires_at = ? where id = ?").bind(LONG_AGO, job.id).run();
    const db = getDb(env.DB);
    const swept = await Promise.all([sweepExpiredLeases(db), sweepExpiredLeases(db), sweepExpiredLeases(db)]);
    expect(swept.reduce((a, b) => a + b, 0)).toBe(1);
    const events = await env.DB.prepare("select json_extract(data, '$.status') as status from job_events where job_id = ? and type = 'status' order by id").bind(job.id).all();
    expect(events.results.map((e) => e.status)).toEqual(["queued", "running", "queued"]);
  });

  it("re-enqueues a stalled ingest once, and a duplicate chunk counts no image twice", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 12; i++) files[`${i % 2 ? "cat" : "dog"}/${i}.png`] = makePng(8, 8, 100 + i);
    const res = await call("POST", `/v1/datasets/${id}/archive`, { key, body: buildZip(files), headers: { "content-type": "application/zip" } });
    expect(res.status).toBe(202);
    const ingest = await env.DB.prepare("select id, cursor from ingests where dataset_id = ?").bind(id).first<{ id: string; cursor: number }>();
    // The process died: the message is gone and nothing moved for a long time.
    await env.DB.prepare("update ingests set updated_at = ? where id = ?").bind(LONG_AGO, ingest!.id).run();
    const db = getDb(env.DB);
    const resumed = await Promise.all([resumeStalledIngests(env as any, db), resumeStalledIngests(env as any, db)]);
    expect(resumed.reduce((a, b) => a + b, 0)).toBe(1);
    // The resumed message and a late duplicate of the lost one run at the same time: one chain commits.
    const message = { kind: "ingest" as const, ingest_id: ingest!.id, cursor: ingest!.cursor };
    await Promise.all([runIngestChunk(env as any, message), runIngestChunk(env as any, message)]);
    await drainIngests(id);
    const dataset = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(dataset.status).toBe("ready");
    expect(dataset.image_count).toBe(12);
    const row = await env.DB.prepare("select accepted, status from ingests where id = ?").bind(ingest!.id).first();
    expect(row).toEqual({ accepted: 12, status: "done" });
    const images = await env.DB.prepare("select count(*) as n, count(distinct sha256) as d from dataset_images where dataset_id = ?").bind(id).first();
    expect(images).toEqual({ n: 12, d: 12 });
  });

  it("aborts multipart uploads idle for a day and prunes old events of finished jobs only", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const upload = (await callJson("POST", `/v1/datasets/${id}/uploads`, { key, json: { filename: "big.zip" } })).body;
    const fresh = (await callJson("POST", `/v1/datasets/${id}/uploads`, { key, json: { filename: "fresh.zip" } })).body;
    await env.DB.prepare("update uploads set updated_at = ? where id = ?").bind(LONG_AGO, upload.upload_id).run();
    const { job } = await runningJob();
    await env.DB.prepare("insert into jobs (id, project_id, dataset_id, dataset_version, backbone, config, run_after, status) values ('job_old_done', 'p', 'd', 1, 'b', '{}', ?, 'succeeded')").bind(LONG_AGO).run();
    await env.DB.prepare("insert into job_events (job_id, type, data, created_at) values ('job_old_done', 'status', '{}', ?), (?, 'status', '{}', ?)").bind(LONG_AGO, job.id, LONG_AGO).run();
    const report = await runScheduledSweeps(env as any);
    expect(report.uploads).toBe(1);
    expect(report.events).toBeGreaterThanOrEqual(1);
    const statuses = await env.DB.prepare("select id, status from uploads where id in (?, ?) order by id").bind(upload.upload_id, fresh.upload_id).all();
    expect(Object.fromEntries(statuses.results.map((r) => [r.id, r.status]))).toEqual({ [upload.upload_id]: "aborted", [fresh.upload_id]: "open" });
    expect((await env.DB.prepare("select count(*) as n from job_events where job_id = 'job_old_done'").first())!.n).toBe(0);
    expect((await env.DB.prepare("select count(*) as n from job_events where job_id = ? and created_at = ?").bind(job.id, LONG_AGO).first())!.n).toBe(1);
  });

  it("re-enqueues a webhook delivery whose message died, once, and leaves due, delivered and failed ones alone", async () => {
    const { projectId } = await createProject();
    await env.DB.prepare("insert into webhooks (id, project_id, url, events, secret) values ('wh_sweep', ?, 'https://example.com/hook', '[\"job.succeeded\"]', 's')").bind(projectId).run();
    const recent = new Date(Date.now() - 10_000).toISOString();
    const insert = env.DB.prepare("insert into webhook_deliveries (id, webhook_id, project_id, event_id, event, payload, status, next_attempt_at) values (?, 'wh_sweep', ?, ?, 'job.succeeded', '{}', ?, ?)");
    await env.DB.batch([
      insert.bind("whd_lost", projectId, "e1", "pending", LONG_AGO),
      insert.bind("whd_due", projectId, "e2", "pending", recent),
      insert.bind("whd_done", projectId, "e3", "delivered", LONG_AGO),
      insert.bind("whd_failed", projectId, "e4", "failed", LONG_AGO),
    ]);
    const db = getDb(env.DB);
    const resumed = await Promise.all([resumeStalledDeliveries(env as any, db, DELIVERY_STALL_MS), resumeStalledDeliveries(env as any, db, DELIVERY_STALL_MS)]);
    expect(resumed.reduce((a, b) => a + b, 0)).toBe(1);
    const rows = await env.DB.prepare("select id, next_attempt_at from webhook_deliveries where webhook_id = 'wh_sweep' order by id").all<{ id: string; next_attempt_at: string }>();
    const next = Object.fromEntries(rows.results.map((r) => [r.id, r.next_attempt_at]));
    expect(next.whd_lost > recent).toBe(true); // claimed: not sent again for another DELIVERY_STALL_MS
    expect(next.whd_due).toBe(recent);
    expect(await resumeStalledDeliveries(env as any, db, DELIVERY_STALL_MS)).toBe(0);
  });
});
