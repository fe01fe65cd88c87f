/**
 * bench/load: mixed traffic against the local platform as `npm start` runs it (scripts/platform.mjs: wrangler dev,
 * 127.0.0.1 only, its own state folder), at a fixed concurrency for a fixed time. Prints numbers; asserts nothing,
 * but names every error (there should be none).
 *
 *   npx tsx bench/load/run.ts [--seconds 60] [--concurrency 16]
 *
 * Set-up (not measured): the builtin MobileNetV2 published as a runner publishes it; 2 projects, each with 3 API keys
 * (the per-key rate limit is 1,200 a minute), a dataset of 10 small images, and a model registered through the runner
 * protocol (job, lease, head.json + head.bin with seeded weights over the 576-d embedding, complete).
 * Traffic, each request to one of the two projects in turn: 70% predictions (a 224x224 PNG), 25% reads (the model,
 * the dataset, a page of its images, a page of jobs), 5% small uploads (a 16x16 PNG under a new name).
 * Prints requests per second, p50/p99 per route, the error count and the workerd processes' RSS (sampled every
 * second, and their peak), with the load average at the start and the end (the machine is shared).
 */
import fs from "node:fs";
import { numberFlag as flag } from "../lib/args";
import os from "node:os";
import path from "node:path";
import { loadNsfwjsBundle } from "../../gpu-runner/src/backbones/builtin-nsfwjs";
import { withSingleWeightsFile } from "../../shared/backbone/model-json";
import { NSFWJS_MOBILENET_V2 } from "../../shared/catalog";
import { serializeHead } from "../../shared/head";
import { seededHead as seededHeadOf } from "../lib/heads";
import { freePort, startPlatform } from "../../scripts/platform.mjs";
import { makeColouredPng, makePng } from "../../tests/fixtures/images";
import { ok, request as requestAt } from "../lib/http";
import { workerdProcesses } from "../lib/workerd";

const SECONDS = flag("seconds", 60);
const CONCURRENCY = flag("concurrency", 16);
const ADMIN = "et_admin_bench_load_0123456789abcdefgh";
const BUILTIN = NSFWJS_MOBILENET_V2;
const DIM = 576;
const log = (line: string) => console.log(line);
const loadavg = () => os.loadavg().map((v) => v.toFixed(2)).join(" ");

type Platform = Awaited<ReturnType<typeof startPlatform>>;

const request = (platform: Platform, method: string, route: string, init: Parameters<typeof requestAt>[3]) => requestAt(platform.url, method, route, init);

const seededHead = (classes: number, seed: number) => seededHeadOf(DIM, classes, seed);

interface Tenant {
  keys: string[];
  datasetId: string;
  modelId: string;
}

async function setUp(platform: Platform): Promise<Tenant[]> {
  const bundle = await loadNsfwjsBundle();
  await ok(request(platform, "PUT", `/v1/runner/backbones/${BUILTIN.id}/weights.bin`, { key: platform.runnerToken, body: new Uint8Array(bundle.weightData) }), "publishing weights.bin");
  await ok(request(platform, "PUT", `/v1/runner/backbones/${BUILTIN.id}/model.json`, { key: platform.runnerToken, body: JSON.stringify(withSingleWeightsFile(bundle.modelJson)) }), "publishing model.json");
  const tenants: Tenant[] = [];
  for (let t = 0; t < 2; t++) {
    const project = await ok(request(platform, "POST", "/v1/projects", { key: ADMIN, json: { name: `load ${t}` } }), "creating a project", 201);
    const keys = [project.body.key.secret as string];
    for (let k = 0; k < 2; k++) keys.push((await ok(request(platform, "POST", "/v1/keys", { key: keys[0]!, json: { name: `load ${k}` } }), "creating a key", 201)).body.secret);
    const dataset = await ok(request(platform, "POST", "/v1/datasets", { key: keys[0]!, json: { name: "load" } }), "creating a dataset", 201);
    for (const label of ["a", "b"]) for (let i = 0; i < 5; i++) {
      await ok(request(platform, "PUT", `/v1/datasets/${dataset.body.id}/images/${label}/${i}.png`, { key: keys[0]!, body: makePng(16, 16, 1000 * t + i + (label === "a" ? 0 : 10)), headers: { "content-type": "image/png" } }), "uploading an image", 201);
    }
    await ok(request(platform, "POST", "/v1/jobs", { key: keys[0]!, json: { dataset_id: dataset.body.id, backbone: BUILTIN.name } }), "creating a job", 201);
    const lease = await ok(request(platform, "POST", "/v1/runner/lease", { key: platform.runnerToken, json: { runner_id: "bench-load", wait_s: 0 } }), "leasing the job");
    const { job, lease: { token } } = lease.body;
    const head = seededHead(5, t + 1);
    const { manifest, weights } = serializeHead(head);
    const headers = { "x-lease-token": token, "content-type": "application/octet-stream" };
    await ok(request(platform, "PUT", `/v1/runner/jobs/${job.id}/artifacts/head.json`, { key: platform.runnerToken, body: JSON.stringify(manifest), headers }), "uploading head.json");
    await ok(request(platform, "PUT", `/v1/runner/jobs/${job.id}/artifacts/head.bin`, { key: platform.runnerToken, body: weights, headers }), "uploading head.bin");
    const done = await ok(request(platform, "POST", `/v1/runner/jobs/${job.id}/complete`, {
      key: platform.runnerToken, json: { lease_token: token, labels: head.labels, metrics: { accuracy: 0, per_class: [], confusion_matrix: [] }, epochs: [], head_bytes: weights.length },
    }), "completing the job");
    tenants.push({ keys, datasetId: dataset.body.id, modelId: done.body.model_id });
  }
  return tenants;
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
};

async function main() {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bench-load-"));
  const logFile = path.join(stateDir, "platform.log");
  const platform = await startPlatform({ port: await freePort(), stateDir, adminKey: ADMIN, runner: false, log: (line: string) => fs.appendFileSync(logFile, line) });
  try {
    const tenants = await setUp(platform);
    const photo = makeColouredPng(224, 224, [180, 90, 60], 7);
    // One warm prediction per model: the cold start (backbone from R2, compile) is bench/predict's subject.
    for (const t of tenants) await ok(request(platform, "POST", `/v1/models/${t.modelId}/predict`, { key: t.keys[0]!, body: photo, headers: { "content-type": "image/png" } }), "warming up");

    const reads: [string, (t: Tenant) => string][] = [
      ["GET /v1/models/:id", (t) => `/v1/models/${t.modelId}`],
      ["GET /v1/datasets/:id", (t) => `/v1/datasets/${t.datasetId}`],
      ["GET /v1/datasets/:id/images", (t) => `/v1/datasets/${t.datasetId}/images?limit=50`],
      ["GET /v1/jobs", () => "/v1/jobs?limit=20"],
    ];
    const latencies = new Map<string, number[]>();
    const errors: string[] = [];
    let sent = 0;
    let uploads = 0;
    let rssPeakMb = 0;
    const rssSamples: number[] = [];
    const sampler = setInterval(() => {
      const total = workerdProcesses(platform.wranglerPid).reduce((sum, p) => sum + p.rssMb, 0);
      rssSamples.push(total);
      rssPeakMb = Math.max(rssPeakMb, total);
    }, 1000);
    const startLoad = loadavg();
    const started = performance.now();
    const deadline = started + SECONDS * 1000;
    let state = 12345;
    const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const n = sent++;
        const tenant = tenants[n % tenants.length]!;
        const key = tenant.keys[Math.floor(n / tenants.length) % tenant.keys.length]!;
        const pick = random();
        let route: string;
        let call: Promise<{ status: number; body: any }>;
        if (pick < 0.7) {
          route = "POST /v1/models/:id/predict";
          call = request(platform, "POST", `/v1/models/${tenant.modelId}/predict`, { key, body: photo, headers: { "content-type": "image/png" } });
        } else if (pick < 0.95) {
          const [name, path] = reads[n % reads.length]!;
          route = name;
          call = request(platform, "GET", path(tenant), { key });
        } else {
          route = "PUT /v1/datasets/:id/images/:label/:file";
          const u = uploads++;
          call = request(platform, "PUT", `/v1/datasets/${tenant.datasetId}/images/new/${u}.png`, { key, body: makePng(16, 16, 100_000 + u), headers: { "content-type": "image/png" } });
        }
        const t0 = performance.now();
        const res = await call.catch((err: Error) => ({ status: 0, body: err.message }));
        const elapsed = performance.now() - t0;
        const expected = route.startsWith("PUT") ? 201 : 200;
        if (res.status !== expected) errors.push(`${route}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        (latencies.get(route) ?? latencies.set(route, []).get(route)!).push(elapsed);
      }
    }));
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const total = [...latencies.values()].reduce((sum, l) => sum + l.length, 0);
    log(`bench/load: concurrency ${CONCURRENCY} for ${seconds.toFixed(1)} s against wrangler dev on ${platform.url} (2 projects)`);
    log(`load average (1/5/15 min): ${startLoad} at the start, ${loadavg()} at the end; ${os.cpus().length} CPUs`);
    log(`requests: ${total} = ${(total / seconds).toFixed(1)} req/s; errors: ${errors.length}`);
    log("route | requests | req/s | p50 ms | p99 ms");
    for (const [route, values] of [...latencies].sort((a, b) => b[1].length - a[1].length)) {
      log(`${route} | ${values.length} | ${(values.length / seconds).toFixed(1)} | ${quantile(values, 0.5).toFixed(1)} | ${quantile(values, 0.99).toFixed(1)}`);
    }
    log(`workerd RSS (all its processes): ${rssSamples.at(-1)?.toFixed(0)} MB at the end, median ${quantile(rssSamples, 0.5).toFixed(0)} MB, peak ${rssPeakMb.toFixed(0)} MB sampled; VmHWM ${workerdProcesses(platform.wranglerPid).map((p) => `${p.pid}: ${p.peakMb.toFixed(0)} MB`).join(", ")}`);
    const distinct = [...new Set(errors)];
    for (const error of distinct.slice(0, 10)) log(`error: ${error} (x${errors.filter((e) => e === error).length})`);
  } finally {
    await platform.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
