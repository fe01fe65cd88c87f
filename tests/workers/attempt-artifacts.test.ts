/**
 * A runner whose lease lapsed never overwrites the next attempt's artifacts: each attempt writes under its own prefix
 * and the model row names the winning attempt's. Before, every attempt wrote models/{id}/{name}, so an upload that
 * passed the lease check and finished after the lease moved on replaced the new attempt's head.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { modelIdForJob } from "../../workers/services/jobs";
import { storeModelArtifact } from "../../workers/services/models";
import { modelAttemptPrefix } from "../../workers/services/object-keys";
import { runScheduledSweeps } from "../../workers/services/sweeps";
import { RUNNER_TOKEN, call, callJson, createTrainableDataset, runnerCall } from "./helpers";

async function leaseOnly(jobId: string, runner: string) {
  await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(jobId).run();
  await env.DB.prepare("update jobs set run_after = '2000-01-01T00:00:00.000Z' where id = ?").bind(jobId).run();
  const lease = await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: runner, wait_s: 0 } });
  expect(lease.body.job.id).toBe(jobId);
  return lease.body.lease.token as string;
}

const putArtifact = (jobId: string, token: string, name: string, text: string) =>
  call("PUT", `/v1/runner/jobs/${jobId}/artifacts/${name}`, { key: RUNNER_TOKEN, body: new TextEncoder().encode(text), headers: { "x-lease-token": token } });

describe("artifacts per attempt", () => {
  it("a late upload of a lapsed attempt does not replace what the next attempt registered", async () => {
    const { key, projectId, datasetId } = await createTrainableDataset();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    const first = await leaseOnly(job.id, "slow-runner");
    expect((await putArtifact(job.id, first, "head.json", "attempt 1")).status).toBe(200);
    // The first runner stalls; its lease lapses and the sweep requeues the job.
    await env.DB.prepare("update jobs set lease_expires_at = '2000-01-01T00:00:00.000Z' where id = ?").bind(job.id).run();
    await runScheduledSweeps(env as any);
    const second = await leaseOnly(job.id, "fast-runner");
    for (const name of ["head.json", "head.bin"]) expect((await putArtifact(job.id, second, name, `attempt 2 ${name}`)).status).toBe(200);
    const complete = await runnerCall("POST", `/v1/runner/jobs/${job.id}/complete`, { json: { lease_token: second, labels: ["cat", "dog"], metrics: { accuracy: 1, per_class: [], confusion_matrix: [] }, epochs: [], head_bytes: 4 } });
    expect(complete.status).toBe(200);
    // The slow runner's upload passed its lease check before the lapse and finishes only now: it lands in its own
    // attempt's folder, as the artifact route computes it from the job row it checked.
    await storeModelArtifact(env.BUCKET, modelAttemptPrefix(projectId, modelIdForJob(job.id), 1), "head.json", new TextEncoder().encode("attempt 1, late"));
    const served = await call("GET", `/v1/models/${complete.body.model_id}/files/head.json`, { key });
    expect(served.status).toBe(200);
    expect(await served.text()).toBe("attempt 2 head.json");
    // A late report with the old token changes nothing.
    expect((await putArtifact(job.id, first, "head.json", "attempt 1 again")).status).toBe(409);
    // Deleting the model removes every attempt's files.
    expect((await call("DELETE", `/v1/models/${complete.body.model_id}`, { key })).status).toBe(204);
    const left = await env.BUCKET.list({ prefix: `projects/${projectId}/models/` });
    expect(left.objects.map((o) => o.key)).toEqual([]);
  });
});
