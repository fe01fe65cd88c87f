/**
 * bench/scale: one data set through the whole platform, first job and retrain in the same run.
 *
 *   npx tsx bench/scale/run.ts [--count 20000] [--variation sharp|pixels|comment] [--flowers5] [--engine auto] [--head linear]
 *                              [--out DIR]   (generated archives and the platform's state; default bench/out)
 *                              [--generate-only]   (make the archive and stop) [--no-auto]   (skip the third job, head auto)
 *
 * - data: `--count` distinct photos generated from ../shared/datasets/flowers5 (random crops, flips, resizing,
 *   re-encoding; cached in bench/out/scale/), or with `--flowers5` the 400 originals as they are; either way in
 *   train/ and val/ folders by flowers5's fixed split (bench/embed/flowers.ts isHeldOut), so the held-out accuracy
 *   is measured on originals the head never saw (with crops of one original on both sides it read 99.7% at 20,000);
 * - multipart upload of the archive (MB/s), ingest (s per 1,000 images; the wrangler/workerd processes' CPU time per
 *   ingest queue message, read from /proc);
 * - first job (cold embedding cache) and retrain (warm), linear head by default, POST to `succeeded`: seconds, the
 *   job's img/s and its embedding-phase img/s, and the runner's own timings; then a job with head `auto` on the warm
 *   embeddings (its cross-validated search is what it pays on top);
 * - the same backbone's engine-only img/s (onnxruntime in this process, batch 32, after the jobs, runner idle);
 * - edge p50 of a single-image predict after training; D1 statements per request on the hot routes.
 *
 * Prints numbers; asserts nothing. The box is shared: quote the run, not a single figure.
 */
import { existsSync, openSync, readFileSync, readdirSync, readSync, closeSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { zipSync } from "fflate";
import { DEFAULT_BACKBONE, featureSpecOf, preprocessSpecOf } from "../../shared/catalog";
import { inputTensorLength } from "../../shared/image/preprocess";
import { loadBuiltinBundle } from "../../gpu-runner/src/backbones/job-backbone";
import { createEngine } from "../../gpu-runner/src/engine/index";
import { startPlatform } from "../../scripts/platform.mjs";
import { isHeldOut } from "../embed/flowers";
import { generateSet, type Variation } from "./generate";

const here = path.dirname(fileURLToPath(import.meta.url));
const SHARED = process.env.EDGETUNE_SHARED_DIR ?? path.resolve(here, "../../../shared");
const FLOWERS = path.join(SHARED, "datasets", "flowers5");
const OUT = path.resolve(here, "../out");
const arg = (name: string, fallback: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1]! : fallback);
const useFlowers = process.argv.includes("--flowers5");
const count = Number(arg("count", "20000"));
const engine = arg("engine", "auto");
const headType = arg("head", "linear");
/** --variation sharp (default; libvips), pixels (mozjpeg in WASM, slow) or comment (the originals' pixels): see generate.ts. */
const variation = arg("variation", "sharp") as Variation;
/** Where generated archives are cached and the platform keeps its state: outside the repository for big runs (/tmp/...). */
const OUT_DIR = path.resolve(arg("out", OUT));
/** Every line carries the 1-minute load average: the box is shared, and a figure means little without it. */
const log = (msg: string) => console.log(`[scale ${new Date().toISOString().slice(11, 19)} load ${os.loadavg()[0]!.toFixed(1)}] ${msg}`);

if (!existsSync(FLOWERS)) {
  console.log(`skipped: ${FLOWERS} not found (set EDGETUNE_SHARED_DIR)`);
  process.exit(0);
}

// ---- the archive ---------------------------------------------------------------------------------------------
let archivePath: string | null = null;
let archiveBytes: Uint8Array | null = null;
let imageCount: number;
let sampleJpeg: Uint8Array;
if (useFlowers) {
  const files: Record<string, [Uint8Array, { level: 0 }]> = {};
  // The fixed split as the dataset's own train/ and val/ folders: the held-out figure is bench/train's 100 images.
  for (const label of readdirSync(FLOWERS).sort()) {
    readdirSync(path.join(FLOWERS, label)).filter((f) => /\.jpe?g$/i.test(f)).sort().forEach((file, index) => {
      files[`${isHeldOut(index) ? "val" : "train"}/${label}/${file}`] = [readFileSync(path.join(FLOWERS, label, file)), { level: 0 }];
    });
  }
  archiveBytes = zipSync(files);
  imageCount = Object.keys(files).length;
  sampleJpeg = Object.values(files)[7]![0];
} else {
  const set = await generateSet(FLOWERS, path.join(OUT_DIR, "scale"), count, log, variation);
  log(set.generatedS ? `generated ${set.count} photos in ${set.generatedS.toFixed(0)} s` : `reusing ${set.zipPath}`);
  archivePath = set.zipPath;
  imageCount = set.count;
  const label = readdirSync(FLOWERS).sort()[0]!;
  sampleJpeg = readFileSync(path.join(FLOWERS, label, readdirSync(path.join(FLOWERS, label)).sort()[3]!));
}
const totalBytes = archiveBytes ? archiveBytes.length : statSync(archivePath!).size;
log(`archive: ${imageCount} images, ${(totalBytes / 1e6).toFixed(0)} MB`);
if (process.argv.includes("--generate-only")) process.exit(0);

/** CPU seconds (user + system) of every process in a process group, from /proc. */
function groupCpuSeconds(pgid: number): number {
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pgid) continue; // field 5: pgrp
      total += (Number(fields[11]) + Number(fields[12])) / ticks; // utime, stime
    } catch {
      // the process ended meanwhile
    }
  }
  return total;
}

const stateDir = path.join(OUT_DIR, `scale-state-${useFlowers ? "flowers5" : count}`);
const { rmSync } = await import("node:fs");
rmSync(stateDir, { recursive: true, force: true });
const { freePort } = await import("../../scripts/platform.mjs");
const platform = await startPlatform({ port: await freePort(), stateDir, runner: ["--engine", engine], quiet: !process.env.VERBOSE, vars: { D1_METER_HEADERS: "true" } });
const request = async (method: string, route: string, init: { json?: unknown; body?: BodyInit; type?: string } = {}) => {
  const headers: Record<string, string> = { authorization: `Bearer ${platform.adminKey}` };
  if (init.json !== undefined) headers["content-type"] = "application/json";
  else if (init.type) headers["content-type"] = init.type;
  const response = await fetch(platform.url + route, { method, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body });
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text.slice(0, 500)}`);
  return { body, statements: Number(response.headers.get("x-edgetune-d1-statements") ?? NaN) };
};
const call = async (method: string, route: string, init: { json?: unknown; body?: BodyInit; type?: string } = {}) => (await request(method, route, init)).body;
const poll = async <T>(fn: () => Promise<T | null>, timeoutMs: number, what: string): Promise<T> => {
  const started = Date.now();
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > started + timeoutMs) throw new Error(`timed out waiting for ${what}`);
    // Every 25 ms for the first 2 s (a warm retrain takes a few hundred ms, and a coarser poll would add up to its
    // period to it), then every 250 ms: the key's rate limit is 1,200 requests a minute (wrangler.toml).
    await new Promise((r) => setTimeout(r, Date.now() - started < 2000 ? 25 : 250));
  }
};

const results: Array<[string, string]> = [];
/** The first job's embedding-phase img/s, for the end-to-end / engine-alone line at the end. */
let firstEmbedRate = NaN;
const note = (name: string, value: string) => {
  results.push([name, value]);
  log(`${name}: ${value}`);
};
try {
  // ---- upload ------------------------------------------------------------------------------------------------
  const dataset = await call("POST", "/v1/datasets", { json: { name: `scale-${imageCount}` } });
  const partSize = 64 * 1024 * 1024;
  const upload = await call("POST", `/v1/datasets/${dataset.id}/uploads`, { json: { filename: "scale.zip", part_size: partSize } });
  const fd = archivePath ? openSync(archivePath, "r") : null;
  const uploadStarted = performance.now();
  for (let part = 1; (part - 1) * partSize < totalBytes; part++) {
    const length = Math.min(partSize, totalBytes - (part - 1) * partSize);
    let bytes: Uint8Array;
    if (fd !== null) {
      bytes = new Uint8Array(length);
      readSync(fd, bytes, 0, length, (part - 1) * partSize);
    } else bytes = archiveBytes!.subarray((part - 1) * partSize, (part - 1) * partSize + length);
    await call("PUT", `/v1/datasets/${dataset.id}/uploads/${upload.upload_id}/parts/${part}`, { body: bytes as Uint8Array<ArrayBuffer>, type: "application/octet-stream" });
  }
  if (fd !== null) closeSync(fd);
  const cpuBeforeIngest = groupCpuSeconds(platform.wranglerPid);
  await call("POST", `/v1/datasets/${dataset.id}/uploads/${upload.upload_id}/complete`);
  const uploadS = (performance.now() - uploadStarted) / 1000;
  note("multipart upload", `${(totalBytes / 1e6 / uploadS).toFixed(1)} MB/s (${(totalBytes / 1e6).toFixed(0)} MB in ${uploadS.toFixed(1)} s, parts of 64 MiB, complete included)`);
  const ingestStarted = performance.now();
  const ready = await poll(async () => {
    const d = await call("GET", `/v1/datasets/${dataset.id}`);
    return d.status === "ingesting" ? null : d;
  }, 60 * 60_000, "ingest");
  const ingestS = (performance.now() - ingestStarted) / 1000;
  const ingestCpuS = groupCpuSeconds(platform.wranglerPid) - cpuBeforeIngest;
  // Chunks of at most 250 entries (workers/services/ingest.ts CHUNK_MAX_ENTRIES): at least this many queue messages.
  const messages = Math.ceil(imageCount / 250);
  note("ingest", `${ready.status}, ${ready.image_count}/${imageCount} images in ${ingestS.toFixed(1)} s = ${((ingestS * 1000) / imageCount).toFixed(2)} s per 1,000`);
  note("ingest CPU per queue message", `${((ingestCpuS * 1000) / messages).toFixed(0)} ms (wrangler + workerd process CPU ${ingestCpuS.toFixed(1)} s / ≥${messages} messages of ≤250 entries; an upper bound: includes the dev server's own work)`);

  // ---- first job and retrain -----------------------------------------------------------------------------
  const runJob = async (label: string, head: string = headType) => {
    const started = performance.now();
    const job = await call("POST", "/v1/jobs", { json: { dataset_id: dataset.id, head: { type: head } } });
    const done = await poll(async () => {
      const j = await call("GET", `/v1/jobs/${job.id}`);
      return ["succeeded", "failed", "canceled"].includes(j.status) ? j : null;
    }, 3 * 60 * 60_000, `${label} job`);
    const wallS = (performance.now() - started) / 1000;
    if (done.status !== "succeeded") throw new Error(`${label} job ${job.id} ${done.status} after ${done.attempt} attempt(s): ${done.error}`);
    return { job: done, wallS };
  };
  const first = await runJob("first");
  const e = first.job.metrics.embeddings;
  const t = first.job.metrics.timings_ms;
  firstEmbedRate = (e.computed * 1000) / t.embedding_ms;
  note("first job", `${first.wallS.toFixed(1)} s POST → succeeded, attempt ${first.job.attempt}/${first.job.max_attempts}, ${(imageCount / first.wallS).toFixed(1)} img/s end to end; embedding phase ${e.computed} computed in ${(t.embedding_ms / 1000).toFixed(1)} s = ${((e.computed * 1000) / t.embedding_ms).toFixed(1)} img/s on ${e.engine}; runner timings ${JSON.stringify(t)}; breakdown ${JSON.stringify(e.breakdown_ms)}; epochs ${first.job.metrics.epochs.length}`);
  const retrain = await runJob("retrain");
  note("retrain", `${retrain.wallS.toFixed(2)} s POST → succeeded (attempt ${retrain.job.attempt}), embeddings ${retrain.job.metrics.embeddings.cached} cached / ${retrain.job.metrics.embeddings.computed} computed; runner timings ${JSON.stringify(retrain.job.metrics.timings_ms)}`);
  note("first job / retrain", `${(first.wallS / retrain.wallS).toFixed(1)}x`);
  const model = await call("GET", `/v1/models/${retrain.job.model_id}`);
  note("held-out accuracy", `${(model.metrics.accuracy * 100).toFixed(1)}% (${model.metrics.count ?? "?"} val images)`);
  if (!process.argv.includes("--no-auto")) {
    // `auto` on the same, now warm, embeddings: what it pays beyond a fixed head is its cross-validated search.
    const auto = await runJob("auto", "auto");
    const autoModel = await call("GET", `/v1/models/${auto.job.model_id}`);
    const selection = autoModel.metrics.selection;
    note("auto on warm embeddings", `${auto.wallS.toFixed(1)} s POST → succeeded (attempt ${auto.job.attempt}); search ${selection ? `${(selection.search_ms / 1000).toFixed(1)} s (${selection.candidates.length} candidates × ${selection.folds} folds), chose ${selection.chosen.head.type}` : "not recorded"}; runner timings ${JSON.stringify(auto.job.metrics.timings_ms)}; held-out ${(autoModel.metrics.accuracy * 100).toFixed(1)}%`);
  }

  // ---- edge p50 and D1 statements --------------------------------------------------------------------------
  const latencies: number[] = [];
  let predictStatements = NaN;
  for (let i = 0; i < 25; i++) {
    const started = performance.now();
    const answer = await request("POST", `/v1/models/${retrain.job.model_id}/predict`, { body: sampleJpeg as Uint8Array<ArrayBuffer>, type: "image/jpeg" });
    if (i > 0) latencies.push(performance.now() - started); // the first one loads the backbone into the isolate
    predictStatements = answer.statements;
  }
  latencies.sort((a, b) => a - b);
  note("edge predict p50", `${latencies[Math.floor(latencies.length / 2)]!.toFixed(0)} ms client wall (p90 ${latencies[Math.floor(latencies.length * 0.9)]!.toFixed(0)} ms, 24 warm requests, one JPEG)`);
  const hot: Array<[string, string]> = [
    ["POST /v1/models/:id/predict", ""],
    ["GET /v1/jobs/:id", `/v1/jobs/${retrain.job.id}`],
    ["GET /v1/datasets/:id", `/v1/datasets/${dataset.id}`],
    ["GET /v1/models/:id", `/v1/models/${retrain.job.model_id}`],
    ["GET /v1/datasets", "/v1/datasets"],
    ["GET /v1/jobs", "/v1/jobs"],
  ];
  const statements = await Promise.all(hot.map(async ([name, route]) => `${name} ${route ? (await request("GET", route)).statements : predictStatements}`));
  note("D1 statements per request", statements.join(", "));
} finally {
  await platform.stop();
}

// ---- engine alone, same backbone, same machine, after the platform stopped -----------------------------------
{
  const bundle = await loadBuiltinBundle(DEFAULT_BACKBONE.id);
  const spec = DEFAULT_BACKBONE.spec;
  const alone = await createEngine(bundle, featureSpecOf(spec), { engine: engine === "auto" ? "onnx" : (engine as "onnx") });
  const batch = new Float32Array(32 * inputTensorLength(preprocessSpecOf(spec))).map((_, i) => ((i * 2654435761) % 1000) / 1000);
  await alone.embed(batch, 32);
  const rates: number[] = [];
  for (let round = 0; round < 5; round++) {
    const started = performance.now();
    await alone.embed(batch, 32);
    rates.push(32_000 / (performance.now() - started));
  }
  await alone.close();
  rates.sort((a, b) => a - b);
  note("engine alone", `${rates[2]!.toFixed(1)} img/s median of 5 batches of 32 (${alone.name}, ${DEFAULT_BACKBONE!.name})`);
  // The job's rate includes the local Worker serving the images from the same 2 cores; bench/embed/pipeline.ts
  // measures the runner's pipeline alone, with the CPU split.
  if (Number.isFinite(firstEmbedRate)) note("first job's embedding phase / engine alone", `${((100 * firstEmbedRate) / rates[2]!).toFixed(0)}%`);
}

console.log("\n| measure | value |\n| --- | --- |");
for (const [name, value] of results) console.log(`| ${name} | ${value.replace(/\|/g, "/")} |`);
