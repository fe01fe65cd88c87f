/**
 * The training benchmark, through the real local platform (wrangler dev + one runner), on ../shared/datasets/flowers5
 * with a fixed split (per class, sorted file names, every 4th file held out as val/ → 300 train / 100 val):
 * for the builtin backbone and for ../shared/backbones/mobilenet_v1_025_224 imported as a user backbone, a first job
 * (cold embedding cache) and a retrain (warm cache); then the PyTorch peer's embedding throughput, alone, same run.
 *
 *   npx tsx bench/train/run.ts [--engine auto|onnx|tfjs-wasm|...] [--head linear|mlp] [--epochs N] [--no-pytorch]
 *
 * Prints numbers; it is not a test. Times are wall-clock from POST /v1/jobs to `succeeded`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { zipSync } from "fflate";
import { startPlatform } from "../../scripts/platform.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const SHARED = process.env.EDGETUNE_SHARED_DIR ?? path.resolve(here, "../../../shared");
const FLOWERS = path.join(SHARED, "datasets", "flowers5");
const V1 = path.join(SHARED, "backbones", "mobilenet_v1_025_224");
const arg = (name: string, fallback: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1]! : fallback);
const engine = arg("engine", "auto");
const headType = arg("head", "default");
const epochs = arg("epochs", "");

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

function folderZip(dir: string): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  for (const file of readdirSync(dir)) if (file === "model.json" || file.startsWith("group")) files[file] = readFileSync(path.join(dir, file));
  return zipSync(files);
}

const stateDir = path.join(here, "../out/train-state");
rmSync(stateDir, { recursive: true, force: true });
const platform = await startPlatform({ port: Number(process.env.PORT ?? 8797), stateDir, runner: ["--engine", engine], quiet: !process.env.VERBOSE });
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

  const backbones: Array<{ label: string; backbone?: string }> = [{ label: "builtin mobilenet_v2 (nsfwjs)" }];
  if (existsSync(V1)) {
    const form = new FormData();
    form.set("spec", JSON.stringify({ name: "mobilenet_v1_025_imagenet", feature_layer: ["conv_pw_11_relu", "conv_pw_12_relu"], input_size: [224, 224], normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, pooling: "avg+max" }));
    form.set("model", new Blob([folderZip(V1) as Uint8Array<ArrayBuffer>], { type: "application/zip" }), "mobilenet_v1.zip");
    const imported = await call("POST", "/v1/backbones", { body: form });
    backbones.push({ label: "ImageNet mobilenet_v1_025 (user, conv_pw_11+12 avg+max)", backbone: imported.id });
  }

  const head = headType === "default" ? undefined : headType === "mlp" ? { type: "mlp" } : { type: "linear" };
  const hyperparameters = epochs ? { epochs: Number(epochs) } : undefined;
  for (const { label, backbone } of backbones) {
    const results: any[] = [];
    for (const round of ["first", "retrain"]) {
      t = Date.now();
      const job = await call("POST", "/v1/jobs", { json: { dataset_id: dataset.id, backbone, head, hyperparameters } });
      const done = await poll(async () => {
        const j = await call("GET", `/v1/jobs/${job.id}`);
        return ["succeeded", "failed", "canceled"].includes(j.status) ? j : null;
      }, 900_000, `job ${job.id}`);
      const wallMs = Date.now() - t;
      if (done.status !== "succeeded") throw new Error(`job ${job.id} ${done.status}: ${done.error}`);
      const model = await call("GET", `/v1/models/${done.model_id}`);
      results.push({ round, wallMs, job: done, model });
    }
    const [first, retrain] = results;
    const e = first.job.metrics.embeddings;
    const embedMs = first.job.metrics.timings_ms.embedding_ms;
    rows.push(`| ${label} | ${e.engine} | ${e.computed} | ${((e.computed * 1000) / embedMs).toFixed(1)} | ${(first.wallMs / 1000).toFixed(2)} | ${(retrain.wallMs / 1000).toFixed(2)} | ${(first.wallMs / retrain.wallMs).toFixed(1)}x | ${retrain.job.metrics.embeddings.computed} | ${(first.model.metrics.accuracy * 100).toFixed(1)}% | ${(first.model.metrics.expected_calibration_error ?? NaN).toFixed(3)} | ${first.job.metrics.epochs.length} |`);
    console.log(`${label}: embedding breakdown ${JSON.stringify(e.breakdown_ms)}; runner timings first ${JSON.stringify(first.job.metrics.timings_ms)}, retrain ${JSON.stringify(retrain.job.metrics.timings_ms)}`);
  }
} finally {
  await platform.stop();
}
console.log("\n| backbone | engine | images embedded | runner img/s (fetch+decode+embed+store) | first job s | retrain s | speed-up | retrain embedded | held-out accuracy | ECE | epochs |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const row of rows) console.log(row);

if (!process.argv.includes("--no-pytorch")) {
  // The peer, alone (the platform is stopped): Debian's PyTorch, MobileNetV2 224, 2 threads.
  const ensure = spawnSync("bash", [path.join(here, "ensure-pytorch.sh")], { stdio: "inherit" });
  if (ensure.status === 0) spawnSync("/usr/bin/python3", [path.join(here, "pytorch_embed.py"), FLOWERS], { stdio: "inherit" });
  else console.log("pytorch: not available (ensure-pytorch.sh failed)");
}
