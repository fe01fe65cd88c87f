/**
 * bench/predict: prediction at the edge against the real local platform (wrangler dev, workerd) on 127.0.0.1, with
 * the builtin MobileNetV2, then the same backbone in Node (tfjs WASM: layers and fused; onnxruntime-node).
 * Prints numbers; asserts nothing. Bounded: a fixed number of requests per phase and a time cap per phase.
 *
 *   npx tsx bench/predict/run.ts [--heads 1000] [--warm 60] [--seconds 8] [--skip-node]
 *
 * What it does, in order:
 *   1. builds a 224x224 and a 1-megapixel (1152x864) baseline JPEG: photos from ../shared/datasets/flowers5 when that
 *      folder exists (a 4x4 mosaic for the large one), synthetic pixels otherwise;
 *   2. starts the platform with its own state folder and no runner, publishes the builtin backbone's files as a runner
 *      would (PUT /v1/runner/backbones/...), and creates 1 + `--heads` models through the runner protocol (create a
 *      job, lease it, upload head.json + head.bin, complete): heads with seeded weights over the 576-d embedding;
 *   3. restarts the platform, so the first prediction meets an isolate that has loaded nothing: cold start;
 *   4. warm latency (p50/p99, client side) for both JPEGs, throughput at concurrency 1, 4 and 16, the workerd
 *      processes' RSS and peak RSS (VmHWM) before and after predicting with every one of the `--heads` models, and the
 *      isolate's own accounting (GET /v1/inference/stats);
 *   5. stops the platform, then runs the same backbone in this Node process, one engine at a time.
 */
import fs from "node:fs";
import { numberFlag as flag } from "../lib/args";
import os from "node:os";
import path from "node:path";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { loadNsfwjsBundle } from "../../gpu-runner/src/backbones/builtin-nsfwjs";
import { withSingleWeightsFile } from "../../shared/backbone/model-json";
import { NSFWJS_MOBILENET_V2, featureLayers, preprocessSpecOf } from "../../shared/catalog";
import { serializeHead } from "../../shared/head";
import { seededHead as seededHeadOf } from "../lib/heads";
import { decodeImage } from "../../shared/image/decode";
import type { RgbaImage } from "../../shared/image/codecs";
import { preprocessImage } from "../../shared/image/preprocess";
import { mapBounded } from "../../shared/concurrency";
import { connectInspector, workerdProcesses } from "../lib/workerd";
import { makePng } from "../../tests/fixtures/images";
import { freePort, type startPlatform as StartPlatform } from "../../scripts/platform.mjs";

const args = process.argv.slice(2);
const HEADS = flag("heads", 1000);
const WARM = flag("warm", 60);
const SECONDS = flag("seconds", 8);
const SKIP_NODE = args.includes("--skip-node");
const ADMIN = "et_admin_bench_predict_0123456789abcdef";
/** Registered by startPlatform (POST /v1/runners). */
let RUNNER = "";
const BUILTIN = NSFWJS_MOBILENET_V2;
const DIM = 576;
const FLOWERS = path.resolve(import.meta.dirname, "../../../shared/datasets/flowers5");

const log = (line: string) => console.log(line);
const ms = (v: number) => `${v.toFixed(1)} ms`;
const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const median = (values: number[]) => quantile(values, 0.5);

// ---------------------------------------------------------------- images

function resizeRgba(image: RgbaImage, width: number, height: number): RgbaImage {
  const out = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(image.height - 1, ((y + 0.5) * image.height) / height - 0.5);
    const y0 = Math.max(0, Math.floor(sy)), y1 = Math.min(image.height - 1, y0 + 1), fy = Math.max(0, sy - y0);
    for (let x = 0; x < width; x++) {
      const sx = Math.min(image.width - 1, ((x + 0.5) * image.width) / width - 0.5);
      const x0 = Math.max(0, Math.floor(sx)), x1 = Math.min(image.width - 1, x0 + 1), fx = Math.max(0, sx - x0);
      for (let c = 0; c < 4; c++) {
        const at = (yy: number, xx: number) => image.data[(yy * image.width + xx) * 4 + c]!;
        const top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx;
        const bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx;
        out[(y * width + x) * 4 + c] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return { data: out, width, height };
}

function syntheticRgba(width: number, height: number, seed: number): RgbaImage {
  const data = new Uint8ClampedArray(width * height * 4);
  let state = seed;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      state = (state * 1103515245 + 12345) >>> 0;
      const noise = (state >>> 24) / 8;
      const i = (y * width + x) * 4;
      data[i] = 128 + 100 * Math.sin(x / 17 + seed) + noise;
      data[i + 1] = 128 + 100 * Math.cos(y / 23 + x / 41) + noise;
      data[i + 2] = 128 + 90 * Math.sin((x + y) / 31) + noise;
      data[i + 3] = 255;
    }
  return { data, width, height };
}

async function encodeJpeg(image: RgbaImage): Promise<Uint8Array> {
  const { default: encode, init } = await import("@jsquash/jpeg/encode.js");
  const wasm = await WebAssembly.compile(fs.readFileSync(path.resolve(import.meta.dirname, "../../node_modules/@jsquash/jpeg/codec/enc/mozjpeg_enc.wasm")));
  await (init as unknown as (module: WebAssembly.Module) => Promise<void>)(wasm);
  return new Uint8Array(await encode(image as never, { quality: 85, baseline: true, progressive: false }));
}

async function benchImages(): Promise<{ small: Uint8Array; large: Uint8Array; source: string }> {
  if (fs.existsSync(FLOWERS)) {
    const codecs = await getNodeCodecs();
    const files = fs.readdirSync(FLOWERS).sort().flatMap((label) => fs.readdirSync(path.join(FLOWERS, label)).sort().slice(0, 4).map((f) => path.join(FLOWERS, label, f)));
    const photos = await Promise.all(files.slice(0, 16).map(async (f) => decodeImage(new Uint8Array(fs.readFileSync(f)), codecs)));
    const small = resizeRgba(photos[0]!, 224, 224);
    const tileW = 288, tileH = 216;
    const mosaic = { data: new Uint8ClampedArray(1152 * 864 * 4), width: 1152, height: 864 };
    photos.forEach((photo, index) => {
      const tile = resizeRgba(photo, tileW, tileH);
      const ox = (index % 4) * tileW, oy = Math.floor(index / 4) * tileH;
      for (let y = 0; y < tileH; y++) mosaic.data.set(tile.data.subarray(y * tileW * 4, (y + 1) * tileW * 4), ((oy + y) * 1152 + ox) * 4);
    });
    return { small: await encodeJpeg(small), large: await encodeJpeg(mosaic), source: `flowers5 photos (${path.relative(process.cwd(), FLOWERS)})` };
  }
  return { small: await encodeJpeg(syntheticRgba(224, 224, 1)), large: await encodeJpeg(syntheticRgba(1152, 864, 2)), source: "synthetic pixels (../shared/datasets/flowers5 not found)" };
}

// ---------------------------------------------------------------- the platform


type Platform = Awaited<ReturnType<typeof StartPlatform>>;

/**
 * wrangler dev rebuilds and restarts the Worker whenever a source file changes, and other people edit this tree while
 * the bench runs. So the platform runs from a snapshot of the Worker's sources (node_modules linked), which nothing
 * else touches.
 */
function snapshotSources(): string {
  const root = path.resolve(import.meta.dirname, "../..");
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bench-src-"));
  for (const entry of ["workers", "shared", "migrations", "scripts", "wrangler.toml", "package.json", "tsconfig.json"]) {
    fs.cpSync(path.join(root, entry), path.join(copy, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(root, "node_modules"), path.join(copy, "node_modules"));
  return copy;
}

let running: Platform | null = null;
const cleanups: (() => void)[] = [];
/** Stops the platform and removes the temporary folders however the bench ends (error, Ctrl-C, time limit). */
async function cleanUp() {
  if (running) await running.stop().catch(() => {});
  running = null;
  for (const cleanup of cleanups.splice(0)) cleanup();
}
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void cleanUp().then(() => process.exit(130)));
const watchdog = setTimeout(() => {
  console.error("bench/predict: gave up after 20 minutes");
  void cleanUp().then(() => process.exit(1));
}, 20 * 60_000);

async function request(platform: Platform, method: string, route: string, init: { json?: unknown; body?: BodyInit | Uint8Array; headers?: Record<string, string>; key?: string } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${init.key ?? ADMIN}`, ...(init.headers ?? {}) };
  let body = init.body as BodyInit | undefined;
  if (init.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(init.json);
  }
  const started = performance.now();
  const res = await fetch(platform.url + route, { method, headers, body });
  const text = await res.text();
  const wallMs = performance.now() - started;
  return { status: res.status, body: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text, wallMs };
}

async function ok(promise: ReturnType<typeof request>, what: string, status = 200) {
  const res = await promise;
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 400)}`);
  return res;
}

/** 0, 1, ..., n - 1. */
const indices = (n: number) => Array.from({ length: n }, (_, i) => i);

/** workerd processes started by this platform, with their RSS and peak RSS (VmHWM) in MB. */
const workerdMemory = (platform: Platform) => workerdProcesses(platform.wranglerPid);
const memoryLine = (platform: Platform) => workerdMemory(platform).map((p) => `workerd ${p.pid}: RSS ${p.rssMb.toFixed(0)} MB, peak ${p.peakMb.toFixed(0)} MB`).join("; ");

/** The Worker isolate's own heap after a requested GC (bench/lib/workerd.ts says what it counts). */
async function isolateMemory(platform: Platform): Promise<{ jsMb: number; buffersMb: number; totalMb: number } | null> {
  const inspector = await connectInspector(platform.wranglerPid).catch(() => null);
  if (!inspector) return null;
  try {
    return await inspector.heapAfterGc();
  } finally {
    inspector.close();
  }
}
/** The isolate's memory as far as it can be read: JS heap + ArrayBuffers (DevTools) + tfjs' WASM memory (stats). */
const isolateLine = async (platform: Platform) => {
  let m = await isolateMemory(platform);
  for (let attempt = 0; !m && attempt < 3; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    m = await isolateMemory(platform);
  }
  const stats = await request(platform, "GET", "/v1/inference/stats").catch(() => null);
  const wasmMb = (stats?.body?.tfjs?.wasm_heap_bytes ?? 0) / 2 ** 20;
  if (!m) return `isolate: inspector not reachable; tfjs WASM memory ${wasmMb.toFixed(1)} MiB`;
  return `isolate ${(m.totalMb + wasmMb).toFixed(1)} MiB = JS heap ${m.jsMb.toFixed(1)} + ArrayBuffers ${m.buffersMb.toFixed(1)} + tfjs WASM memory ${wasmMb.toFixed(1)} (the decoders' WASM memories, a few MB, are not visible)`;
};

const seededHead = (classes: number, seed: number) => seededHeadOf(DIM, classes, seed);

/** Publishes the builtin backbone (as a runner does) and registers `count` models through the runner protocol. */
async function setUp(platform: Platform, count: number): Promise<string[]> {
  const bundle = await loadNsfwjsBundle();
  const modelJson = withSingleWeightsFile(bundle.modelJson);
  await ok(request(platform, "PUT", `/v1/runner/backbones/${BUILTIN.id}/weights.bin`, { key: RUNNER, body: new Uint8Array(bundle.weightData) }), "publishing weights.bin");
  await ok(request(platform, "PUT", `/v1/runner/backbones/${BUILTIN.id}/model.json`, { key: RUNNER, body: JSON.stringify(modelJson) }), "publishing model.json");

  const dataset = await ok(request(platform, "POST", "/v1/datasets", { json: { name: "bench" } }), "creating the dataset", 201);
  for (const label of ["a", "b"]) for (let i = 0; i < 5; i++) {
    await ok(request(platform, "PUT", `/v1/datasets/${dataset.body.id}/images/${label}/${i}.png`, { body: makePng(16, 16, i + (label === "a" ? 0 : 10)), headers: { "content-type": "image/png" } }), "uploading an image", 201);
  }
  const started = performance.now();
  await mapBounded(indices(count), 8, async () => {
    await ok(request(platform, "POST", "/v1/jobs", { json: { dataset_id: dataset.body.id, backbone: BUILTIN.name } }), "creating a job", 201);
  });
  const modelIds: string[] = [];
  await mapBounded(indices(count), 8, async (i) => {
    const lease = await ok(request(platform, "POST", "/v1/runner/lease", { key: RUNNER, json: { runner_id: `bench-${i % 8}`, wait_s: 0 } }), "leasing a job");
    const { job, lease: { token } } = lease.body;
    const head = seededHead(i === 0 ? 5 : 3 + (i % 5), i + 1);
    const { manifest, weights } = serializeHead(head);
    const headers = { "x-lease-token": token, "content-type": "application/octet-stream" };
    await ok(request(platform, "PUT", `/v1/runner/jobs/${job.id}/artifacts/head.json`, { key: RUNNER, body: JSON.stringify(manifest), headers }), "uploading head.json");
    await ok(request(platform, "PUT", `/v1/runner/jobs/${job.id}/artifacts/head.bin`, { key: RUNNER, body: weights, headers }), "uploading head.bin");
    const done = await ok(request(platform, "POST", `/v1/runner/jobs/${job.id}/complete`, {
      key: RUNNER, json: { lease_token: token, labels: head.labels, metrics: { accuracy: 0, per_class: [], confusion_matrix: [] }, epochs: [], head_bytes: weights.length },
    }), "completing a job");
    modelIds.push(done.body.model_id);
  });
  log(`setup: ${count} models through the runner protocol in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return modelIds.sort();
}

async function startBenchPlatform(sources: string, stateDir: string, port: number): Promise<Platform> {
  const { startPlatform } = (await import(path.join(sources, "scripts", "platform.mjs"))) as { startPlatform: typeof StartPlatform };
  const logFile = path.join(stateDir, "platform.log");
  running = await startPlatform({ port, stateDir, adminKey: ADMIN, runner: false, log: (line: string) => fs.appendFileSync(logFile, line) });
  RUNNER = running.runnerToken;
  return running;
}

async function edge(images: { small: Uint8Array; large: Uint8Array }) {
  const sources = snapshotSources();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bench-predict-"));
  cleanups.push(() => fs.rmSync(stateDir, { recursive: true, force: true }), () => fs.rmSync(sources, { recursive: true, force: true }));
  const port = await freePort();
  let platform = await startBenchPlatform(sources, stateDir, port);
  try {
    const modelIds = await setUp(platform, HEADS + 1);
    const main = modelIds[0]!;
    await platform.stop();
    running = null;

    platform = await startBenchPlatform(sources, stateDir, port);
    log(`\n== edge: wrangler dev (workerd) on 127.0.0.1, builtin ${BUILTIN.name} up to ${featureLayers(BUILTIN.spec).join("+")}, batch 1 ==`);
    log(`after restart (nothing loaded): ${await isolateLine(platform)}; ${memoryLine(platform)}`);
    const jpeg = (bytes: Uint8Array, topK = 3) => request(platform, "POST", `/v1/models/${main}/predict?top_k=${topK}`, { body: bytes, headers: { "content-type": "image/jpeg" } });
    const cold = await jpeg(images.small);
    if (cold.status !== 200) throw new Error(`cold prediction: ${cold.status} ${JSON.stringify(cold.body)}`);
    log(`cold start (first prediction after start, 224x224 JPEG): ${ms(cold.wallMs)} client wall; server ${JSON.stringify(cold.body.timings_ms)}`);
    const stats = await ok(request(platform, "GET", "/v1/inference/stats"), "stats");
    log(`  engine: ${stats.body.backbones.resident.map((b: { engine: string; dim: number }) => `${b.engine}, dim ${b.dim}`).join("; ")}`);

    for (const [name, bytes] of [["224x224 JPEG", images.small], ["1152x864 JPEG (1.0 MP)", images.large]] as const) {
      const walls: number[] = [];
      const server: Record<string, number[]> = {};
      const deadline = performance.now() + SECONDS * 2000;
      await jpeg(bytes);
      for (let i = 0; i < WARM && performance.now() < deadline; i++) {
        const res = await jpeg(bytes);
        if (res.status !== 200) throw new Error(`warm prediction: ${res.status}`);
        walls.push(res.wallMs);
        for (const [k, v] of Object.entries(res.body.timings_ms as Record<string, number>)) (server[k] ??= []).push(v);
      }
      const phases = ["decode", "preprocess", "embed", "head", "total"].map((k) => `${k} ${median(server[k] ?? [0]).toFixed(1)}`).join(", ");
      log(`warm ${name} (${(bytes.length / 1024).toFixed(0)} KB), ${walls.length} sequential requests: p50 ${ms(median(walls))}, p99 ${ms(quantile(walls, 0.99))} client wall; server medians (ms): ${phases}`);
    }

    for (const concurrency of [1, 4, 16]) {
      let done = 0;
      const walls: number[] = [];
      const started = performance.now();
      const until = started + SECONDS * 1000;
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          const res = await jpeg(images.small, 1);
          if (res.status !== 200) throw new Error(`throughput prediction: ${res.status}`);
          walls.push(res.wallMs);
          done++;
        }
      }));
      const seconds = (performance.now() - started) / 1000;
      log(`throughput, 224x224 JPEG, concurrency ${String(concurrency).padStart(2)}: ${(done / seconds).toFixed(1)} img/s (${done} in ${seconds.toFixed(1)} s), latency p50 ${ms(median(walls))}, p99 ${ms(quantile(walls, 0.99))}`);
    }
    log(`after image predictions: ${await isolateLine(platform)}; ${memoryLine(platform)}`);

    const embedding = Array.from({ length: DIM }, (_, i) => ((i * 37) % 100) / 50);
    const headsStarted = performance.now();
    await mapBounded(indices(HEADS), 8, async (i) => {
      await ok(request(platform, "POST", `/v1/models/${modelIds[i + 1]}/predict?top_k=1`, { json: { embeddings: [embedding] } }), "predicting with a head");
    });
    const after = await ok(request(platform, "GET", "/v1/inference/stats"), "stats");
    const { heads, backbones, tfjs } = after.body;
    log(`${HEADS} more models predicted once each (embeddings, concurrency 8) in ${((performance.now() - headsStarted) / 1000).toFixed(1)} s`);
    log(`isolate: ${heads.entries} heads resident, ${(heads.bytes / 2 ** 20).toFixed(1)} MiB (budget ${(heads.maxBytes / 2 ** 20).toFixed(0)} MiB, ${heads.evictions} evicted); backbone weights ${(backbones.resident[0]?.weight_bytes / 2 ** 20).toFixed(1)} MiB; tfjs WASM heap ${(tfjs.wasm_heap_bytes / 2 ** 20).toFixed(1)} MiB, ${tfjs.tensors} tensors`);
    const again = await jpeg(images.small);
    log(`one more 224x224 prediction with ${heads.entries} heads resident: ${ms(again.wallMs)}`);
    log(`with ${HEADS + 1} heads and the backbone resident: ${await isolateLine(platform)}; ${memoryLine(platform)}`);
  } finally {
    await cleanUp();
  }
}

// ---------------------------------------------------------------- the same backbone in Node

async function node(images: { small: Uint8Array; large: Uint8Array }) {
  log(`\n== Node ${process.version}, same backbone and images, batch 1, in-process ==`);
  const codecs = await getNodeCodecs();
  const spec = preprocessSpecOf(BUILTIN.spec);
  const inputs: Float32Array[] = [];
  for (const [name, bytes] of [["224x224 JPEG", images.small], ["1.0 MP JPEG", images.large]] as const) {
    const decodeTimes: number[] = [], preprocessTimes: number[] = [];
    for (let i = 0; i < 20; i++) {
      let t = performance.now();
      const decoded = await decodeImage(bytes, codecs);
      decodeTimes.push(performance.now() - t);
      t = performance.now();
      const input = preprocessImage(decoded, spec);
      preprocessTimes.push(performance.now() - t);
      if (i === 0) inputs.push(input);
    }
    log(`${name}: decode p50 ${ms(median(decodeTimes))}, resize + normalise p50 ${ms(median(preprocessTimes))}`);
  }
  const bundle = await loadNsfwjsBundle();
  const feature = { feature_layers: featureLayers(BUILTIN.spec), pooling: BUILTIN.spec.pooling, input_size: BUILTIN.spec.input_size };
  const time = async (name: string, embed: (x: Float32Array) => Float32Array | Promise<Float32Array>, rounds = 30) => {
    const first = performance.now();
    await embed(inputs[0]!);
    const firstMs = performance.now() - first;
    for (let i = 0; i < 3; i++) await embed(inputs[i % 2]!);
    const times: number[] = [];
    const deadline = performance.now() + SECONDS * 1000;
    for (let i = 0; i < rounds && performance.now() < deadline; i++) {
      const t = performance.now();
      await embed(inputs[i % 2]!);
      times.push(performance.now() - t);
    }
    log(`${name}: first run ${ms(firstMs)}, warm p50 ${ms(median(times))}, p99 ${ms(quantile(times, 0.99))} (${times.length} runs)`);
  };

  const core = await import("@tensorflow/tfjs-core");
  const layers = await import("@tensorflow/tfjs-layers");
  await import("@tensorflow/tfjs-backend-wasm");
  await core.setBackend("wasm");
  const tf = { ...core, ...layers };
  const { buildFeatureExtractor } = await import("../../shared/backbone/feature-extractor");
  const { compileFusedBackbone } = await import("../../workers/inference/fused-backbone");
  let t = performance.now();
  const extractor = await buildFeatureExtractor(tf as never, bundle, feature);
  log(`tfjs WASM (SIMD, 1 thread), tfjs-layers build: ${ms(performance.now() - t)}`);
  await time("tfjs WASM, layers model (the runner's tfjs path)", (x) => {
    const y = tf.tidy(() => extractor.embed(tf.tensor4d(x, [1, 224, 224, 3])));
    const data = y.dataSync() as Float32Array;
    y.dispose();
    return data;
  });
  extractor.dispose();
  t = performance.now();
  const fused = compileFusedBackbone(core, bundle.modelJson, bundle.weightData, feature);
  log(`tfjs WASM, fused compile from model.json: ${ms(performance.now() - t)}`);
  await time("tfjs WASM, fused (what the Worker runs)", (x) => fused.embed(x));
  fused.dispose();

  for (const threads of [1, 2]) {
    try {
      const { createOnnxEngine } = await import("../../gpu-runner/src/engine/onnx-engine");
      t = performance.now();
      const engine = await createOnnxEngine(bundle, feature, { threads, maxBatch: 1, log: () => {} });
      log(`onnxruntime-node (CPU EP, ${threads} thread${threads > 1 ? "s" : ""}) conversion + session: ${ms(performance.now() - t)}`);
      await time(`onnxruntime-node, ${threads} thread${threads > 1 ? "s" : ""}`, (x) => engine.embed(x, 1), 60);
      await engine.close();
    } catch (error) {
      log(`onnxruntime-node (${threads} threads): unavailable: ${(error as Error).message}`);
    }
  }
}

const load = os.loadavg().map((v) => v.toFixed(2)).join(" ");
log(`bench/predict: ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), load average ${load} at start; heads ${HEADS}, warm ${WARM} requests, ${SECONDS} s per throughput phase`);
const images = await benchImages();
log(`images: ${images.source}; 224x224 JPEG ${images.small.length} bytes, 1152x864 JPEG ${images.large.length} bytes`);
try {
  await edge(images);
  if (!SKIP_NODE) await node(images);
  log(`\nload average at end: ${os.loadavg().map((v) => v.toFixed(2)).join(" ")}`);
} finally {
  clearTimeout(watchdog);
  await cleanUp();
}
process.exit(0);
