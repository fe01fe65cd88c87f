/**
 * The exported bundle runs anywhere: on the real local platform (wrangler dev + a runner) a model is trained on the
 * default builtin backbone, `edgetune export MODEL_ID DIR` writes the self-contained folder, and that folder predicts
 * held-out images in plain Node (its own `node example.mjs`) and in headless Chromium (its own browser.html, tfjs
 * loaded from node_modules as `npm install` would put it), within 1e-4 of the API's predict for the same bytes.
 *
 * Photos: flowers5 (../shared/datasets/flowers5, 16 per class trained, 2 per class held out) when present, else
 * generated coloured images plus the EXIF-rotated JPEG and the transparent PNG fixtures. Chromium: Debian's
 * `apt-get install chromium` (or CHROMIUM_PATH); without one that part skips, saying so. Prints the bundle's size,
 * the export's wall time and the largest difference from the API for each runtime.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { zipSync } from "fflate";
import { afterAll, beforeAll, describe, test } from "vitest";
import { ROOT } from "../../scripts/platform.mjs";
import { FIXTURE_JPEG_BASE64, FIXTURE_PNG_BASE64 } from "../fixtures/parity-images";
import { makeColouredPng } from "../fixtures/images";
import { api, freePort, platformLogTail, startTestPlatform, waitFor, type Platform } from "./platform";

const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) => p && fs.existsSync(p));
const FLOWERS = path.resolve(ROOT, "../shared/datasets/flowers5");
const HAS_FLOWERS = fs.existsSync(FLOWERS);
const TOLERANCE = 1e-4;
const OUT = path.join(ROOT, "test-output", "bundle-e2e"); // inside the repository: example.mjs finds @tensorflow/tfjs in its node_modules

if (!CHROMIUM) console.warn("bundle in Chromium skipped: no Chromium found. Install it with `apt-get install chromium` (or set CHROMIUM_PATH).");
if (!HAS_FLOWERS) console.warn("bundle e2e uses generated images: ../shared/datasets/flowers5 is absent.");

type Predictions = { label: string; probability: number }[][];

let platform: Platform;
let home: string;
let modelId = "";
let exportDir = "";
/** Held-out image file name → bytes. */
const heldOut: Record<string, Uint8Array> = {};
let apiPredictions: Predictions = [];
let labelCount = 0;

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

const cliEnv = () => ({ PATH: process.env.PATH, HOME: home, EDGETUNE_CONFIG_DIR: path.join(home, "config") });
const cli = (args: string[]) => run(process.execPath, [path.join(ROOT, "cli/bin/edgetune.mjs"), ...args], { cwd: ROOT, env: cliEnv() });

/** label → file name → bytes: the training set, and the held-out photos put aside in `heldOut`. */
function trainingFiles(): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  if (HAS_FLOWERS) {
    for (const label of fs.readdirSync(FLOWERS).sort()) {
      const names = fs.readdirSync(path.join(FLOWERS, label)).filter((n) => /\.jpe?g$/i.test(n)).sort();
      names.slice(0, 16).forEach((name) => (files[`${label}/${name}`] = fs.readFileSync(path.join(FLOWERS, label, name))));
      names.slice(-2).forEach((name) => (heldOut[`${label}-${name}`] = fs.readFileSync(path.join(FLOWERS, label, name))));
    }
    return files;
  }
  const colours: Record<string, [number, number, number]> = { red: [200, 40, 40], blue: [40, 60, 200], green: [40, 170, 60] };
  let seed = 1;
  for (const [label, rgb] of Object.entries(colours)) {
    for (let i = 0; i < 8; i++) files[`${label}/${label}-${i}.png`] = makeColouredPng(48, 40, rgb, seed++);
    heldOut[`${label}-held-out.png`] = makeColouredPng(52, 44, rgb, 1000 + seed++);
  }
  heldOut["exif-rotated.jpg"] = Buffer.from(FIXTURE_JPEG_BASE64, "base64");
  heldOut["transparent.png"] = Buffer.from(FIXTURE_PNG_BASE64, "base64");
  return files;
}

/** Largest |p_bundle - p_api| over every image and label. */
function maxAbsDiff(bundle: Predictions, reference: Predictions): number {
  assert.equal(bundle.length, reference.length);
  let max = 0;
  bundle.forEach((row, index) => {
    const expected = new Map(reference[index]!.map((p) => [p.label, p.probability]));
    assert.equal(row.length, expected.size, `image ${index}: ${row.length} labels, the API gave ${expected.size}`);
    for (const { label, probability } of row) max = Math.max(max, Math.abs(probability - expected.get(label)!));
    assert.equal(row[0]!.label, reference[index]![0]!.label, `image ${index}: top label`);
  });
  return max;
}

beforeAll(async () => {
  platform = await startTestPlatform({ runner: true });
  home = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bundle-e2e-"));
  const dataset = await api(platform, "POST", "/v1/datasets", { json: { name: "bundle-e2e" } });
  assert.equal(dataset.status, 201);
  const upload = await api(platform, "POST", `/v1/datasets/${dataset.body.id}/archive`, { body: zipSync(trainingFiles(), { level: 0 }), headers: { "content-type": "application/zip" } });
  assert.equal(upload.status, 202, JSON.stringify(upload.body));
  await waitFor("dataset ready", async () => ((await api(platform, "GET", `/v1/datasets/${dataset.body.id}`)).body.status === "ready" ? true : null), 120_000);
  const job = await api(platform, "POST", "/v1/jobs", { json: { dataset_id: dataset.body.id } });
  assert.equal(job.status, 201, JSON.stringify(job.body));
  const done = await waitFor("job finished", async () => {
    const j = (await api(platform, "GET", `/v1/jobs/${job.body.id}`)).body;
    return ["succeeded", "failed", "canceled"].includes(j.status) ? j : null;
  }, 400_000).catch((error) => assert.fail(`${error.message}\n${platformLogTail(platform)}`));
  assert.equal(done.status, "succeeded", JSON.stringify(done).slice(0, 800));
  modelId = done.model_id;
  const model = await api(platform, "GET", `/v1/models/${modelId}`);
  labelCount = model.body.labels.length;
  // The API's answer for the held-out bytes, every label (top_k = all), one request.
  const predicted = await api(platform, "POST", `/v1/models/${modelId}/predict?top_k=${labelCount}`, { json: { images: Object.values(heldOut).map((b) => Buffer.from(b).toString("base64")) } });
  assert.equal(predicted.status, 200, JSON.stringify(predicted.body));
  apiPredictions = predicted.body.predictions;
}, 600_000);

afterAll(async () => {
  await platform?.stop();
});

describe("the exported bundle", { timeout: 300_000 }, () => {
  test("edgetune export writes a self-contained folder: backbone and head weights, labels, edgetune.mjs, decoders, examples", async () => {
    const login = await cli(["login", "--url", platform.url, "--key", platform.adminKey, "--json"]);
    assert.equal(login.code, 0, login.stderr);
    exportDir = path.join(OUT, modelId);
    fs.rmSync(exportDir, { recursive: true, force: true });
    const started = performance.now();
    const exported = await cli(["export", modelId, exportDir, "--json"]);
    const exportMs = performance.now() - started;
    assert.equal(exported.code, 0, exported.stderr);
    const { dir, files } = JSON.parse(exported.stdout);
    assert.equal(dir, exportDir);
    for (const file of ["edgetune.json", "labels.json", "backbone/model.json", "backbone/weights.bin", "head/head.json", "head/head.bin", "edgetune.mjs", "mozjpeg_dec.wasm", "squoosh_png_bg.wasm", "example.mjs", "browser.html", "README.md", "package.json"]) {
      assert.ok(files.includes(file), `export lists ${file}`);
      assert.ok(fs.existsSync(path.join(exportDir, file)), `${file} written`);
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(exportDir, "edgetune.json"), "utf8"));
    assert.equal(manifest.model_id, modelId);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(exportDir, "labels.json"), "utf8")), manifest.labels);
    const bytes = files.reduce((sum: number, f: string) => sum + fs.statSync(path.join(exportDir, f)).size, 0);
    console.log(`bundle of ${modelId} (backbone ${manifest.backbone.name}): ${files.length} files, ${bytes} bytes; export ${exportMs.toFixed(0)} ms; load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  });

  test(`node example.mjs predicts the held-out images within ${TOLERANCE} of the API`, async () => {
    const imagesDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-held-out-"));
    const paths = Object.entries(heldOut).map(([name, bytes]) => {
      fs.writeFileSync(path.join(imagesDir, name), bytes);
      return path.join(imagesDir, name);
    });
    const started = performance.now();
    const result = await run(process.execPath, ["example.mjs", ...paths], { cwd: exportDir });
    assert.equal(result.code, 0, result.stderr);
    const output = JSON.parse(result.stdout);
    assert.equal(output.model_id, modelId);
    // example.mjs asks for the default top_k (5): compare on as many labels as that covers.
    const reference = apiPredictions.map((row) => row.slice(0, Math.min(5, labelCount)));
    const diff = maxAbsDiff(output.predictions, reference);
    console.log(`Node (tfjs cpu): ${paths.length} images in ${(performance.now() - started).toFixed(0)} ms, max |p - p_api| = ${diff.toExponential(2)}; load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    assert.ok(diff <= TOLERANCE, `max abs difference ${diff}`);
  });

  describe.skipIf(!CHROMIUM)("in headless Chromium", () => {
    test(`browser.html predicts the held-out images within ${TOLERANCE} of the API`, async () => {
      // A static server for the folder (as `npx http-server .` after `npm install`): node_modules from the repository.
      const server = http.createServer((req, res) => {
        const url = decodeURIComponent(new URL(req.url!, "http://x").pathname);
        const file = url.startsWith("/node_modules/") ? path.join(ROOT, url) : url.startsWith("/held-out/") ? null : path.join(exportDir, url);
        const types: Record<string, string> = { ".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript", ".json": "application/json", ".wasm": "application/wasm" };
        const bytes = file ? (fs.existsSync(file) && fs.statSync(file).isFile() ? fs.readFileSync(file) : null) : (heldOut[url.slice("/held-out/".length)] ?? null);
        if (!bytes) return res.writeHead(404).end();
        res.writeHead(200, { "content-type": types[path.extname(url)] ?? "application/octet-stream" }).end(bytes);
      });
      const port = await freePort();
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
      const { chromium } = await import("playwright-core");
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on("pageerror", (error) => errors.push(String(error)));
        await page.goto(`http://127.0.0.1:${port}/browser.html`);
        await page.waitForFunction(() => (window as any).edgetuneModel, undefined, { timeout: 120_000 });
        assert.deepEqual(errors, []);
        const started = performance.now();
        const { predictions, backend } = await page.evaluate(async ({ names, k }) => {
          const model = (window as any).edgetuneModel;
          const images = await Promise.all(names.map(async (name: string) => new Uint8Array(await (await fetch(`/held-out/${encodeURIComponent(name)}`)).arrayBuffer())));
          const result = await model.predict(images, { topK: k });
          return { predictions: result.predictions, backend: (window as any).tf.getBackend() };
        }, { names: Object.keys(heldOut), k: labelCount });
        const diff = maxAbsDiff(predictions, apiPredictions);
        console.log(`Chromium (tfjs ${backend}): ${Object.keys(heldOut).length} images in ${(performance.now() - started).toFixed(0)} ms, max |p - p_api| = ${diff.toExponential(2)}; load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
        assert.ok(diff <= TOLERANCE, `max abs difference ${diff} (backend ${backend})`);
      } finally {
        await browser.close();
        server.close();
      }
    });
  });
});
