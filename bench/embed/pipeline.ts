/**
 * The runner's embedding pipeline against its engine alone, same backbone, same process, side by side:
 *
 * - engine only: batches of 32 already-decoded flowers5 photos through the engine (median of `--rounds` batches);
 * - end to end: `embedDataset` (gpu-runner/src/embed-dataset.ts) on the same photos, with the runner's decode pool
 *   (one thread per core) and an in-memory API client that answers at once (no HTTP: bench/scale measures the
 *   network too), so the figure is the runner's own pipeline: batching, decoding on the pool, embedding, records.
 *
 * For the builtin NSFW MobileNetV2 and the default MobileNet v1 0.75 (onnx engine, `--threads`, default all cores).
 * The engine-only figure is taken before and after the end-to-end run (the box is shared: the spread says how much
 * the load moved). `--copies N` embeds each photo N times as distinct files (a JPEG comment makes each one new).
 *
 *   npx tsx bench/embed/pipeline.ts [--copies 2] [--rounds 5] [--threads N] [--decode-threads N] [--backbones mobilenet_v2,mobilenet_v1_075]
 *                                   [--decode-ahead 1,2]   (one end-to-end run per setting; the runner uses DECODE_AHEAD)
 *
 * On 2 cores the decode pool and the engine share the same two cores: the ratio cannot reach 1 here unless decoding
 * is free. The last column says where the cores went: CPU time per image of the engine alone over that of the whole
 * pipeline (all threads of this process) is the best ratio possible when both keep every core busy; it does not
 * depend on the load from other processes the way the img/s figures do. On a GPU host the engine's CPU share is
 * near zero and the decode pool has all the cores, so the pipeline keeps up as long as the pool decodes faster than
 * the GPU embeds (16 cores × ~100 photos/s per core here).
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { featureSpecOf, findBuiltinBackbone, preprocessSpecOf } from "../../shared/catalog";
import { imageToTensorInput, inputSizes, inputTensorLength } from "../../shared/image/preprocess";
import { sha256Hex } from "../../shared/ids";
import type { RunnerClient } from "../../gpu-runner/src/api-client";
import { loadBuiltinBundle } from "../../gpu-runner/src/backbones/job-backbone";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { DecodePool } from "../../gpu-runner/src/decode/decode-pool";
import { withComment } from "../scale/generate";
import { DECODE_AHEAD, embedDataset } from "../../gpu-runner/src/embed-dataset";
import { createEngine } from "../../gpu-runner/src/engine/index";
import { FLOWERS_DIR } from "./flowers";

const arg = (name: string, fallback: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1]! : fallback);
const copies = Number(arg("copies", "2"));
const rounds = Number(arg("rounds", "5"));
const threads = Number(arg("threads", String(os.availableParallelism())));
/** Decode pool threads (default: as many as the engine's, as the runner does). */
const decodeThreads = Number(arg("decode-threads", String(threads)));
const backbones = arg("backbones", "mobilenet_v2,mobilenet_v1_075").split(",");
/** Batches decoded ahead of the backbone, one end-to-end run each (embed-dataset.ts DECODE_AHEAD is the runner's). */
const aheads = arg("decode-ahead", `1,${DECODE_AHEAD}`).split(",").map(Number);
const load = () => os.loadavg().map((value) => value.toFixed(2)).join(" ");

if (!existsSync(FLOWERS_DIR)) {
  console.log(`skipped: ${FLOWERS_DIR} not found (set EDGETUNE_SHARED_DIR)`);
  process.exit(0);
}

const originals = readdirSync(FLOWERS_DIR).sort().flatMap((label) =>
  readdirSync(path.join(FLOWERS_DIR, label)).filter((file) => /\.jpe?g$/i.test(file)).sort().map((file) => new Uint8Array(readFileSync(path.join(FLOWERS_DIR, label, file)))),
);
const photos = new Map<string, Uint8Array>();
for (let copy = 0; copy < copies; copy++) {
  for (const [index, jpeg] of originals.entries()) {
    const bytes = copy === 0 ? jpeg : withComment(jpeg, `copy ${copy} of ${index}`);
    photos.set(await sha256Hex(bytes), bytes);
  }
}

/** The three calls embedDataset makes, answered from memory. */
const client = {
  lookupEmbeddings: async () => ({ records: new Uint8Array(0), fromPack: false }),
  getImages: async (_job: string, _lease: string, shas: string[]) => new Map(shas.map((sha) => [sha, photos.get(sha)!.slice()] as const)),
  storeEmbeddings: async () => undefined,
} as unknown as RunnerClient;

const codecs = await getNodeCodecs();
const pool = new DecodePool({ threads: decodeThreads });
await pool.ready;
console.log(`${photos.size} photos (${copies} x flowers5), onnx engine on ${threads} threads, decode pool on ${decodeThreads}, ${os.availableParallelism()} cores; load average ${load()}`);
console.log("| backbone | batches decoded ahead | engine only, before (img/s) | end to end (img/s) | engine only, after (img/s) | end to end / mean engine only | e2e breakdown (ms summed over batches: fetch, decode, backbone wait) | CPU ms per image: engine only / end to end = the ceiling of the ratio when both use every core |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
for (const name of backbones) {
  const entry = findBuiltinBackbone(name);
  if (!entry) throw new Error(`unknown builtin backbone ${name}`);
  const engine = await createEngine(await loadBuiltinBundle(entry.id), featureSpecOf(entry.spec), { engine: "onnx", threads });
  const preprocess = preprocessSpecOf(entry.spec);
  const perImage = inputTensorLength(preprocess);
  const batch = new Float32Array(32 * perImage);
  for (let i = 0; i < 32; i++) batch.set(await imageToTensorInput(originals[i * 7]!, preprocess, codecs), i * perImage);
  // A backbone fed at several sizes runs its batches already split by size, as embedDataset hands them over: the
  // engine-only figure must not pay for a split that the pipeline does not make.
  const lengths = inputSizes(preprocess).map(([h, w]) => h * w * 3);
  const parts = lengths.map((length, k) => {
    const part = new Float32Array(32 * length);
    const offset = lengths.slice(0, k).reduce((a, b) => a + b, 0);
    for (let i = 0; i < 32; i++) part.set(batch.subarray(i * perImage + offset, i * perImage + offset + length), i * length);
    return part;
  });
  const embedBatch = () => (engine.embedParts && parts.length > 1 ? engine.embedParts(parts, 32) : engine.embed(batch, 32));
  let engineCpuMsPerImage = 0;
  const engineOnly = async () => {
    await embedBatch();
    const times: number[] = [];
    const cpuBefore = process.cpuUsage();
    for (let round = 0; round < rounds; round++) {
      const started = performance.now();
      await embedBatch();
      times.push(performance.now() - started);
    }
    const cpu = process.cpuUsage(cpuBefore);
    engineCpuMsPerImage = (cpu.user + cpu.system) / 1000 / (32 * rounds);
    times.sort((a, b) => a - b);
    return 32_000 / times[Math.floor(times.length / 2)]!;
  };
  const before = await engineOnly();
  const engineCpu = engineCpuMsPerImage;
  const runs: Array<{ ahead: number; rate: number; breakdown: string; cpuMsPerImage: number }> = [];
  for (const ahead of aheads) {
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const result = await embedDataset({
      client, jobId: "bench", leaseToken: "bench", cacheKey: "0".repeat(64),
      images: [...photos.keys()].map((sha, index) => ({ sha256: sha, path: `photo-${index}.jpg` })),
      preprocess, engine, codecs, decodePool: pool, maxPixels: 50_000_000, decodeAhead: ahead,
      signal: new AbortController().signal, onProgress: () => undefined, log: () => undefined,
    });
    const rate = (result.computed * 1000) / (performance.now() - started);
    const cpu = process.cpuUsage(cpuBefore);
    const b = result.breakdownMs;
    runs.push({ ahead, rate, breakdown: `${b.fetch}, ${b.decode}, ${b.backboneWait}`, cpuMsPerImage: (cpu.user + cpu.system) / 1000 / result.computed });
  }
  const after = await engineOnly();
  await engine.close();
  const engineMean = (before + after) / 2;
  for (const run of runs) {
    console.log(`| ${name} (${engine.dim}-d) | ${run.ahead} | ${before.toFixed(1)} | ${run.rate.toFixed(1)} | ${after.toFixed(1)} | ${((100 * run.rate) / engineMean).toFixed(0)}% | ${run.breakdown} | ${engineCpu.toFixed(1)} / ${run.cpuMsPerImage.toFixed(1)} = ${((100 * engineCpu) / run.cpuMsPerImage).toFixed(0)}% |`);
  }
}
await pool.close();
console.log(`load average ${load()}`);
