/**
 * Runner identity and least privilege, written as a hostile runner's requests: a runner token reaches only what the
 * job it currently leases needs (that job's snapshot images, its backbone's files, its project's embeddings) and only
 * while it holds the lease; builtin backbone files cannot be replaced.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { NSFWJS_MOBILENET_V2 } from "../../shared/catalog";
import { sha256Hex } from "../../shared/ids";
import { builtinObjectPrefix } from "../../workers/services/object-keys";
import { buildTinyModel, tinySpec } from "../fixtures/tiny-model";
import { ADMIN_KEY, call, callJson, createTrainableDataset } from "./helpers";
import { loadNsfwjsFiles } from "./predict-fixtures";

async function newRunner(name = "gpu-box-1.internal.example") {
  const { status, body } = await callJson("POST", "/v1/runners", { key: ADMIN_KEY, json: { name } });
  expect(status).toBe(201);
  expect(body.token).toMatch(/^et_rnr_/);
  return body as { id: string; token: string };
}

/** A project with a trainable dataset, its own uploaded backbone, and a queued job on that backbone (the only one queued). */
async function tenantWithJob() {
  // Seeds of its own: its images' bytes (and hashes) are its alone.
  const tenant = await createTrainableDataset(5, 1000 + Math.floor(Math.random() * 1e6));
  const form = new FormData();
  form.set("spec", JSON.stringify(tinySpec()));
  const { buildZip } = await import("./helpers");
  form.set("model", new Blob([buildZip(buildTinyModel().files)]), "model.zip");
  const backbone = await callJson("POST", "/v1/backbones", { key: tenant.key, body: form });
  expect(backbone.status).toBe(201);
  await env.DB.prepare("update jobs set status = 'canceled' where status in ('queued', 'running')").run();
  const job = await callJson("POST", "/v1/jobs", { key: tenant.key, json: { dataset_id: tenant.datasetId, backbone: backbone.body.id } });
  expect(job.status, JSON.stringify(job.body)).toBe(201);
  const images = await env.DB.prepare("select sha256 from dataset_images where dataset_id = ?").bind(tenant.datasetId).all<{ sha256: string }>();
  return { ...tenant, backboneId: backbone.body.id as string, jobId: job.body.id as string, shas: images.results.map((r) => r.sha256) };
}

const lease = async (token: string) => callJson("POST", "/v1/runner/lease", { key: token, json: { wait_s: 0 } });

describe("runner tokens (POST/GET/DELETE /v1/runners)", () => {
  it("are created by an admin only, stored hashed, listed with last_seen_at and the job held, and revocable", async () => {
    const tenant = await createTrainableDataset(5);
    expect((await callJson("POST", "/v1/runners", { key: tenant.key, json: { name: "mine" } })).body.error.code).toBe("admin_key_required");
    expect((await callJson("GET", "/v1/runners", { key: tenant.key })).status).toBe(403);
    const runner = await newRunner();
    const stored = await env.DB.prepare("select token_hash from runners where id = ?").bind(runner.id).first<{ token_hash: string }>();
    expect(stored?.token_hash).toBe(await sha256Hex(runner.token));
    expect(JSON.stringify(await env.DB.prepare("select * from runners").all())).not.toContain(runner.token);

    await env.DB.prepare("update jobs set status = 'canceled' where status in ('queued', 'running')").run();
    const job = await callJson("POST", "/v1/jobs", { key: tenant.key, json: { dataset_id: tenant.datasetId } });
    expect((await lease(runner.token)).status).toBe(200);
    let listed: any;
    for (let i = 0; i < 50; i++) {
      listed = (await callJson("GET", "/v1/runners", { key: ADMIN_KEY })).body.runners.find((r: any) => r.id === runner.id);
      if (listed.last_seen_at) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(listed.last_seen_at).not.toBeNull();
    expect(listed.jobs.map((j: any) => j.id)).toEqual([job.body.id]);
    expect(listed.token).toBeUndefined();

    expect((await call("DELETE", `/v1/runners/${runner.id}`, { key: ADMIN_KEY })).status).toBe(204);
    const after = await lease(runner.token);
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe("invalid_runner_token");
    // The job it held goes back to the queue instead of waiting for the lease to run out.
    expect((await callJson("GET", `/v1/jobs/${job.body.id}`, { key: tenant.key })).body.status).toBe("queued");
  });

  it("a project API key or the admin key is not a runner token", async () => {
    const tenant = await createTrainableDataset(5);
    for (const key of [tenant.key, ADMIN_KEY]) expect((await lease(key)).body.error.code).toBe("invalid_runner_token");
  });
});

describe("a runner token reaches only its leased job's data", () => {
  it("without a lease, it downloads no image, backbone file or embedding of any project", async () => {
    const victim = await tenantWithJob();
    const thief = await newRunner("thief");
    const h = (token: string) => ({ key: thief.token, headers: { "x-lease-token": token } });
    const attempts = [
      call("GET", `/v1/runner/jobs/${victim.jobId}/images/${victim.shas[0]}`, h("guess")),
      call("POST", `/v1/runner/jobs/${victim.jobId}/images`, { ...h("guess"), json: { sha256: victim.shas } }),
      call("GET", `/v1/runner/jobs/${victim.jobId}/backbone/weights.bin`, h("guess")),
      call("POST", `/v1/runner/jobs/${victim.jobId}/embeddings/${"ab".repeat(16)}/lookup`, { ...h("guess"), json: { sha256: victim.shas } }),
      // The routes of the old single-token protocol are gone.
      call("GET", `/v1/runner/backbones/${victim.backboneId}/weights.bin`, { key: thief.token }),
      call("POST", `/v1/runner/embeddings/${"ab".repeat(16)}/lookup`, { key: thief.token, json: { sha256: victim.shas } }),
    ];
    for (const res of await Promise.all(attempts)) {
      expect([404, 409]).toContain(res.status);
      expect(res.headers.get("content-type")).toMatch(/json/);
    }
  });

  it("a lease token stolen from another runner is useless", async () => {
    const victim = await tenantWithJob();
    const honest = await newRunner("honest");
    const thief = await newRunner("thief");
    const leased = (await lease(honest.token)).body;
    expect(leased.job.id).toBe(victim.jobId);
    const stolen = { key: thief.token, headers: { "x-lease-token": leased.lease.token } };
    expect((await call("GET", `/v1/runner/jobs/${victim.jobId}/images/${victim.shas[0]}`, stolen)).status).toBe(409);
    expect((await call("GET", `/v1/runner/jobs/${victim.jobId}/backbone/model.json`, stolen)).status).toBe(409);
    expect((await callJson("POST", `/v1/runner/jobs/${victim.jobId}/fail`, { key: thief.token, json: { lease_token: leased.lease.token, error: "x", retryable: false } })).body.error.code).toBe("lease_lost");
    expect((await callJson("POST", `/v1/runner/jobs/${victim.jobId}/heartbeat`, { key: thief.token, json: { lease_token: leased.lease.token } })).body.error.code).toBe("lease_lost");
    // The honest runner is unaffected.
    expect((await call("GET", `/v1/runner/jobs/${victim.jobId}/backbone/model.json`, { key: honest.token, headers: { "x-lease-token": leased.lease.token } })).status).toBe(200);
  });

  it("with a lease on one project's job, it reaches no other project's images, backbone or embeddings", async () => {
    const victim = await tenantWithJob();
    // The victim's embeddings are cached under its project.
    const cacheKey = "ab".repeat(16);
    const record = new Uint8Array(32 + 4);
    record.set(Uint8Array.from(victim.shas[0]!.match(/../g)!.map((x) => parseInt(x, 16))));
    await env.BUCKET.put(`projects/${victim.projectId}/embeddings/${cacheKey}/${victim.shas[0]}`, record.slice(32));

    const attacker = await createTrainableDataset(5);
    await env.DB.prepare("update jobs set status = 'canceled' where status in ('queued', 'running') and id != ?").bind(victim.jobId).run();
    await env.DB.prepare("update jobs set status = 'canceled' where id = ?").bind(victim.jobId).run();
    const own = await callJson("POST", "/v1/jobs", { key: attacker.key, json: { dataset_id: attacker.datasetId } });
    const runner = await newRunner();
    const leased = (await lease(runner.token)).body;
    expect(leased.job.id).toBe(own.body.id);
    const mine = { key: runner.token, headers: { "x-lease-token": leased.lease.token } };

    // Another project's image, asked through the runner's own job.
    const single = await callJson("GET", `/v1/runner/jobs/${own.body.id}/images/${victim.shas[0]}`, mine);
    expect(single.status).toBe(404);
    const batch = await call("POST", `/v1/runner/jobs/${own.body.id}/images`, { ...mine, json: { sha256: victim.shas } });
    const bytes = new Uint8Array(await batch.arrayBuffer());
    // Every record answers "missing": a 32-byte hash and the length 0xFFFFFFFF, no image bytes.
    expect(bytes.length).toBe(victim.shas.length * 36);
    for (let i = 0; i < victim.shas.length; i++) expect([...bytes.subarray(i * 36 + 32, i * 36 + 36)]).toEqual([255, 255, 255, 255]);
    // Another project's embeddings: nothing found, whatever the cache key.
    const emb = await call("POST", `/v1/runner/jobs/${own.body.id}/embeddings/${cacheKey}/lookup`, { ...mine, json: { sha256: victim.shas } });
    expect((await emb.arrayBuffer()).byteLength).toBe(0);
    // Writing embeddings for another project's image (cache poisoning) is refused and writes nothing.
    const poison = await callJson("PUT", `/v1/runner/jobs/${own.body.id}/embeddings/${cacheKey}?dim=1`, { ...mine, body: record });
    expect(poison.status).toBe(403);
    expect(poison.body.error.code).toBe("not_leased");
    expect(await env.BUCKET.get(`projects/${attacker.projectId}/embeddings/${cacheKey}/${victim.shas[0]}`)).toBeNull();
    // Its job's backbone is the builtin one; the victim's backbone has no route at all.
    const bb = await call("GET", `/v1/runner/jobs/${own.body.id}/backbone/weights.bin`, mine);
    expect(bb.status === 200 || bb.status === 404).toBe(true);
    await bb.body?.cancel();
  });
});

describe("builtin backbone files", () => {
  // The NSFWJS MobileNetV2: its files come from the nsfwjs package, which this pool can import.
  const builtin = NSFWJS_MOBILENET_V2;

  it("no runner can replace them: only the pinned bytes are accepted, and only once", async () => {
    const runner = await newRunner();
    const prefix = builtinObjectPrefix(builtin.id);
    await env.BUCKET.delete([`${prefix}/model.json`, `${prefix}/weights.bin`]);
    const evil = new TextEncoder().encode(JSON.stringify({ modelTopology: {}, weightsManifest: [] }));
    const refused = await callJson("PUT", `/v1/runner/backbones/${builtin.id}/model.json`, { key: runner.token, body: evil });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("builtin_file_mismatch");
    expect(await env.BUCKET.head(`${prefix}/model.json`)).toBeNull();

    const { modelJson, weightData } = await loadNsfwjsFiles();
    const modelBytes = new TextEncoder().encode(JSON.stringify(modelJson));
    // The fixture builds the same pair the runner publishes; the catalog pins it.
    expect(await sha256Hex(modelBytes)).toBe(builtin.files!["model.json"].sha256);
    expect((await callJson("PUT", `/v1/runner/backbones/${builtin.id}/weights.bin`, { key: runner.token, body: new Uint8Array(weightData) })).body.stored).toBe(weightData.byteLength);
    expect((await callJson("PUT", `/v1/runner/backbones/${builtin.id}/model.json`, { key: runner.token, body: modelBytes })).status).toBe(200);
    // Once there, a second publish of the same bytes writes nothing, and a different file is still refused.
    expect((await callJson("PUT", `/v1/runner/backbones/${builtin.id}/model.json`, { key: runner.token, body: modelBytes })).body.stored).toBe(0);
    const tampered = new Uint8Array(weightData.byteLength);
    expect((await callJson("PUT", `/v1/runner/backbones/${builtin.id}/weights.bin`, { key: runner.token, body: tampered })).body.error.code).toBe("builtin_file_mismatch");
    const stored = new Uint8Array(await (await env.BUCKET.get(`${prefix}/weights.bin`))!.arrayBuffer());
    expect(await sha256Hex(stored)).toBe(builtin.files!["weights.bin"].sha256);
  });
});
