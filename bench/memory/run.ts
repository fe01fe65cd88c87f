/**
 * bench/memory: the Worker isolate's heap while the routes that move the most bytes run, read through the DevTools
 * protocol wrangler dev serves (bench/lib/workerd.ts): for each route, the heap after a GC before it (baseline) and
 * the largest reading sampled every 10 ms while it runs (peak), JS heap + ArrayBuffer backing stores. The comments on
 * the routes state their peak memory; this checks them. Prints numbers; asserts nothing. About 2 minutes.
 *
 *   npx tsx bench/memory/run.ts
 *
 * Routes, with bodies near their limits:
 *   PUT /v1/datasets/:id/images/:label/:file   a ~24 MB PNG (held once while its structure is checked)
 *   POST /v1/datasets/:id/archive              a ~48 MB zip (streamed into R2), then its ingest (queue consumer)
 *   PUT /v1/runner/jobs/:id/artifacts/:name    48 MB (streamed into R2)
 *   PUT /v1/runner/jobs/:id/embeddings/:key    a 32 MB pack shard (streamed, hashes checked on the way)
 *   POST /v1/runner/jobs/:id/embeddings/:key/lookup   the same shard read back (streamed from R2)
 *   POST /v1/runner/jobs/:id/images            a batch of 64 images (24 MB budget)
 *   POST /v1/runner/jobs/:id/complete          metrics of a 1,000-label model (about 2.5 MB of JSON)
 * Prediction's memory (the WASM heap of the backbone) is bench/predict's subject.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { zipSync } from "fflate";
import { sha256Hex } from "../../shared/ids";
import { freePort, startPlatform } from "../../scripts/platform.mjs";
import { makeColouredPng } from "../../tests/fixtures/images";
import { buildTinyModel, tinySpec } from "../../tests/fixtures/tiny-model";
import { ok, request as requestAt } from "../lib/http";
import { connectInspector, peakHeapDuring, type HeapUsage, type IsolateInspector } from "../lib/workerd";

const ADMIN = "et_admin_bench_memory_0123456789abcdef";
const log = (line: string) => console.log(line);
const mb = (h: HeapUsage | null) => (h ? h.totalMb.toFixed(1) : "n/a");

type Platform = Awaited<ReturnType<typeof startPlatform>>;

/** A PNG of about `bytes` bytes that does not compress (noise), valid for the upload check. */
function noisePng(bytes: number, seed: number): Uint8Array {
  const side = Math.ceil(Math.sqrt(bytes / 3));
  return makeColouredPng(side, side, [128, 128, 128], seed, 255);
}

async function main() {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bench-memory-"));
  const platform: Platform = await startPlatform({ port: await freePort(), stateDir, adminKey: ADMIN, runner: false, publishBuiltins: true, log: (line: string) => fs.appendFileSync(path.join(stateDir, "platform.log"), line) });
  // wrangler dev's proxy sometimes closes a kept-alive connection as a large body starts on it ("other side
  // closed" before any answer): such a call is sent again, once. Every call here is idempotent.
  const request = (method: string, route: string, init: Parameters<typeof requestAt>[3]) =>
    requestAt(platform.url, method, route, init).catch((err: Error & { cause?: { code?: string } }) => {
      if (err.cause?.code !== "UND_ERR_SOCKET") throw err;
      log(`(${method} ${route}: connection closed before an answer; sent again)`);
      return requestAt(platform.url, method, route, init);
    });
  let inspector: IsolateInspector | null = null;
  const rows: string[] = [];
  try {
    const project = await ok(request("POST", "/v1/projects", { key: ADMIN, json: { name: "memory" } }), "creating a project", 201);
    const key = project.body.key.secret as string;
    const dataset = await ok(request("POST", "/v1/datasets", { key, json: { name: "memory" } }), "creating a dataset", 201);
    const datasetId = dataset.body.id as string;
    inspector = await connectInspector(platform.wranglerPid);
    if (!inspector) throw new Error("the isolate's inspector did not answer");
    let renewLease = async () => {};
    const measure = async (route: string, what: string, work: () => Promise<unknown>) => {
      await renewLease(); // the lease lasts 15 s, and each measurement takes a few seconds
      const before = await inspector!.heapAfterGc();
      const { peak, samples } = await peakHeapDuring(inspector!, work());
      const after = await inspector!.heapAfterGc();
      const line = `${route} | ${what} | ${mb(before)} | ${mb(peak)} | ${peak && before ? (peak.totalMb - before.totalMb).toFixed(1) : "n/a"} | ${mb(after)} | ${samples}`;
      rows.push(line);
      log(line);
    };
    log(`load average: ${os.loadavg().map((v) => v.toFixed(2)).join(" ")}`);
    log("route | body | heap before (MiB) | peak during | peak - before | after GC | samples");

    const bigPng = noisePng(24 * 2 ** 20, 1);
    const bigId = (await ok(request("POST", "/v1/datasets", { key, json: { name: "one big image" } }), "creating a dataset", 201)).body.id as string;
    await measure("PUT /v1/datasets/:id/images/:label/:file", `PNG ${(bigPng.length / 2 ** 20).toFixed(1)} MiB`, () =>
      ok(request("PUT", `/v1/datasets/${bigId}/images/big/one.png`, { key, body: bigPng, headers: { "content-type": "image/png" } }), "uploading the big image", 201));

    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 160; i++) files[`${i % 2 ? "cat" : "dog"}/${i}.png`] = noisePng(300 * 1024, 100 + i);
    const zip = zipSync(files, { level: 0 });
    await measure("POST /v1/datasets/:id/archive + ingest", `zip ${(zip.length / 2 ** 20).toFixed(1)} MiB, 160 images`, async () => {
      await ok(request("POST", `/v1/datasets/${datasetId}/archive`, { key, body: zip, headers: { "content-type": "application/zip" } }), "uploading the archive", 202);
      for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
        const d = (await request("GET", `/v1/datasets/${datasetId}`, { key })).body;
        if (d.status !== "ingesting") return d;
      }
      throw new Error("the ingest did not finish");
    });

    // A user backbone as a multipart form: a tiny model beside 48 MiB of stored padding (read from R2 in ranges).
    const padding = new Uint8Array(48 * 2 ** 20);
    for (let i = 0; i < padding.length; i += 4096) padding[i] = (i / 4096) & 0xff;
    const modelZip = zipSync({ ...buildTinyModel().files, "padding.bin": padding }, { level: 0 });
    const modelForm = new FormData();
    modelForm.set("spec", JSON.stringify(tinySpec({ name: "memory-bench" })));
    modelForm.set("model", new Blob([modelZip], { type: "application/zip" }), "model.zip");
    await measure("POST /v1/backbones (multipart)", `zip ${(modelZip.length / 2 ** 20).toFixed(1)} MiB`, () =>
      ok(request("POST", "/v1/backbones", { key, body: modelForm }), "importing the backbone", 201));

    // A job leased by the platform's runner token: the runner routes.
    await ok(request("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } }), "creating a job", 201);
    const lease = await ok(request("POST", "/v1/runner/lease", { key: platform.runnerToken, json: { runner_id: "bench-memory", wait_s: 0 } }), "leasing");
    const { job, lease: { token }, images } = lease.body;
    const headers = { "x-lease-token": token };
    renewLease = async () => void (await ok(request("POST", `/v1/runner/jobs/${job.id}/heartbeat`, { key: platform.runnerToken, json: { lease_token: token } }), "renewing the lease"));
    const artifact = new Uint8Array(48 * 2 ** 20).fill(7);
    await measure("PUT /v1/runner/jobs/:id/artifacts/:name", "48 MiB", () =>
      ok(request("PUT", `/v1/runner/jobs/${job.id}/artifacts/weights.bin`, { key: platform.runnerToken, body: artifact, headers }), "uploading an artifact"));

    const shas = [...new Set<string>(images.map((i: { sha256: string }) => i.sha256))].sort();
    const dim = Math.floor((32 * 2 ** 20 / shas.length - 32) / 4);
    const recordBytes = 32 + dim * 4;
    const shard = new Uint8Array(shas.length * recordBytes);
    shas.forEach((sha, i) => shard.set(Uint8Array.from(sha.match(/../g)!.map((h) => parseInt(h, 16))), i * recordBytes));
    const pack = await sha256Hex(shas.join("\n"));
    const cacheKey = "ab".repeat(16);
    await measure("PUT /v1/runner/jobs/:id/embeddings/:key (pack shard)", `${(shard.length / 2 ** 20).toFixed(1)} MiB, ${shas.length} records of ${dim} floats`, () =>
      ok(request("PUT", `/v1/runner/jobs/${job.id}/embeddings/${cacheKey}?dim=${dim}&pack=${pack}&shard=0&shards=1`, { key: platform.runnerToken, body: shard, headers }), "storing the pack"));
    await measure("POST /v1/runner/jobs/:id/embeddings/:key/lookup (pack shard)", `${(shard.length / 2 ** 20).toFixed(1)} MiB answer`, () =>
      ok(request("POST", `/v1/runner/jobs/${job.id}/embeddings/${cacheKey}/lookup`, { key: platform.runnerToken, json: { sha256: [], pack }, headers }), "reading the pack"));
    await measure("POST /v1/runner/jobs/:id/images", "64 images of ~300 KB (24 MiB budget)", () =>
      ok(request("POST", `/v1/runner/jobs/${job.id}/images`, { key: platform.runnerToken, json: { sha256: shas.slice(0, 64) }, headers }), "a batch of images"));

    const labels = Array.from({ length: 1000 }, (_, i) => `label_${i}`);
    const metrics = { accuracy: 0.5, per_class: labels.map((label) => ({ label, precision: 0.5, recall: 0.5, f1: 0.5, support: 9 })), confusion_matrix: labels.map((_, i) => labels.map((_, j) => (i === j ? 9 : (i + j) % 3))) };
    await renewLease();
    await ok(request("PUT", `/v1/runner/jobs/${job.id}/artifacts/head.json`, { key: platform.runnerToken, body: "{}", headers }), "head.json");
    await ok(request("PUT", `/v1/runner/jobs/${job.id}/artifacts/head.bin`, { key: platform.runnerToken, body: new Uint8Array(4), headers }), "head.bin");
    const completeBody = JSON.stringify({ lease_token: token, labels, metrics, epochs: [], head_bytes: 4 });
    await measure("POST /v1/runner/jobs/:id/complete", `1,000-label metrics, ${(completeBody.length / 2 ** 20).toFixed(1)} MiB of JSON`, () =>
      ok(request("POST", `/v1/runner/jobs/${job.id}/complete`, { key: platform.runnerToken, body: completeBody, headers: { "content-type": "application/json" } }), "completing"));

    // The self-contained bundle of the model just registered: its manifest, then the two largest files it lists
    // (the builtin backbone's 10 MB of weights, and the 48 MiB weights.bin artifact above as the head's tfjs copy).
    renewLease = async () => {}; // the job is complete: no lease left to renew
    const modelId = (await ok(request("GET", `/v1/jobs/${job.id}`, { key }), "reading the job")).body.model_id as string;
    await measure("GET /v1/models/:id/bundle/manifest", "the manifest (sizes from R2 head())", () => ok(request("GET", `/v1/models/${modelId}/bundle/manifest`, { key }), "the bundle manifest"));
    await measure("GET /v1/models/:id/bundle/files/backbone-weights.bin", "10 MB builtin backbone weights", () => ok(request("GET", `/v1/models/${modelId}/bundle/files/backbone-weights.bin`, { key }), "the backbone's weights"));
    await measure("GET /v1/models/:id/bundle/files/head-weights.bin", "48 MiB artifact", () => ok(request("GET", `/v1/models/${modelId}/bundle/files/head-weights.bin`, { key }), "the head's tfjs weights"));
    log(`load average: ${os.loadavg().map((v) => v.toFixed(2)).join(" ")}`);
  } finally {
    inspector?.close();
    await platform.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
