import assert from "node:assert/strict";
import { afterAll, beforeAll, test } from "vitest";
import { zipSync } from "fflate";
import { makePng, makeStoredPng } from "../fixtures/images";
import { api, startTestPlatform, waitFor, type Platform } from "./platform";

let platform: Platform;
beforeAll(async () => {
  platform = await startTestPlatform();
});
afterAll(async () => {
  await platform?.stop();
});

test("the local platform answers on 127.0.0.1 and serves its OpenAPI document", async () => {
  assert.ok(platform.url.startsWith("http://127.0.0.1:"));
  const doc = await api(platform, "GET", "/openapi.json");
  assert.equal(doc.status, 200);
  assert.equal(doc.body.openapi, "3.1.0");
});

test("an archive uploaded over HTTP in parts is ingested to ready", async () => {
  const ds = await api(platform, "POST", "/v1/datasets", { json: { name: "parts" } });
  assert.equal(ds.status, 201);
  const files: Record<string, [Uint8Array, { level: 0 }]> = {};
  for (let i = 0; i < 6; i++) files[`cats/${i}.png`] = [makePng(12, 12, i + 1), { level: 0 }];
  for (let i = 0; i < 5; i++) files[`dogs/${i}.png`] = [makePng(12, 12, i + 100), { level: 0 }];
  files["dogs/big.png"] = [makeStoredPng(1800, 1500), { level: 0 }]; // ~8 MB: the archive spans two 5 MiB parts
  const archive = zipSync(files);
  const upload = await api(platform, "POST", `/v1/datasets/${ds.body.id}/uploads`, { json: { filename: "pets.zip", part_size: 5 * 1024 * 1024 } });
  assert.equal(upload.status, 201);
  const { upload_id, part_size } = upload.body;
  const parts = Math.ceil(archive.length / part_size);
  assert.ok(parts >= 2, `expected several parts, got ${parts}`);
  for (let n = 1; n <= parts; n++) {
    const part = await api(platform, "PUT", `/v1/datasets/${ds.body.id}/uploads/${upload_id}/parts/${n}`, {
      body: archive.slice((n - 1) * part_size, n * part_size),
      headers: { "content-type": "application/octet-stream" },
    });
    assert.equal(part.status, 200, JSON.stringify(part.body));
  }
  const complete = await api(platform, "POST", `/v1/datasets/${ds.body.id}/uploads/${upload_id}/complete`);
  assert.equal(complete.status, 202);
  // The real queue consumer of `wrangler dev` does the ingestion.
  const ready = await waitFor("dataset ready", async () => {
    const d = await api(platform, "GET", `/v1/datasets/${ds.body.id}`);
    return d.body.status !== "ingesting" ? d.body : null;
  }, 60_000);
  assert.equal(ready.status, "ready");
  assert.equal(ready.image_count, 12);
  assert.equal(ready.rejected_count, 0);
  assert.deepEqual(ready.labels.map((l: any) => [l.name, l.count]), [["cats", 6], ["dogs", 6]]);
  assert.equal(ready.trainable, true);
});
