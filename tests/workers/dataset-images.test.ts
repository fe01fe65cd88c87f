import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { makeJpeg, makePng } from "../fixtures/images";
import { buildZip, call, callJson, createDataset, createProject, createTrainableDataset, drainIngests, runnerCall } from "./helpers";

const png = (seed: number) => makePng(8, 8, seed);

async function listAll(key: string, datasetId: string, query = "") {
  return callJson("GET", `/v1/datasets/${datasetId}/images${query}`, { key });
}

/** The paths of snapshot `version` as a runner would read them (the rows a job of that version trains on). */
async function snapshotPaths(datasetId: string, version: number): Promise<string[]> {
  const rows = await env.DB.prepare(
    "select split, label, filename from dataset_images where dataset_id = ? and added_version <= ? and (removed_version is null or removed_version > ?) order by label, filename",
  )
    .bind(datasetId, version, version)
    .all<{ split: string; label: string; filename: string }>();
  return rows.results.map((r) => `${r.split === "auto" ? "" : `${r.split}/`}${r.label}/${r.filename}`);
}

describe("GET /v1/datasets/:id/images", () => {
  it("lists the images with sha256, path, label, split, size; filters by label and split", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const zip = buildZip({ "train/roses/a.png": png(1), "train/tulips/b.png": png(2), "val/roses/c.png": png(3) });
    expect((await call("POST", `/v1/datasets/${id}/archive`, { key, body: zip, headers: { "content-type": "application/zip" } })).status).toBe(202);
    await drainIngests(id);
    const all = await listAll(key, id);
    expect(all.status).toBe(200);
    expect(all.body.next_cursor).toBeNull();
    expect(all.body.images.map((i: any) => i.path).sort()).toEqual(["train/roses/a.png", "train/tulips/b.png", "val/roses/c.png"]);
    const a = all.body.images.find((i: any) => i.path === "train/roses/a.png");
    expect(a).toMatchObject({ label: "roses", split: "train", width: 8, height: 8, format: "png" });
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(a.bytes).toBe(png(1).length);
    expect((await listAll(key, id, "?label=roses")).body.images.map((i: any) => i.path).sort()).toEqual(["train/roses/a.png", "val/roses/c.png"]);
    expect((await listAll(key, id, "?label=roses&split=val")).body.images.map((i: any) => i.path)).toEqual(["val/roses/c.png"]);
    expect((await listAll(key, id, "?label=lilies")).body.images).toEqual([]);
  });

  it("pages with limit and next_cursor, visiting every image exactly once", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    for (let i = 0; i < 7; i++) await call("PUT", `/v1/datasets/${id}/images/cat/${i}.png`, { key, body: png(10 + i), headers: { "content-type": "image/png" } });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: any = await listAll(key, id, `?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      expect(page.status).toBe(200);
      expect(page.body.images.length).toBeLessThanOrEqual(3);
      seen.push(...page.body.images.map((i: any) => i.path));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([6, 5, 4, 3, 2, 1, 0].map((i) => `cat/${i}.png`));
  });

  it("answers 400 for a bad limit, split, label or cursor", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    for (const query of ["?limit=0", "?limit=101", "?split=test", "?label=.hidden", "?cursor=bm9wZQ"]) {
      const res = await listAll(key, id, query);
      expect(res.status, query).toBe(400);
      expect(["invalid_request", "invalid_cursor"], query).toContain(res.body.error.code);
    }
  });

  it("answers 404 for an unknown dataset and for another project's dataset", async () => {
    const a = await createProject("a");
    const b = await createProject("b");
    const id = await createDataset(a.key);
    expect((await listAll(a.key, "ds_nope")).body.error.code).toBe("dataset_not_found");
    const other = await listAll(b.key, id);
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe("dataset_not_found");
  });
});

describe("GET /v1/datasets/:id/images/:sha256", () => {
  it("answers the bytes with their content type", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const jpeg = makeJpeg();
    const put = await callJson("PUT", `/v1/datasets/${id}/images/cat/a.jpg`, { key, body: jpeg, headers: { "content-type": "image/jpeg" } });
    const res = await call("GET", `/v1/datasets/${id}/images/${put.body.sha256}`, { key });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/jpeg");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(jpeg);
  });

  it("answers 400 for a malformed sha256, 404 for an unknown one and for another project's dataset", async () => {
    const a = await createProject("a");
    const b = await createProject("b");
    const id = await createDataset(a.key);
    const put = await callJson("PUT", `/v1/datasets/${id}/images/cat/a.png`, { key: a.key, body: png(1), headers: { "content-type": "image/png" } });
    expect((await callJson("GET", `/v1/datasets/${id}/images/xyz`, { key: a.key })).status).toBe(400);
    const unknown = await callJson("GET", `/v1/datasets/${id}/images/${"0".repeat(64)}`, { key: a.key });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("image_not_found");
    // b's key cannot read a's bytes, not even through a dataset of its own that lacks the image.
    expect((await callJson("GET", `/v1/datasets/${id}/images/${put.body.sha256}`, { key: b.key })).status).toBe(404);
    const bId = await createDataset(b.key);
    expect((await callJson("GET", `/v1/datasets/${bId}/images/${put.body.sha256}`, { key: b.key })).status).toBe(404);
  });
});

describe("DELETE and PATCH /v1/datasets/:id/images/:sha256", () => {
  it("deleting makes a new version without the image; the version a job used keeps it", async () => {
    const { key, datasetId } = await createTrainableDataset(6);
    const job = await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } });
    expect(job.body.dataset_version).toBe(1);
    const victim = (await listAll(key, datasetId, "?label=cat")).body.images[0];
    const del = await callJson("DELETE", `/v1/datasets/${datasetId}/images/${victim.sha256}`, { key });
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ dataset_version: 2, image: { sha256: victim.sha256, path: victim.path } });
    const ds = (await callJson("GET", `/v1/datasets/${datasetId}`, { key })).body;
    expect(ds).toMatchObject({ version: 2, image_count: 11, labels: [{ name: "cat", count: 5 }, { name: "dog", count: 6 }] });
    expect((await listAll(key, datasetId)).body.images.map((i: any) => i.sha256)).not.toContain(victim.sha256);
    expect(await snapshotPaths(datasetId, 1)).toContain(victim.path);
    expect(await snapshotPaths(datasetId, 2)).not.toContain(victim.path);
    // The bytes stay readable (older versions and their models still show them).
    expect((await call("GET", `/v1/datasets/${datasetId}/images/${victim.sha256}`, { key })).status).toBe(200);
    // Deleting it again: it is not in the current version any more.
    const again = await callJson("DELETE", `/v1/datasets/${datasetId}/images/${victim.sha256}`, { key });
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe("image_not_found");
  });

  it("the job's leased snapshot is the one it was created with, after edits", async () => {
    const { key, datasetId } = await createTrainableDataset(5);
    await env.DB.prepare("update jobs set status = 'canceled' where status in ('queued', 'running')").run();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    const [first, second] = (await listAll(key, datasetId, "?label=cat")).body.images;
    await callJson("DELETE", `/v1/datasets/${datasetId}/images/${first.sha256}`, { key });
    await callJson("PATCH", `/v1/datasets/${datasetId}/images/${second.sha256}`, { key, json: { label: "dog" } });
    const lease = await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: "r1", wait_s: 0 } });
    expect(lease.body.job.id).toBe(job.id);
    const leased = lease.body.images.map((i: any) => i.path);
    expect(leased).toHaveLength(10);
    expect(leased).toContain(first.path);
    expect(leased).toContain(second.path);
  });

  it("moving changes label and split in a new version; a no-op change makes none", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const put = await callJson("PUT", `/v1/datasets/${id}/images/cat/a.png`, { key, body: png(5), headers: { "content-type": "image/png" } });
    const moved = await callJson("PATCH", `/v1/datasets/${id}/images/${put.body.sha256}`, { key, json: { label: "dog", split: "val" } });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ dataset_version: 2, image: { sha256: put.body.sha256, label: "dog", split: "val", path: "val/dog/a.png" } });
    expect((await callJson("GET", `/v1/datasets/${id}`, { key })).body).toMatchObject({ version: 2, image_count: 1, labels: [{ name: "dog", count: 1, train: 0, val: 1 }] });
    expect(await snapshotPaths(id, 1)).toEqual(["cat/a.png"]);
    expect(await snapshotPaths(id, 2)).toEqual(["val/dog/a.png"]);
    const same = await callJson("PATCH", `/v1/datasets/${id}/images/${put.body.sha256}`, { key, json: { label: "dog" } });
    expect(same.body.dataset_version).toBe(2);
  });

  it("answers 409 path_taken when another image has the target path, and changes nothing", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const a = await callJson("PUT", `/v1/datasets/${id}/images/cat/x.png`, { key, body: png(1), headers: { "content-type": "image/png" } });
    await callJson("PUT", `/v1/datasets/${id}/images/dog/x.png`, { key, body: png(2), headers: { "content-type": "image/png" } });
    const res = await callJson("PATCH", `/v1/datasets/${id}/images/${a.body.sha256}`, { key, json: { label: "dog" } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("path_taken");
    expect((await callJson("GET", `/v1/datasets/${id}`, { key })).body).toMatchObject({ version: 1, image_count: 2 });
    // With a new file name the move goes through.
    const renamed = await callJson("PATCH", `/v1/datasets/${id}/images/${a.body.sha256}`, { key, json: { label: "dog", filename: "x-2.png" } });
    expect(renamed.status).toBe(200);
    expect(renamed.body.image).toMatchObject({ label: "dog", path: "dog/x-2.png" });
    expect((await callJson("GET", `/v1/datasets/${id}`, { key })).body).toMatchObject({ version: 2, image_count: 2, labels: [{ name: "dog", count: 2 }] });
  });

  it("answers 400 for an empty, unknown or invalid change", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const a = await callJson("PUT", `/v1/datasets/${id}/images/cat/x.png`, { key, body: png(1), headers: { "content-type": "image/png" } });
    for (const json of [{}, { colour: "red" }, { label: "../etc" }, { split: "test" }, { filename: "../x.png" }]) {
      const res = await callJson("PATCH", `/v1/datasets/${id}/images/${a.body.sha256}`, { key, json });
      expect(res.status, JSON.stringify(json)).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
  });

  it("answers 404 for another project's image, leaving it alone", async () => {
    const a = await createProject("a");
    const b = await createProject("b");
    const id = await createDataset(a.key);
    const put = await callJson("PUT", `/v1/datasets/${id}/images/cat/x.png`, { key: a.key, body: png(1), headers: { "content-type": "image/png" } });
    expect((await callJson("DELETE", `/v1/datasets/${id}/images/${put.body.sha256}`, { key: b.key })).status).toBe(404);
    expect((await callJson("PATCH", `/v1/datasets/${id}/images/${put.body.sha256}`, { key: b.key, json: { label: "dog" } })).status).toBe(404);
    expect((await callJson("GET", `/v1/datasets/${id}`, { key: a.key })).body).toMatchObject({ version: 1, image_count: 1, labels: [{ name: "cat" }] });
  });
});
