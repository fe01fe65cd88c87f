/**
 * The training benchmark, through the real local platform (wrangler dev + one runner), on ../shared/datasets/flowers5
 * with a fixed split (per class, sorted file names, every 4th file held out as val/ → 300 train / 100 val). Side by
 * side in one run:
 *   1. the old default: builtin `mobilenet_v2` (nsfwjs) with a fixed linear head;
 *   2. the new default backbone (`mobilenet_v1_075`) with a fixed linear head;
 *   3. no backbone and no head given: the default backbone with `auto` (CV search);
 *   4. `auto` + augmentation (`--views K`, default 4 views of each training image, and flip averaging);
 *   5. fine-tuning the last block (`fine_tune: {"blocks": 1}`) when the API offers it (its OpenAPI document lists the
 *      field), otherwise a row that says it is not available;
 * each with its wall time, embeddings computed (views apart), held-out accuracy, ECE and, for `auto`, the CV search
 * time (the runner's selection step). The `auto` models' held-out accuracy is then measured AT THE EDGE (every val/
 * image through POST /v1/models/:id/predict) against the reported one. Then the PyTorch peer's embedding throughput,
 * alone. The load average is printed beside the table: the machine is shared.
 *
 *   npx tsx bench/train/run.ts [--engine auto|onnx|tfjs-wasm|...] [--epochs N] [--views K] [--no-pytorch] [--no-edge]
 *
 * Prints numbers; it is not a test. Times are wall-clock from POST /v1/jobs to `succeeded`.
 */
import { spawnSync } from "node:child_process";
import { loadavg } from "node:os";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { zipSync } from "fflate";
import { freePort, startPlatform } from "../../scripts/platform.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const SHARED = process.env.EDGETUNE_SHARED_DIR ?? path.resolve(here, "../../../shared");
const FLOWERS = path.join(SHARED, "datasets", "flowers5");
const arg = (name: string, fallback: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1]! : fallback);
const engine = arg("engine", "auto");
const epochs = arg("epochs", "");
const views = Number(arg("views", "4"));

if (!existsSync(FLOWERS)) {
  console.log(`skipped: ${FLOWERS} not found (set EDGETUNE_SHARED_DIR)`);
  process.exit(0);
}

function flowersZip(): { zip: Uint8Array; count: number } {
  const files: Record<string, [Uint8Array, { level: 0 }]> = {};
  let count = 0;
  for (const label of readdirSync(FLOWERS).sort()) {
    readdirSync(path.join(FLOWERS, label)).filter((f) => /\.jpe?g$/i.test(f)).sort().forEach((file, index) => {
      files[`${index % 4 === 3 ? "val" : "train"}/${label}/${file}`] = [readFileSync(path.join(FLOWERS, label, file)), { level: 0 }];
      count++;
    });
  }
  return { zip: zipSync(files), count };
}


const stateDir = path.join(here, "../out/train-state");
rmSync(stateDir, { recursive: true, force: true });
const platform = await startPlatform({ port: Number(process.env.PORT ?? (await freePort())), stateDir, runner: ["--engine", engine], quiet: !process.env.VERBOSE });
const call = async (method: string, route: string, init: { json?: unknown; body?: BodyInit; type?: string } = {}) => {
  const headers: Record<string, string> = { authorization: `Bearer ${platform.adminKey}` };
  if (init.json !== undefined) headers["content-type"] = "application/json";
  else if (init.type) headers["content-type"] = init.type;
  const response = await fetch(platform.url + route, { method, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body });
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${JSON.stringify(body)}`);
  return body as any;
};
const poll = async <T>(fn: () => Promise<T | null>, timeoutMs: number, what: string): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

const rows: string[] = [];
const edgeLines: string[] = [];
const valFiles: Array<{ label: string; bytes: Uint8Array; path: string }> = [];
for (const label of readdirSync(FLOWERS).sort()) {
  readdirSync(path.join(FLOWERS, label)).filter((f) => /\.jpe?g$/i.test(f)).sort().forEach((file, index) => {
    if (index % 4 === 3) valFiles.push({ label, path: `val/${label}/${file}`, bytes: readFileSync(path.join(FLOWERS, label, file)) });
  });
}
try {
  const { zip, count } = flowersZip();
  const dataset = await call("POST", "/v1/datasets", { json: { name: "flowers5" } });
  let t = Date.now();
  await call("POST", `/v1/datasets/${dataset.id}/archive`, { body: zip as Uint8Array<ArrayBuffer>, type: "application/zip" });
  const ready = await poll(async () => {
    const d = await call("GET", `/v1/datasets/${dataset.id}`);
    return d.status === "ingesting" ? null : d;
  }, 300_000, "ingest");
  console.log(`dataset: ${ready.status}, ${ready.image_count}/${count} images, ${ready.labels.map((l: any) => `${l.name} ${l.train}+${l.val}`).join(", ")}, ingest ${Date.now() - t} ms`);

  const hyperparameters = epochs ? { epochs: Number(epochs) } : undefined;
  const openapi = await (await fetch(`${platform.url}/openapi.json`)).json();
  const fineTuneOffered = JSON.stringify(openapi.components?.schemas?.CreateJobRequest ?? {}).includes("fine_tune");
  const runs: Array<{ label: string; backbone?: string; head?: unknown; augmentation?: unknown; fine_tune?: unknown; unavailable?: string }> = [
    { label: "old default: mobilenet_v2 (nsfwjs) + linear", backbone: "mobilenet_v2", head: { type: "linear" } },
    { label: "new default backbone mobilenet_v1_075 + linear", head: { type: "linear" } },
    { label: "no backbone, no head: mobilenet_v1_075 + auto", head: undefined },
    { label: `auto + augmentation (${views} views, flip averaging)`, augmentation: { views, tta: "flip" } },
    fineTuneOffered
      ? { label: "auto + fine-tuning 1 block", fine_tune: { blocks: 1 } }
      : { label: "fine-tuning 1 block", unavailable: "not available: the API has no fine_tune field yet (issue 11, item 4, not on main)" },
  ];
  const autoModels: Array<{ label: string; model: any }> = [];
  for (const run of runs) {
    if (run.unavailable) {
      rows.push(`| ${run.label} | - | - | - | ${run.unavailable} | - | - | - | - |`);
      continue;
    }
    t = Date.now();
    const job = await call("POST", "/v1/jobs", { json: { dataset_id: dataset.id, backbone: run.backbone, head: run.head, hyperparameters, augmentation: run.augmentation, fine_tune: run.fine_tune } });
    const done = await poll(async () => {
      const j = await call("GET", `/v1/jobs/${job.id}`);
      return ["succeeded", "failed", "canceled"].includes(j.status) ? j : null;
    }, 900_000, `job ${job.id}`);
    const wallMs = Date.now() - t;
    if (done.status !== "succeeded") throw new Error(`job ${job.id} ${done.status}: ${done.error}`);
    const model = await call("GET", `/v1/models/${done.model_id}`);
    const e = done.metrics.embeddings;
    const timings = done.metrics.timings_ms;
    const selection = model.metrics.selection;
    const chosen = selection ? `${selection.chosen.head.type} ${JSON.stringify(selection.chosen.hyperparameters)} (CV ${(selection.chosen.cv_accuracy_mean * 100).toFixed(1)}% ± ${(selection.chosen.cv_accuracy_std * 100).toFixed(1)})` : "-";
    const embeddedCell = `${e.computed}${e.views ? ` + ${e.views.computed} views` : ""}`;
    rows.push(`| ${run.label} | ${e.engine} | ${embeddedCell} | ${(wallMs / 1000).toFixed(2)} | ${(model.metrics.accuracy * 100).toFixed(1)}% | ${(model.metrics.ece ?? model.metrics.expected_calibration_error).toFixed(3)} | ${timings.training_ms} | ${timings.selection_ms ?? "-"} | ${chosen} |`);
    console.log(`${run.label}: runner timings ${JSON.stringify(timings)}; load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    if (selection) {
      autoModels.push({ label: run.label, model });
      for (const candidate of selection.candidates) console.log(`  candidate ${candidate.head.type} ${JSON.stringify(candidate.hyperparameters)}: CV ${(candidate.cv_accuracy_mean * 100).toFixed(1)}% ± ${(candidate.cv_accuracy_std * 100).toFixed(1)}`);
    }
  }

  for (const { label, model } of process.argv.includes("--no-edge") ? [] : autoModels) {
    // The held-out images through the edge, one request each, against the runner's reported per-image predictions.
    const evaluation = await (await fetch(`${platform.url}/v1/models/${model.id}/files/evaluation.json`, { headers: { authorization: `Bearer ${platform.adminKey}` } })).json() as { images: Array<{ path: string; predicted: string; probability: number }> };
    const reported = new Map(evaluation.images.map((image) => [image.path, image]));
    let correct = 0;
    let agree = 0;
    let maxDiff = 0;
    const latencies: number[] = [];
    for (const file of valFiles) {
      const started = performance.now();
      const answer = await call("POST", `/v1/models/${model.id}/predict?top_k=1`, { body: file.bytes as Uint8Array<ArrayBuffer>, type: "image/jpeg" });
      latencies.push(performance.now() - started);
      const top = answer.predictions[0][0];
      if (top.label === file.label) correct++;
      const runner = reported.get(file.path);
      if (runner && runner.predicted === top.label) {
        agree++;
        maxDiff = Math.max(maxDiff, Math.abs(runner.probability - top.probability));
      }
    }
    latencies.sort((a, b) => a - b);
    edgeLines.push(`edge (${label}, model ${model.id}): held-out accuracy ${((correct / valFiles.length) * 100).toFixed(1)}% at the edge vs ${(model.metrics.accuracy * 100).toFixed(1)}% reported; top-1 agrees with the runner on ${agree}/${valFiles.length}, max |probability difference| ${maxDiff.toExponential(2)}; client wall p50 ${latencies[Math.floor(latencies.length / 2)]!.toFixed(1)} ms`);
  }
} finally {
  await platform.stop();
}
console.log("\n| run | engine | images embedded | job wall s | held-out accuracy | ECE | head training ms | CV search ms | auto chose |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const row of rows) console.log(row);
for (const line of edgeLines.length ? edgeLines : ["edge: skipped"]) console.log(line);
console.log(`load average (1, 5, 15 min) at the end: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

if (!process.argv.includes("--no-pytorch")) {
  // The peer, alone (the platform is stopped): Debian's PyTorch, MobileNetV2 224, 2 threads.
  const ensure = spawnSync("bash", [path.join(here, "ensure-pytorch.sh")], { stdio: "inherit" });
  if (ensure.status === 0) spawnSync("/usr/bin/python3", [path.join(here, "pytorch_embed.py"), FLOWERS], { stdio: "inherit" });
  else console.log("pytorch: not available (ensure-pytorch.sh failed)");
}
