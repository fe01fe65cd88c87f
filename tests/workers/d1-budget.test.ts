/**
 * D1's production limits as design rules: at most 100 bound parameters per statement and 1,000 queries per invocation
 * (local workerd enforces neither). The meter (workers/services/d1-meter.ts) counts every request's statements and
 * refuses what production would refuse; these tests drive the routes whose work grows with the data and assert the
 * counts stay small and independent of the data's size.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { D1LimitError, meterD1 } from "../../workers/services/d1-meter";
import { getDb } from "../../workers/services/db";
import { leaseJob } from "../../workers/services/jobs";
import { callJson, callMetered, createTrainableDataset, RUNNER_ID, RUNNER_TOKEN } from "./helpers";

describe("the D1 meter", () => {
  it("refuses a statement with more than 100 bound parameters, as D1 does in production", async () => {
    const { db, usage } = meterD1(env.DB);
    const ok = Array.from({ length: 100 }, (_, i) => i);
    await db.prepare(`select ${ok.map(() => "?").join(", ")}`).bind(...ok).all();
    expect(usage).toMatchObject({ statements: 1, maxParams: 100 });
    const tooMany = Array.from({ length: 101 }, (_, i) => i);
    await expect(db.prepare(`select ${tooMany.map(() => "?").join(", ")}`).bind(...tooMany).all()).rejects.toThrow(D1LimitError);
  });

  it("refuses the 1,001st query of one invocation, batches counted per statement", async () => {
    const { db, usage } = meterD1(env.DB);
    for (let i = 0; i < 9; i++) await db.batch(Array.from({ length: 100 }, () => db.prepare("select 1")));
    for (let i = 0; i < 100; i++) await db.prepare("select 1").first();
    expect(usage.statements).toBe(1000);
    await expect(db.prepare("select 1").first()).rejects.toThrow(/limit 1000/);
  });
});

describe("requests within D1's limits whatever the data size", () => {
  it("records 1,000 epochs reported in one call in a few statements", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(job.id).run();
    const lease = await leaseJob(getDb(env.DB), RUNNER_ID);
    expect(lease?.job.id).toBe(job.id);
    const epochs = Array.from({ length: 1000 }, (_, i) => ({ epoch: i + 1, train_loss: 1 / (i + 1), val_loss: 2 / (i + 1), train_accuracy: i / 1000, val_accuracy: i / 1001 }));
    const first = await callMetered("POST", `/v1/runner/jobs/${job.id}/epochs`, { key: RUNNER_TOKEN, json: { lease_token: lease!.leaseToken, epochs: epochs.slice(0, 400) } });
    expect(first.status).toBe(200);
    const res = await callMetered("POST", `/v1/runner/jobs/${job.id}/epochs`, { key: RUNNER_TOKEN, json: { lease_token: lease!.leaseToken, epochs: epochs.slice(400) } });
    expect(res.status).toBe(200);
    expect(res.d1.maxParams).toBeLessThanOrEqual(100);
    expect(res.d1.statements).toBeLessThan(10);
    const all = await callMetered("POST", `/v1/runner/jobs/${job.id}/epochs`, { key: RUNNER_TOKEN, json: { lease_token: lease!.leaseToken, epochs: epochs.map((e) => ({ ...e, epoch: e.epoch + 1000 })) } });
    expect(all.status).toBe(200);
    expect(all.d1.statements).toBe(res.d1.statements);
    const read = (await callJson("GET", `/v1/jobs/${job.id}`, { key })).body;
    expect(read.metrics.epochs.map((e: { epoch: number }) => e.epoch)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    const events = await env.DB.prepare("select count(*) as n, min(id) as lo, max(id) as hi from job_events where job_id = ? and type = 'metrics'").bind(job.id).first<{ n: number }>();
    expect(events!.n).toBe(2000);
    const order = await env.DB.prepare("select json_extract(data, '$.epoch') as epoch from job_events where job_id = ? and type = 'metrics' order by id").bind(job.id).all<{ epoch: number }>();
    expect(order.results.map((r) => r.epoch)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
  });

  it("records nothing for a report whose lease lapsed", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(job.id).run();
    const lease = await leaseJob(getDb(env.DB), RUNNER_ID);
    await env.DB.prepare("update jobs set lease_expires_at = '2000-01-01T00:00:00.000Z' where id = ?").bind(job.id).run();
    const res = await callMetered("POST", `/v1/runner/jobs/${job.id}/epochs`, { key: RUNNER_TOKEN, json: { lease_token: lease!.leaseToken, epochs: [{ epoch: 1, train_loss: 1, val_loss: 1, train_accuracy: 0, val_accuracy: 0 }] } });
    expect(res.status).toBe(409);
    const events = await env.DB.prepare("select count(*) as n from job_events where job_id = ? and type = 'metrics'").bind(job.id).first<{ n: number }>();
    expect(events!.n).toBe(0);
  });
});
