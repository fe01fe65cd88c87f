/**
 * bench/upload: multipart upload throughput of a ~200 MB archive into local R2 through the API, and ingest time per
 * 1,000 images, against the real local platform (wrangler dev) on 127.0.0.1. Prints numbers; asserts nothing.
 *   npx tsx bench/upload/run.ts [--mb 200] [--images 2000]
 */
import fs from "node:fs";
import { numberFlag as arg } from "../lib/args";
import { zipSync } from "fflate";
import { makeStoredPng } from "../../tests/fixtures/images";
import { api, startTestPlatform, waitFor } from "../../tests/e2e/platform";

const targetMb = arg("mb", 200);
const images = arg("images", 2000);

// Each image is an uncompressed PNG of noise so the archive size is what we ask for.
const side = Math.round(Math.sqrt((targetMb * 1e6) / images / 3));
const files: Record<string, [Uint8Array, { level: 0 }]> = {};
for (let i = 0; i < images; i++) files[`label${i % 10}/img${i}.png`] = [makeStoredPng(side, side, i + 1), { level: 0 }];
const archive = zipSync(files);
const mb = archive.length / 1e6;
console.log(`archive: ${mb.toFixed(1)} MB, ${images} images of ${side}x${side}`);

const platform = await startTestPlatform();
try {
  console.log(`platform ready in ${platform.readyMs} ms`);
  const ds = await api(platform, "POST", "/v1/datasets", { json: { name: "bench" } });
  if (ds.status !== 201) throw new Error(`creating the dataset: ${JSON.stringify(ds.body)}`);
  const partSize = 64 * 1024 * 1024;
  const up = await api(platform, "POST", `/v1/datasets/${ds.body.id}/uploads`, { json: { filename: "bench.zip", part_size: partSize } });
  if (up.status !== 201) throw new Error(`starting the upload: ${JSON.stringify(up.body)}`);
  const t0 = performance.now();
  for (let n = 1; (n - 1) * partSize < archive.length; n++) {
    const res = await api(platform, "PUT", `/v1/datasets/${ds.body.id}/uploads/${up.body.upload_id}/parts/${n}`, {
      body: archive.subarray((n - 1) * partSize, n * partSize), headers: { "content-type": "application/octet-stream" },
    });
    if (res.status !== 200) throw new Error(JSON.stringify(res.body));
  }
  const complete = await api(platform, "POST", `/v1/datasets/${ds.body.id}/uploads/${up.body.upload_id}/complete`);
  if (complete.status !== 202) throw new Error(JSON.stringify(complete.body));
  const t1 = performance.now();
  const ready = await waitFor("ingest", async () => {
    const d = await api(platform, "GET", `/v1/datasets/${ds.body.id}`);
    return d.body.status !== "ingesting" ? d.body : null;
  }, 30 * 60_000);
  const t2 = performance.now();
  const uploadS = (t1 - t0) / 1000;
  const ingestS = (t2 - t1) / 1000;
  console.log(`upload (parts + complete): ${uploadS.toFixed(2)} s = ${(mb / uploadS).toFixed(1)} MB/s`);
  console.log(`ingest: ${ingestS.toFixed(2)} s for ${ready.image_count} images (${ready.status}, ${ready.rejected_count} rejected) = ${((ingestS / ready.image_count) * 1000).toFixed(1)} s per 1,000 images`);
} finally {
  await platform.stop();
  // The state folder holds the archive and every image (about 2x the archive): do not leave it in the temp folder.
  fs.rmSync(platform.stateDir, { recursive: true, force: true });
}
