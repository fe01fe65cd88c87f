/**
 * A model's full metrics fit no D1 row once it has many labels (the confusion matrix grows with labels squared and
 * D1 refuses rows over 2 MB): they are stored in R2 with a summary on the row, and GET /v1/models/:id still answers
 * them whole. Before, `complete` of a 1,000-label model failed in production (locally D1 has no row limit).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { METRICS_INLINE_MAX_BYTES } from "../../workers/services/models";
import { RUNNER_TOKEN, call, callJson, createTrainableDataset, runnerCall } from "./helpers";

const D1_ROW_MAX_BYTES = 2 * 1024 * 1024;

async function leasedJob() {
  const { key, projectId, datasetId } = await createTrainableDataset();
  const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
  await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(job.id).run();
  const lease = await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: "metrics-runner", wait_s: 0 } });
  expect(lease.body.job.id).toBe(job.id);
  const token = lease.body.lease.token as string;
  for (const name of ["head.json", "head.bin"]) {
    const res = await call("PUT", `/v1/runner/jobs/${job.id}/artifacts/${name}`, { key: RUNNER_TOKEN, body: new TextEncoder().encode(name), headers: { "x-lease-token": token } });
    expect(res.status).toBe(200);
  }
  return { key, projectId, job, token };
}

function metricsFor(labelCount: number) {
  const labels = Array.from({ length: labelCount }, (_, i) => `label_${i}`);
  const confusion = labels.map((_, i) => labels.map((_, j) => (i === j ? 7 : (i * 31 + j) % 3)));
  return {
    labels,
    metrics: {
      accuracy: 0.5,
      per_class: labels.map((label) => ({ label, precision: 0.5, recall: 0.5, f1: 0.5, support: 9 })),
      confusion_matrix: confusion,
      ece: 0.1,
      misclassified: labels.slice(0, 1000).map((label, i) => ({ sha256: "a".repeat(64), path: `${label}/${i}.jpg`, label, predicted: labels[(i + 1) % labelCount], probability: 0.9 })),
      misclassified_count: 1000,
    },
  };
}

describe("model metrics", () => {
  it("a 1,000-label report is kept whole in R2 with a summary row under D1's 2 MB; GET answers it whole", async () => {
    const { key, projectId, job, token } = await leasedJob();
    const { labels, metrics } = metricsFor(1000);
    const body = JSON.stringify({ lease_token: token, labels, metrics, epochs: [], head_bytes: 4 });
    expect(body.length).toBeGreaterThan(D1_ROW_MAX_BYTES); // the case that failed: one row could not hold it
    const complete = await call("POST", `/v1/runner/jobs/${job.id}/complete`, { key: RUNNER_TOKEN, body, headers: { "content-type": "application/json" } });
    expect(complete.status).toBe(200);
    const { model_id } = await complete.json<{ model_id: string }>();
    const row = await env.DB.prepare("select length(metrics) as metrics_bytes, length(labels) as label_bytes from models where id = ?").bind(model_id).first<{ metrics_bytes: number; label_bytes: number }>();
    expect(row!.metrics_bytes + row!.label_bytes).toBeLessThan(METRICS_INLINE_MAX_BYTES);
    const model = (await callJson("GET", `/v1/models/${model_id}`, { key })).body;
    expect(model.metrics).toEqual(metrics);
    const listed = (await callJson("GET", "/v1/models", { key })).body.models.find((m: { id: string }) => m.id === model_id);
    expect(listed.metrics).toMatchObject({ accuracy: 0.5, ece: 0.1, misclassified_count: 1000, summary_only: true, confusion_matrix: [] });
    // Deleting the model removes its metrics object with the rest of its files.
    expect((await call("DELETE", `/v1/models/${model_id}`, { key })).status).toBe(204);
    expect((await env.BUCKET.list({ prefix: `projects/${projectId}/models/${model_id}/` })).objects).toEqual([]);
  });

  it("a small report stays whole on the row, with nothing extra in R2", async () => {
    const { key, projectId, job, token } = await leasedJob();
    const { labels, metrics } = metricsFor(5);
    const complete = await runnerCall("POST", `/v1/runner/jobs/${job.id}/complete`, { json: { lease_token: token, labels, metrics, epochs: [], head_bytes: 4 } });
    expect(complete.status).toBe(200);
    const model = (await callJson("GET", `/v1/models/${complete.body.model_id}`, { key })).body;
    expect(model.metrics).toEqual(metrics);
    const listed = (await callJson("GET", "/v1/models", { key })).body.models.find((m: { id: string }) => m.id === complete.body.model_id);
    expect(listed.metrics).toEqual(metrics);
    const files = await env.BUCKET.list({ prefix: `projects/${projectId}/models/${complete.body.model_id}/` });
    expect(files.objects.map((o) => o.key.split("/").pop()).sort()).toEqual(["head.bin", "head.json"]);
  });
});
