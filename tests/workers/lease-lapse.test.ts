/**
 * A runner whose lease lapsed reports the end of its job: it gets 409 lease_lost and the job's events, its model
 * rows and its stored objects stay as they were. Two places the lapse can land: before the report (the route's lease
 * check refuses it) and between a service's lease check and its write (the batch's conditional update refuses it; the
 * event in the same batch must be conditional on it too). Storage is shared per file, so each test leases its own job.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { getDb } from "../../workers/services/db";
import { completeJob, completeJobWithoutModel, failJob, leaseJob } from "../../workers/services/jobs";
import { RUNNER_TOKEN, call, callJson, createTrainableDataset, runnerCall } from "./helpers";

async function leasedJob(): Promise<{ key: string; projectId: string; jobId: string; token: string }> {
  const { key, projectId, datasetId } = await createTrainableDataset();
  const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
  await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(job.id).run();
  const lease = await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: "r1", wait_s: 0 } });
  expect(lease.body.job.id).toBe(job.id);
  return { key, projectId, jobId: job.id, token: lease.body.lease.token };
}

const backdateLease = (jobId: string) => env.DB.prepare("update jobs set lease_expires_at = ? where id = ?").bind(new Date(Date.now() - 1000).toISOString(), jobId).run();

async function snapshot(jobId: string, projectId: string) {
  const events = (await env.DB.prepare("select type, data from job_events where job_id = ? order by id").bind(jobId).all()).results;
  const models = (await env.DB.prepare("select id from models where job_id = ?").bind(jobId).all()).results;
  const job = await env.DB.prepare("select status, model_id, metrics, finished_at from jobs where id = ?").bind(jobId).first();
  const objects = (await env.BUCKET.list({ prefix: `projects/${projectId}/models/` })).objects.map((o) => `${o.key} ${o.etag}`).sort();
  return { events, models, job, objects };
}

/** env.DB whose batches run after the job's lease lapsed: the lapse lands between a service's check and its write. */
function lapsingBeforeBatch(jobId: string): D1Database {
  return new Proxy(env.DB, {
    get(target, property) {
      if (property === "batch") return async (statements: D1PreparedStatement[]) => (await backdateLease(jobId), target.batch(statements));
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const done = { labels: ["cat", "dog"], metrics: { accuracy: 1 }, headBytes: 4, objectPrefix: "x", epochs: [], skipped: [] };

describe("a report from a runner whose lease lapsed", () => {
  it("POST complete answers 409 lease_lost and records no event, model or object", async () => {
    const { projectId, jobId, token } = await leasedJob();
    for (const name of ["head.json", "head.bin"]) {
      const put = await call("PUT", `/v1/runner/jobs/${jobId}/artifacts/${name}`, { key: RUNNER_TOKEN, body: new Uint8Array([1, 2, 3, 4]), headers: { "x-lease-token": token } });
      expect(put.status).toBe(200);
    }
    await backdateLease(jobId);
    const before = await snapshot(jobId, projectId);
    // Metrics past 256 KB would be stored as metrics.json beside the head: none may be written either.
    const metrics = { accuracy: 0.9, per_class: [], confusion_matrix: Array.from({ length: 300 }, () => Array.from({ length: 300 }, () => 1)) };
    const complete = await runnerCall("POST", `/v1/runner/jobs/${jobId}/complete`, { json: { lease_token: token, labels: ["cat", "dog"], metrics, epochs: [], head_bytes: 4 } });
    expect(complete.status).toBe(409);
    expect(complete.body.error.code).toBe("lease_lost");
    expect(await snapshot(jobId, projectId)).toEqual(before);
    expect(before.events.map((e: any) => JSON.parse(e.data).status)).not.toContain("succeeded");
  });

  it("completeJob refuses a lease that lapses after its check, appending no succeeded event and no model", async () => {
    const { projectId, jobId, token } = await leasedJob();
    const before = await snapshot(jobId, projectId);
    await expect(completeJob(getDb(lapsingBeforeBatch(jobId)), jobId, token, done)).rejects.toMatchObject({ code: "lease_lost" });
    const after = await snapshot(jobId, projectId);
    expect(after.events).toEqual(before.events);
    expect(after.models).toEqual([]);
    expect(after.job).toMatchObject({ status: "running", model_id: null, finished_at: null });
  });

  it("completeJobWithoutModel and failJob refuse a lease that lapses after their check, appending no event", async () => {
    const { projectId, jobId, token } = await leasedJob();
    const before = await snapshot(jobId, projectId);
    const db = getDb(lapsingBeforeBatch(jobId));
    await expect(completeJobWithoutModel(db, jobId, token, {})).rejects.toMatchObject({ code: "lease_lost" });
    await env.DB.prepare("update jobs set lease_expires_at = ? where id = ?").bind(new Date(Date.now() + 60_000).toISOString(), jobId).run();
    await expect(failJob(db, jobId, token, { error: "CUDA out of memory", retryable: true })).rejects.toMatchObject({ code: "lease_lost" });
    const after = await snapshot(jobId, projectId);
    expect(after.events).toEqual(before.events);
    expect(after.job).toMatchObject({ status: "running", finished_at: null });
  });
});
