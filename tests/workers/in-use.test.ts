/**
 * Nothing in use disappears silently: deleting a resource others use answers 409 `in_use` naming them unless
 * ?force=true; an alias only points at a model that can serve images; a finished job's progress reads its totals.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { getDb } from "../../workers/services/db";
import { completeJob, heartbeat, leaseJob } from "../../workers/services/jobs";
import { SEEDED_BACKBONE_SPEC, callJson, createProject, createTrainableDataset } from "./helpers";

async function seedBackbone(projectId: string, id: string) {
  await env.DB.prepare("insert into backbones (id, project_id, name, spec, object_prefix, format, param_count, weight_bytes) values (?, ?, 'mine', ?, ?, 'layers-model', 1, 1)")
    .bind(id, projectId, SEEDED_BACKBONE_SPEC, `projects/${projectId}/backbones/${id}`)
    .run();
}

async function seedModel(projectId: string, id: string, backbone: string) {
  await env.DB.prepare(
    "insert into models (id, project_id, job_id, dataset_id, dataset_version, backbone, labels, metrics, object_prefix, head_bytes) values (?, ?, ?, 'ds_x', 1, ?, '[\"a\",\"b\"]', '{\"accuracy\":1,\"per_class\":[],\"confusion_matrix\":[]}', ?, 1)",
  )
    .bind(id, projectId, `job_${id}`, backbone, `projects/${projectId}/models/${id}`)
    .run();
}

describe("in_use", () => {
  it("a backbone models were trained on answers 409 in_use naming them, and goes with ?force=true", async () => {
    const { key, projectId } = await createProject();
    const bb = `bb_inuse_${projectId}`;
    await seedBackbone(projectId, bb);
    await seedModel(projectId, `mdl_a_${projectId}`, bb);
    const refused = await callJson("DELETE", `/v1/backbones/${bb}`, { key });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("in_use");
    expect(refused.body.error.details.dependents.models).toEqual([`mdl_a_${projectId}`]);
    expect(refused.body.error.message).toContain("force=true");
    expect((await callJson("GET", `/v1/backbones/${bb}`, { key })).status).toBe(200);
    expect((await callJson("DELETE", `/v1/backbones/${bb}?force=true`, { key })).status).toBe(204);
    expect((await callJson("GET", `/v1/backbones/${bb}`, { key })).status).toBe(404);
  });

  it("a model aliases point at answers 409 in_use naming them; ?force=true deletes it and them", async () => {
    const { key, projectId } = await createProject();
    const model = `mdl_b_${projectId}`;
    await seedModel(projectId, model, "bb_builtin_mobilenet_v2");
    expect((await callJson("PUT", "/v1/aliases/prod", { key, json: { model_id: model } })).status).toBe(201);
    const refused = await callJson("DELETE", `/v1/models/${model}`, { key });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: "in_use", details: { dependents: { aliases: ["prod"] } } });
    expect((await callJson("GET", "/v1/aliases/prod", { key })).status).toBe(200);
    expect((await callJson("DELETE", `/v1/models/${model}?force=true`, { key })).status).toBe(204);
    expect((await callJson("GET", "/v1/aliases/prod", { key })).status).toBe(404);
  });

  it("an alias cannot point at a model whose backbone is gone", async () => {
    const { key, projectId } = await createProject();
    const model = `mdl_c_${projectId}`;
    await seedModel(projectId, model, `bb_gone_${projectId}`);
    const res = await callJson("PUT", "/v1/aliases/prod", { key, json: { model_id: model } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("backbone_deleted");
    expect((await callJson("GET", "/v1/aliases/prod", { key })).status).toBe(404);
  });

  it("a finished job's progress reads its totals", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(job.id).run();
    const db = getDb(env.DB);
    const lease = await leaseJob(db, "runner-a");
    await heartbeat(db, job.id, lease!.leaseToken, { phase: "embedding", done: 224, total: 400 });
    await completeJob(db, job.id, lease!.leaseToken, { labels: ["cat", "dog"], metrics: { accuracy: 1 }, headBytes: 10, objectPrefix: "x", epochs: [], skipped: [] });
    const read = (await callJson("GET", `/v1/jobs/${job.id}`, { key })).body;
    expect(read.status).toBe("succeeded");
    expect(read.progress).toEqual({ phase: "done", done: 400, total: 400 });
  });
});
