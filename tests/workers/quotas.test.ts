/**
 * Quotas, fairness and job cost, written as one tenant trying to take more than its share: each attempt past a quota
 * answers 403 quota_exceeded with {quota, limit, used} and writes nothing; one tenant's queue never starves another's.
 */
import { env } from "cloudflare:test";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { getDb } from "../../workers/services/db";
import { MAX_EPOCH_IMAGES, checkJobCost, leaseJob } from "../../workers/services/jobs";
import { makePng } from "../fixtures/images";
import { buildTinyModel, tinySpec } from "../fixtures/tiny-model";
import { ADMIN_KEY, buildZip, call, callJson, createDataset, createProject, createTrainableDataset, drainIngests } from "./helpers";

const setQuotas = (projectId: string, quotas: Record<string, number | null>) => callJson("PUT", `/v1/projects/${projectId}/quotas`, { key: ADMIN_KEY, json: quotas });

function expectQuota(res: { status: number; body: any }, quota: string, limit: number, used: number) {
  expect(res.status).toBe(403);
  expect(res.body.error).toMatchObject({ code: "quota_exceeded", details: { quota, limit, used } });
}

describe("quotas", () => {
  it("only the operator sets them; a tenant reads its own", async () => {
    const { key, projectId } = await createProject();
    expect((await callJson("PUT", `/v1/projects/${projectId}/quotas`, { key, json: { datasets: 1000000 } })).body.error.code).toBe("admin_key_required");
    expect((await setQuotas(projectId, { datasets: 3 })).status).toBe(200);
    const mine = await callJson("GET", "/v1/quotas", { key });
    expect(mine.body.quotas.find((q: any) => q.quota === "datasets")).toEqual({ quota: "datasets", limit: 3, used: 0 });
    expect((await setQuotas("prj_nope", { datasets: 3 })).status).toBe(404);
  });

  it("datasets, images and bytes: the upload past the quota is refused and nothing is stored", async () => {
    const { key, projectId } = await createProject();
    await setQuotas(projectId, { datasets: 1, images: 2 });
    const id = await createDataset(key);
    expectQuota(await callJson("POST", "/v1/datasets", { key, json: { name: "second" } }), "datasets", 1, 1);
    for (let i = 0; i < 2; i++) expect((await call("PUT", `/v1/datasets/${id}/images/cat/${i}.png`, { key, body: makePng(8, 8, 500 + i), headers: { "content-type": "image/png" } })).status).toBe(201);
    expectQuota(await callJson("PUT", `/v1/datasets/${id}/images/cat/2.png`, { key, body: makePng(8, 8, 502), headers: { "content-type": "image/png" } }), "images", 2, 2);
    const zip = buildZip({ "dog/a.png": makePng(8, 8, 600) });
    expectQuota(await callJson("POST", `/v1/datasets/${id}/archive`, { key, body: zip, headers: { "content-type": "application/zip" } }), "images", 2, 2);
    expect((await callJson("GET", `/v1/datasets/${id}`, { key })).body.image_count).toBe(2);

    await setQuotas(projectId, { images: 100, bytes: 10 });
    const used = (await callJson("GET", "/v1/quotas", { key })).body.quotas.find((q: any) => q.quota === "bytes").used;
    expectQuota(await callJson("PUT", `/v1/datasets/${id}/images/cat/3.png`, { key, body: makePng(8, 8, 503), headers: { "content-type": "image/png" } }), "bytes", 10, used);
  });

  it("images and bytes are checked entry by entry while an archive is ingested, not only at its upload", async () => {
    // This test ingests with drainIngests, between uploads of its choosing: the archives' messages must not also reach
    // the pool's queue consumer, which would ingest the first archive before the second is uploaded whenever the
    // test runs slowly (a loaded full run), and the second upload would then meet the quota at its upload check.
    const send = vi.spyOn(env.INGEST_QUEUE, "send").mockResolvedValue(undefined as never);
    onTestFinished(() => send.mockRestore());
    const { key, projectId } = await createProject();
    await setQuotas(projectId, { images: 3 });
    const id = await createDataset(key);
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 5; i++) files[`cat/${i}.png`] = makePng(8, 8, 700 + i);
    // The upload passes (0 images used, the archive counts as one); its five images do not all fit.
    expect((await call("POST", `/v1/datasets/${id}/archive`, { key, body: buildZip(files), headers: { "content-type": "application/zip" } })).status).toBe(202);
    await drainIngests(id);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.image_count).toBe(3);
    expect(ds.rejected.map((r: any) => [r.path, r.code])).toEqual([["cat/3.png", "quota_exceeded"]]);
    expect(ds.rejected[0].message).toContain("images quota (3)");
    expect(ds.rejected[0].message).toContain("the 1 after it");
    expect((await callJson("GET", "/v1/quotas", { key })).body.quotas.find((q: any) => q.quota === "images")).toEqual({ quota: "images", limit: 3, used: 3 });

    // bytes: two archives uploaded back to back each pass the upload check (nothing is used yet); ingesting both
    // would pass the quota, so the second stops at the entry that does not fit.
    const other = await createProject();
    const first = buildZip(files, 0);
    const secondFiles: Record<string, Uint8Array> = {};
    for (let i = 0; i < 5; i++) secondFiles[`dog/${i}.png`] = makePng(8, 8, 800 + i);
    const archives = [first, buildZip(secondFiles, 0)];
    const limit = Math.max(...archives.map((a) => a.length));
    await setQuotas(other.projectId, { bytes: limit });
    const second = await createDataset(other.key);
    for (const zip of archives) {
      expect((await call("POST", `/v1/datasets/${second}/archive`, { key: other.key, body: zip, headers: { "content-type": "application/zip" } })).status).toBe(202);
    }
    await drainIngests(second);
    const ds2 = (await callJson("GET", `/v1/datasets/${second}`, { key: other.key })).body;
    expect(ds2.image_count).toBeLessThan(10);
    expect(ds2.rejected.map((r: any) => r.code)).toEqual(["quota_exceeded"]);
    expect(ds2.rejected[0].message).toContain(`bytes quota (${limit})`);
    const bytes = (await callJson("GET", "/v1/quotas", { key: other.key })).body.quotas.find((q: any) => q.quota === "bytes");
    expect(bytes.used).toBeLessThanOrEqual(limit);
  });

  it("backbones and queued jobs", async () => {
    const { key, projectId, datasetId } = await createTrainableDataset();
    await setQuotas(projectId, { backbones: 0, queued_jobs: 1 });
    const form = new FormData();
    form.set("spec", JSON.stringify(tinySpec()));
    form.set("model", new Blob([buildZip(buildTinyModel().files)]), "model.zip");
    expectQuota(await callJson("POST", "/v1/backbones", { key, body: form }), "backbones", 0, 0);
    expect((await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).status).toBe(201);
    expectQuota(await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } }), "queued_jobs", 1, 1);
  });
});

describe("fair leasing", () => {
  it("one tenant's queued jobs do not starve another's one, and running_jobs caps a tenant", async () => {
    await env.DB.prepare("update jobs set status = 'canceled' where status in ('queued', 'running')").run();
    const greedy = await createTrainableDataset();
    const modest = await createTrainableDataset();
    await setQuotas(greedy.projectId, { running_jobs: 2 });
    const greedyJobs: string[] = [];
    for (let i = 0; i < 4; i++) greedyJobs.push((await callJson("POST", "/v1/jobs", { key: greedy.key, json: { dataset_id: greedy.datasetId } })).body.id);
    const modestJob = (await callJson("POST", "/v1/jobs", { key: modest.key, json: { dataset_id: modest.datasetId } })).body.id;
    const db = getDb(env.DB);
    const order: string[] = [];
    for (let i = 0; i < 5; i++) {
      const lease = await leaseJob(db, `runner-${i}`);
      if (lease) order.push(lease.job.id);
    }
    // Greedy's oldest first (both have none running), then modest's (it has none running, greedy one), then greedy's
    // second; greedy's third and fourth wait: two of its jobs run and its running_jobs quota is 2.
    expect(order).toEqual([greedyJobs[0], modestJob, greedyJobs[1]]);
  });
});

describe("job cost", () => {
  it("refuses epochs x images past the cap with 422 naming the limit", () => {
    expect(() => checkJobCost(100_000, 1000)).toThrow(expect.objectContaining({ code: "job_too_costly", details: expect.objectContaining({ limit: MAX_EPOCH_IMAGES, requested: 100_000_000 }) }));
    expect(() => checkJobCost(10_000, 100)).not.toThrow();
  });
});
