/**
 * POST/GET /v1/datasets/:id/diagnostics: starting a diagnostics job for the current version, the runner storing its
 * report under the lease, reading it back for that version only (a new version has none), and the error cases.
 *
 * Isolation: each test builds its own project and dataset; queued jobs of other tests are canceled so that a lease
 * picks this test's job (storage is shared per file).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { call, callJson, createProject, createDataset, createTrainableDataset, runnerCall } from "./helpers";

async function onlyThisJob(jobId: string) {
  await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(jobId).run();
}

const image = (path: string, label: string, split = "train") => ({ sha256: "a".repeat(64), path, label, split });
const report = {
  near_duplicates: [{ a: image("train/cat/0.png", "cat"), b: image("val/cat/1.png", "cat", "val"), similarity: 0.99, leak: true }],
  suspected_mislabels: [{ ...image("train/dog/2.png", "dog"), suggested_label: "cat", score: 0.8 }],
  outliers: [],
};

describe("dataset diagnostics", () => {
  it("starts a diagnostics job, stores the runner's report for that version, and serves it", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const before = await callJson("GET", `/v1/datasets/${datasetId}/diagnostics`, { key });
    expect(before.status).toBe(404);
    expect(before.body.error.code).toBe("diagnostics_not_found");

    const started = await callJson("POST", `/v1/datasets/${datasetId}/diagnostics`, { key, json: {} });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ job_id: expect.stringMatching(/^job_/), dataset_version: 1 });
    const job = (await callJson("GET", `/v1/jobs/${started.body.job_id}`, { key })).body;
    expect(job.config.kind).toBe("diagnostics");

    await onlyThisJob(started.body.job_id);
    const lease = await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: "r1", wait_s: 0 } });
    expect(lease.body.job.config.kind).toBe("diagnostics");
    const token = lease.body.lease.token;
    // A report without the lease changes nothing.
    expect((await runnerCall("POST", `/v1/runner/jobs/${job.id}/diagnostics`, { json: { lease_token: "wrong", report } })).body.error.code).toBe("lease_lost");
    const stored = await runnerCall("POST", `/v1/runner/jobs/${job.id}/diagnostics`, { json: { lease_token: token, report } });
    expect(stored.status).toBe(200);

    const done = (await callJson("GET", `/v1/jobs/${job.id}`, { key })).body;
    expect(done).toMatchObject({ status: "succeeded", model_id: null });
    const read = await callJson("GET", `/v1/datasets/${datasetId}/diagnostics`, { key });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ dataset_id: datasetId, dataset_version: 1, backbone: "bb_builtin_mobilenet_v1_075", job_id: job.id, ...report });
    expect(typeof read.body.created_at).toBe("string");

    // A new version (one more image) has no report until diagnostics run again.
    const { makePng } = await import("../fixtures/images");
    expect((await call("PUT", `/v1/datasets/${datasetId}/images/cat/new.png`, { key, body: makePng(8, 8, 999), headers: { "content-type": "image/png" } })).status).toBe(201);
    expect((await callJson("GET", `/v1/datasets/${datasetId}/diagnostics`, { key })).status).toBe(404);
  });

  it("answers 409 for a dataset that is not ready, 404 for another project's, 400 for unknown fields", async () => {
    const { key } = await createProject();
    const empty = await createDataset(key, "empty");
    expect((await callJson("POST", `/v1/datasets/${empty}/diagnostics`, { key, json: {} })).body.error.code).toBe("dataset_not_trainable");
    const other = await createTrainableDataset();
    expect((await callJson("POST", `/v1/datasets/${other.datasetId}/diagnostics`, { key, json: {} })).status).toBe(404);
    expect((await callJson("GET", `/v1/datasets/${other.datasetId}/diagnostics`, { key })).status).toBe(404);
    expect((await callJson("POST", `/v1/datasets/${other.datasetId}/diagnostics`, { key: other.key, json: { nonsense: 1 } })).status).toBe(400);
    expect((await callJson("POST", `/v1/datasets/${other.datasetId}/diagnostics`, { key: other.key, json: { backbone: "nope" } })).body.error.code).toBe("backbone_not_found");
    // No body at all: the default backbone.
    expect((await callJson("POST", `/v1/datasets/${other.datasetId}/diagnostics`, { key: other.key })).status).toBe(202);
  });
});
