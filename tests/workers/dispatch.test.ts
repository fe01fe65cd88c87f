/**
 * Lease dispatch through the JobDispatcher Durable Object (workers/durable/job-dispatcher.ts, services/dispatch.ts):
 * a waiting runner costs no D1 queries while it waits, and is woken by a job's creation or release instead of
 * finding it by polling. D1 stays the source of truth (every lease is still leaseJob's conditional UPDATE).
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DISPATCHER_NAME } from "../../workers/durable/job-dispatcher";
import { callJson, callMetered, createTrainableDataset, RUNNER_TOKEN } from "./helpers";

const dispatcher = () => env.DISPATCHER.get(env.DISPATCHER.idFromName(DISPATCHER_NAME));

/** No other job may be leased in these tests: cancel everything queued or running. */
async function noOtherJobs(): Promise<void> {
  await env.DB.prepare("update jobs set status = 'canceled' where status in ('queued', 'running')").run();
}

/** Resolves once `count` runners wait on the dispatcher (their lease requests are parked there, not polling). */
async function untilWaiting(count: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if ((await dispatcher().waiting()) >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`never saw ${count} waiting runner(s)`);
}

const lease = (runnerId: string, waitS: number) => callMetered("POST", "/v1/runner/lease", { key: RUNNER_TOKEN, json: { runner_id: runnerId, wait_s: waitS } });

describe("lease dispatch (Durable Object)", () => {
  it("an idle runner's long poll costs a fixed handful of D1 statements, not two per half second", async () => {
    await noOtherJobs();
    const idle = await lease("idle-runner", 3);
    expect(idle.status).toBe(204);
    // The runner's token lookup (and at most one sampled last_seen_at write), then sweep + claim + next-due check, and
    // the same once more when the wait ends. Polling every 500 ms took ~14.
    expect(idle.d1.statements).toBeLessThanOrEqual(8);
  });

  it("a runner waiting on the dispatcher leases a job as soon as it is created", async () => {
    const { key, datasetId } = await createTrainableDataset(5);
    await noOtherJobs();
    const waiting = lease("waiting-runner", 25);
    await untilWaiting(1);
    const created = await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const leased = await waiting;
    expect(leased.status).toBe(200);
    expect(leased.body.job.id).toBe(created.body.id);
    // Woken, not polled: one wait and two lease attempts, whatever the 25 s allowed.
    expect(leased.d1.statements).toBeLessThanOrEqual(14);
    expect(await dispatcher().waiting()).toBe(0);
  });

  it("a job released by one runner wakes another that is waiting", async () => {
    const { key, datasetId } = await createTrainableDataset(5);
    await noOtherJobs();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    const first = await lease("runner-a", 0);
    expect(first.body.job.id).toBe(job.id);
    const second = lease("runner-b", 25);
    await untilWaiting(1);
    const released = await callJson("POST", `/v1/runner/jobs/${job.id}/fail`, { key: RUNNER_TOKEN, json: { lease_token: first.body.lease.token, error: "shutting down", release: true } });
    expect(released.body.status).toBe("queued");
    const taken = await second;
    expect(taken.status).toBe(200);
    expect(taken.body.job.id).toBe(job.id);
    expect(taken.body.job.attempt).toBe(1); // a release does not count as an attempt
  });

  it("one job created while several runners wait goes to exactly one of them", async () => {
    const { key, datasetId } = await createTrainableDataset(5);
    await noOtherJobs();
    const waiters = ["w1", "w2", "w3"].map((id) => lease(id, 3));
    await untilWaiting(3);
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    const answers = await Promise.all(waiters);
    const winners = answers.filter((answer) => answer.status === 200);
    expect(winners).toHaveLength(1);
    expect(winners[0]!.body.job.id).toBe(job.id);
    expect(answers.filter((answer) => answer.status === 204)).toHaveLength(2);
  });

  it("a wake-up between a runner's D1 check and its wait is not lost (generation counter)", async () => {
    const stub = dispatcher();
    const seen = await stub.generation();
    await stub.wake();
    // Would otherwise wait the full 20 s.
    expect(await stub.wait(seen, 20_000)).toBe(seen + 1);
  });
});
