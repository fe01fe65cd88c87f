import { describe, expect, it } from "vitest";
import { makeHugePngHeader, makeJpeg, makePng, makeStoredPng, makeTruncatedJpeg, textFile } from "../fixtures/images";
import { buildZip, call, callJson, createDataset, createProject, drainIngests } from "./helpers";

async function putImage(key: string, id: string, path: string, bytes: Uint8Array, type = "image/png") {
  return callJson("PUT", `/v1/datasets/${id}/images/${path}`, { key, body: bytes, headers: { "content-type": type } });
}

describe("datasets CRUD", () => {
  it("creates an empty dataset with the API.md fields", async () => {
    const { key } = await createProject();
    const { status, body } = await callJson("POST", "/v1/datasets", { key, json: { name: "flowers" } });
    expect(status).toBe(201);
    expect(body).toMatchObject({ name: "flowers", status: "empty", version: 1, image_count: 0, bytes: 0, labels: [], rejected_count: 0, rejected: [], trainable: false, ingest: { done: 0, total: 0 } });
    expect(body.id).toMatch(/^ds_/);
    expect(body.not_trainable_reason).toContain("at least 2 labels");
  });

  it("rejects a dataset without a name with 400 naming the field", async () => {
    const { key } = await createProject();
    const { status, body } = await callJson("POST", "/v1/datasets", { key, json: {} });
    expect(status).toBe(400);
    expect(body.error.details.issues[0].path).toBe("name");
  });

  it("rejects unknown fields instead of ignoring them", async () => {
    const { key } = await createProject();
    const { status, body } = await callJson("POST", "/v1/datasets", { key, json: { name: "x", colour: "red" } });
    expect(status).toBe(400);
    expect(body.error.code).toBe("invalid_request");
  });

  it("lists, reads and deletes; a deleted dataset answers 404", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    expect((await callJson("GET", "/v1/datasets", { key })).body.datasets.map((d: any) => d.id)).toEqual([id]);
    expect((await callJson("GET", `/v1/datasets/${id}`, { key })).status).toBe(200);
    expect((await call("DELETE", `/v1/datasets/${id}`, { key })).status).toBe(204);
    expect((await callJson("GET", `/v1/datasets/${id}`, { key })).body.error.code).toBe("dataset_not_found");
  });
});

describe("single image upload", () => {
  it("stores a PNG and a JPEG with their sha256 and dimensions", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const png = await putImage(key, id, "cats/a.png", makePng(16, 12, 1));
    expect(png.status).toBe(201);
    expect(png.body).toMatchObject({ label: "cats", width: 16, height: 12, format: "png" });
    expect(png.body.sha256).toMatch(/^[0-9a-f]{64}$/);
    const jpeg = await putImage(key, id, "dogs/b.jpg", makeJpeg(), "image/jpeg");
    expect(jpeg.body).toMatchObject({ label: "dogs", width: 32, height: 24, format: "jpeg" });
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds).toMatchObject({ status: "ready", image_count: 2, labels: [{ name: "cats", count: 1, train: 1, val: 0 }, { name: "dogs", count: 1, train: 1, val: 0 }] });
    expect(ds.trainable).toBe(false);
    expect(ds.not_trainable_reason).toContain("at least 5 images");
  });

  it("becomes trainable with 2 labels of 5 images each", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    for (let i = 0; i < 10; i++) await putImage(key, id, `${i < 5 ? "a" : "b"}/${i}.png`, makePng(8, 8, i + 1));
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.trainable).toBe(true);
    expect(ds.not_trainable_reason).toBeNull();
  });

  it("answers 422 with the image's code for a text file, a truncated JPEG and a pixel bomb", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    expect((await putImage(key, id, "a/x.png", textFile())).body.error.code).toBe("not_an_image");
    const truncated = await putImage(key, id, "a/t.jpg", makeTruncatedJpeg(), "image/jpeg");
    expect(truncated.status).toBe(422);
    expect(truncated.body.error.code).toBe("truncated_image");
    const bomb = await putImage(key, id, "a/bomb.png", makeHugePngHeader());
    expect(bomb.status).toBe(422);
    expect(bomb.body.error.code).toBe("too_many_pixels");
    expect((await callJson("GET", `/v1/datasets/${id}`, { key })).body.image_count).toBe(0);
  });

  it("answers 400 for an invalid label and 413 for an image over the size limit", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const bad = await putImage(key, id, ".hidden/x.png", makePng());
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_label");
    const big = await call("PUT", `/v1/datasets/${id}/images/a/big.png`, { key, body: new Uint8Array(8), headers: { "content-length": String(60 * 1024 * 1024) } }).catch(() => null);
    // workerd may refuse a lying Content-Length itself; when it reaches us the answer must be 413.
    if (big) expect([413, 400]).toContain(big.status);
  });

  it("refuses the same bytes under a second path with 409 duplicate_image, and replaces a path idempotently", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const png = makePng(8, 8, 3);
    expect((await putImage(key, id, "a/one.png", png)).status).toBe(201);
    expect((await putImage(key, id, "a/one.png", png)).status).toBe(201);
    const dup = await putImage(key, id, "b/two.png", png);
    expect(dup.status).toBe(409);
    expect(dup.body.error.details.existing_path).toBe("a/one.png");
    expect((await putImage(key, id, "a/one.png", makePng(8, 8, 4))).status).toBe(201);
    expect((await callJson("GET", `/v1/datasets/${id}`, { key })).body.image_count).toBe(1);
  });

  it("answers 404 for another project's dataset", async () => {
    const a = await createProject();
    const b = await createProject();
    const id = await createDataset(a.key);
    expect((await putImage(b.key, id, "a/x.png", makePng())).status).toBe(404);
  });
});

describe("archive ingestion", () => {
  it("ingests a good ImageFolder zip to ready with per-label counts", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 6; i++) files[`roses/r${i}.png`] = makePng(10, 10, i + 1);
    for (let i = 0; i < 6; i++) files[`tulips/t${i}.png`] = makePng(10, 10, i + 100);
    const res = await callJson("POST", `/v1/datasets/${id}/archive`, { key, body: buildZip(files), headers: { "content-type": "application/zip" } });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe("ingesting");
    expect(res.body.trainable).toBe(false);
    await drainIngests(id);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds).toMatchObject({ status: "ready", image_count: 12, rejected_count: 0, trainable: true, ingest: { done: 12, total: 12 } });
    expect(ds.labels).toEqual([{ name: "roses", count: 6, train: 6, val: 0 }, { name: "tulips", count: 6, train: 6, val: 0 }]);
  });

  it("keeps the good images and lists each bad entry with its reason", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const zip = buildZip({
      "daisy/good1.png": makePng(8, 8, 1),
      "daisy/good2.jpg": makeJpeg("small"),
      "tulips/good3.jpg": makeJpeg("other"),
      "tulips/corrupt.jpg": makeTruncatedJpeg(),
      "../evil.jpg": makeJpeg("small"),
      "tulips/bomb.png": makeHugePngHeader(30000, 30000),
      "tulips/readme.txt": textFile(),
      "loose.png": makePng(8, 8, 9),
    });
    await call("POST", `/v1/datasets/${id}/archive`, { key, body: zip, headers: { "content-type": "application/zip" } });
    await drainIngests(id);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.status).toBe("ready");
    expect(ds.image_count).toBe(3);
    const reasons = Object.fromEntries(ds.rejected.map((r: any) => [r.path, r.code]));
    expect(reasons).toEqual({
      "tulips/corrupt.jpg": "truncated_image",
      "../evil.jpg": "unsafe_path",
      "tulips/bomb.png": "too_many_pixels",
      "tulips/readme.txt": "not_an_image",
      "loose.png": "missing_label",
    });
    expect(ds.rejected_count).toBe(5);
    for (const r of ds.rejected) expect(r.message.length).toBeGreaterThan(10);
  });

  it("refuses a zip bomb entry without inflating it", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const zip = buildZip({ "a/ok.png": makePng(8, 8, 1), "a/bomb.png": new Uint8Array(80 * 1024 * 1024) });
    expect(zip.length).toBeLessThan(200_000);
    await call("POST", `/v1/datasets/${id}/archive`, { key, body: zip, headers: { "content-type": "application/zip" } });
    await drainIngests(id);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.image_count).toBe(1);
    expect(ds.rejected.map((r: any) => [r.path, r.code])).toEqual([["a/bomb.png", "entry_too_large"]]);
  });

  it("refuses a high-ratio entry under the size cap as a zip bomb", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    await call("POST", `/v1/datasets/${id}/archive`, { key, body: buildZip({ "a/zeros.png": new Uint8Array(20 * 1024 * 1024) }), headers: { "content-type": "application/zip" } });
    await drainIngests(id);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.rejected[0].code).toBe("zip_bomb");
  });

  it("reads train/ and val/ folders as the dataset's own split and unwraps a single top folder", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const files: Record<string, Uint8Array> = {};
    let seed = 1;
    for (const split of ["train", "val"]) for (const label of ["a", "b"]) for (let i = 0; i < (split === "train" ? 4 : 2); i++) files[`export/${split}/${label}/${i}.png`] = makePng(8, 8, seed++);
    await call("POST", `/v1/datasets/${id}/archive`, { key, body: buildZip(files), headers: { "content-type": "application/zip" } });
    await drainIngests(id);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.labels).toEqual([{ name: "a", count: 6, train: 4, val: 2 }, { name: "b", count: 6, train: 4, val: 2 }]);
    expect(ds.rejected_count).toBe(0);
  });

  it("processes a large archive in several bounded chunks", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 300; i++) files[`${i % 2 ? "odd" : "even"}/${i}.png`] = makePng(4, 4, i + 1);
    await call("POST", `/v1/datasets/${id}/archive`, { key, body: buildZip(files), headers: { "content-type": "application/zip" } });
    const chunks = await drainIngests(id);
    expect(chunks).toBeGreaterThan(1);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.image_count).toBe(300);
    expect(ds.status).toBe("ready");
  });

  it("marks the dataset failed with a reason when the body is not a zip, keeping earlier images", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    await putImage(key, id, "a/keep.png", makePng());
    await call("POST", `/v1/datasets/${id}/archive`, { key, body: textFile(), headers: { "content-type": "application/zip" } });
    await drainIngests(id);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.status).toBe("failed");
    expect(ds.error).toContain("not a ZIP");
    expect(ds.image_count).toBe(1);
  });

  it("answers 415 for a non-zip content type and 404 for another project's dataset", async () => {
    const a = await createProject();
    const b = await createProject();
    const id = await createDataset(a.key);
    const wrongType = await callJson("POST", `/v1/datasets/${id}/archive`, { key: a.key, body: "x", headers: { "content-type": "text/plain" } });
    expect(wrongType.status).toBe(415);
    expect(wrongType.body.error.code).toBe("unsupported_media_type");
    const other = await callJson("POST", `/v1/datasets/${id}/archive`, { key: b.key, body: buildZip({}), headers: { "content-type": "application/zip" } });
    expect(other.status).toBe(404);
  });

  it("answers 413 for an archive over 100 MB", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const res = await callJson("POST", `/v1/datasets/${id}/archive`, { key, body: new Uint8Array(100_000_001), headers: { "content-type": "application/zip" } });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("payload_too_large");
  });
});

describe("multipart uploads", () => {
  it("assembles parts into an archive and ingests it", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 6; i++) files[`a/${i}.png`] = makePng(8, 8, i + 1);
    for (let i = 0; i < 5; i++) files[`b/${i}.png`] = makePng(8, 8, i + 50);
    // An uncompressed 1600x1400 PNG (6.7 MB) makes the archive span two 5 MiB parts, R2's minimum part size.
    files["b/large.png"] = makeStoredPng(1600, 1400);
    const archive = buildZip(files, 0);
    const up = await callJson("POST", `/v1/datasets/${id}/uploads`, { key, json: { filename: "big.zip", part_size: 5 * 1024 * 1024 } });
    expect(up.status).toBe(201);
    const partSize = up.body.part_size;
    const count = Math.ceil(archive.length / partSize);
    expect(count).toBeGreaterThan(1);
    for (let n = 1; n <= count; n++) {
      const part = archive.slice((n - 1) * partSize, n * partSize);
      const res = await callJson("PUT", `/v1/datasets/${id}/uploads/${up.body.upload_id}/parts/${n}`, { key, body: part, headers: { "content-type": "application/octet-stream" } });
      expect(res.status).toBe(200);
      expect(res.body.etag).toBeTruthy();
    }
    const done = await callJson("POST", `/v1/datasets/${id}/uploads/${up.body.upload_id}/complete`, { key });
    expect(done.status).toBe(202);
    expect(done.body.status).toBe("ingesting");
    await drainIngests(id);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.status).toBe("ready");
    expect(ds.image_count).toBe(12);
    const again = await callJson("POST", `/v1/datasets/${id}/uploads/${up.body.upload_id}/complete`, { key });
    expect(again.status).toBe(409);
  });

  it("refuses completing with a missing part and aborts cleanly", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const up = await callJson("POST", `/v1/datasets/${id}/uploads`, { key, json: { filename: "x.zip", part_size: 5 * 1024 * 1024 } });
    await call("PUT", `/v1/datasets/${id}/uploads/${up.body.upload_id}/parts/2`, { key, body: new Uint8Array(10) });
    const res = await callJson("POST", `/v1/datasets/${id}/uploads/${up.body.upload_id}/complete`, { key });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("missing_part");
    expect((await call("DELETE", `/v1/datasets/${id}/uploads/${up.body.upload_id}`, { key })).status).toBe(204);
    expect((await callJson("PUT", `/v1/datasets/${id}/uploads/${up.body.upload_id}/parts/1`, { key, body: new Uint8Array(10) })).body.error.code).toBe("upload_not_open");
  });

  it("validates part_size and refuses a part larger than it", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const bad = await callJson("POST", `/v1/datasets/${id}/uploads`, { key, json: { filename: "x.zip", part_size: 1000 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.issues[0].path).toBe("part_size");
    const up = await callJson("POST", `/v1/datasets/${id}/uploads`, { key, json: { filename: "x.zip", part_size: 5 * 1024 * 1024 } });
    const big = await callJson("PUT", `/v1/datasets/${id}/uploads/${up.body.upload_id}/parts/1`, { key, body: new Uint8Array(5 * 1024 * 1024 + 1) });
    expect(big.status).toBe(413);
  });

  it("answers 404 for an unknown upload id", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    expect((await callJson("POST", `/v1/datasets/${id}/uploads/up_nope/complete`, { key })).body.error.code).toBe("upload_not_found");
  });
});

describe("dataset versions", () => {
  it("freezes a version referenced by a job: later uploads go to a new version", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    await putImage(key, id, "a/1.png", makePng(8, 8, 1));
    const { env } = await import("cloudflare:test");
    await env.DB.prepare("update datasets set frozen_version = version where id = ?").bind(id).run();
    const res = await putImage(key, id, "a/1.png", makePng(8, 8, 2));
    expect(res.body.dataset_version).toBe(2);
    const rows = await env.DB.prepare("select added_version, removed_version from dataset_images where dataset_id = ? order by id").bind(id).all();
    expect(rows.results).toEqual([{ added_version: 1, removed_version: 2 }, { added_version: 2, removed_version: null }]);
  });
});

