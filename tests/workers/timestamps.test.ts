/**
 * Every resource has `created_at` (set once) and `updated_at` (the last change); the job queue runs in creation order.
 * Migration 0000 mapped updatedAt onto the created_at column, so every update rewrote created_at: these tests fail there.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { makePng } from "../fixtures/images";
import { getDb } from "../../workers/services/db";
import { failJob, heartbeat, leaseJob } from "../../workers/services/jobs";
import { call, callJson, createDataset, createProject, createTrainableDataset } from "./helpers";

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("timestamps", () => {
  it("keeps a dataset's created_at through uploads while updated_at moves forward", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const created = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(created.updated_at).toBe(created.created_at);
    await pause(5);
    const res = await call("PUT", `/v1/datasets/${id}/images/cat/a.png`, { key, body: makePng(8, 8, 1), headers: { "content-type": "image/png" } });
    expect(res.status).toBe(201);
    const after = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(after.created_at).toBe(created.created_at);
    expect(after.updated_at > created.updated_at).toBe(true);
    const listed = (await callJson("GET", "/v1/datasets", { key })).body.datasets.find((d: { id: string }) => d.id === id);
    expect(listed.created_at).toBe(created.created_at);
  });

  it("keeps a job's created_at through lease and heartbeats; updated_at is the last change", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    expect(job.updated_at).toBe(job.created_at);
    await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(job.id).run();
    const db = getDb(env.DB);
    await pause(5);
    const lease = await leaseJob(db, "runner-a");
    expect(lease?.job.id).toBe(job.id);
    await pause(5);
    await heartbeat(db, job.id, lease!.leaseToken, { phase: "embedding", done: 1, total: 4 });
    const read = (await callJson("GET", `/v1/jobs/${job.id}`, { key })).body;
    expect(read.created_at).toBe(job.created_at);
    expect(read.updated_at > job.created_at).toBe(true);
  });

  it("leases jobs in creation order, even after the oldest was leased and given back", async () => {
    const { key, datasetId } = await createTrainableDataset();
    await env.DB.prepare("update jobs set status = 'canceled' where status in ('queued', 'running')").run();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body.id);
    const db = getDb(env.DB);
    const first = await leaseJob(db, "runner-a");
    expect(first?.job.id).toBe(ids[0]);
    await pause(5);
    // Released on shutdown: queued again at once. Its update must not make it look newer than the others.
    await failJob(db, ids[0], first!.leaseToken, { error: "shutting down", retryable: true, release: true });
    const order: string[] = [];
    for (let i = 0; i < 3; i++) order.push((await leaseJob(db, `runner-${i}`))!.job.id);
    expect(order).toEqual(ids);
  });

  it("gives keys, models' and aliases' views both timestamps", async () => {
    const { key } = await createProject();
    const created = (await callJson("POST", "/v1/keys", { key, json: { name: "ci" } })).body;
    expect(created.created_at).toEqual(expect.any(String));
    expect(created.updated_at).toBe(created.created_at);
  });
});
