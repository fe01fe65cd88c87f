/**
 * The `edgetune` CLI end to end, as a user runs it (a separate process, `cli/bin/edgetune.mjs`) against the real
 * local platform with a runner: login, push a generated ImageFolder, train --wait, predict files and globs; --json
 * prints one document matching ../shared CLI.md; plain output off a TTY has no escape codes; exit codes 0/1/2; a
 * push killed halfway resumes and ends with every image once; progress bars render on a real terminal (tmux).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, test } from "vitest";
import { ROOT } from "../../scripts/platform.mjs";
import { makeColouredPng, makeHugePngHeader, makeStoredPng } from "../fixtures/images";
import { api, platformLogTail, startTestPlatform, waitFor, type Platform } from "./platform";

const BIN = path.join(ROOT, "cli/bin/edgetune.mjs");
const ESC = /\x1b\[/;
let platform: Platform;
let home: string;
let env: NodeJS.ProcessEnv;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with pipes (not a TTY) and a clean environment: no EDGETUNE_* but the config dir. */
function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

function writeImageFolder(dir: string, perLabel: number) {
  const colours: Record<string, [number, number, number]> = { red: [200, 40, 40], blue: [40, 60, 200] };
  let seed = 1;
  for (const [label, rgb] of Object.entries(colours)) {
    fs.mkdirSync(path.join(dir, label), { recursive: true });
    for (let i = 0; i < perLabel; i++) fs.writeFileSync(path.join(dir, label, `${label}-${i}.png`), makeColouredPng(32, 32, rgb, seed++));
  }
  fs.writeFileSync(path.join(dir, ".DS_Store"), "hidden files are left out");
}

beforeAll(async () => {
  platform = await startTestPlatform({ runner: [] });
  home = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-cli-"));
  env = { PATH: process.env.PATH, HOME: home, EDGETUNE_CONFIG_DIR: path.join(home, "config") };
});
afterAll(async () => {
  await platform?.stop();
});

describe("edgetune CLI", () => {
  let datasetId: string;
  let modelId: string;
  const folder = () => path.join(home, "shapes");

  test("login checks the key, saves URL and key with mode 0600, and prints {url, project_id}", async () => {
    const bad = await cli(["login", "--url", platform.url, "--key", "et_wrong"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid_api_key/);
    const run = await cli(["login", "--url", platform.url, "--key", platform.adminKey, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { url: platform.url, project_id: "prj_default" });
    const file = path.join(home, "config", "config.json");
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(JSON.parse(fs.readFileSync(file, "utf8")).key, platform.adminKey);
  });

  test("datasets push zips a folder on the fly, waits for ingestion and prints the dataset as JSON", async () => {
    writeImageFolder(folder(), 6);
    const run = await cli(["datasets", "push", folder(), "--name", "shapes", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const dataset = JSON.parse(run.stdout);
    datasetId = dataset.id;
    assert.equal(dataset.status, "ready");
    assert.equal(dataset.image_count, 12);
    assert.equal(dataset.rejected_count, 0);
    assert.deepEqual(dataset.labels.map((l: any) => [l.name, l.count]), [["blue", 6], ["red", 6]]);
    assert.match(run.stderr, /upload: 100%/);
    assert.doesNotMatch(run.stderr + run.stdout, ESC);
  });

  test("plain output off a TTY: tables and lines without escape codes; lists parse as {datasets: [...]}", async () => {
    const human = await cli(["datasets", "show", datasetId]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /ready/);
    assert.match(human.stdout, /Trainable\. Next: edgetune train/);
    assert.doesNotMatch(human.stdout + human.stderr, ESC);
    const list = JSON.parse((await cli(["datasets", "list", "--json"])).stdout);
    assert.deepEqual(list.datasets.map((d: any) => d.id), [datasetId]);
  });

  test("train --wait follows the job to the end and prints {job, model} with the model's metrics", async () => {
    const run = await cli(["train", datasetId, "--wait", "--json", "--epochs", "30"]);
    assert.equal(run.code, 0, `${run.stderr}\n${platformLogTail(platform)}`);
    const { job, model } = JSON.parse(run.stdout);
    assert.equal(job.status, "succeeded");
    assert.equal(model.id, job.model_id);
    assert.deepEqual(model.labels, ["blue", "red"]);
    assert.equal(model.metrics.per_class.length, 2);
    assert.equal(model.metrics.confusion_matrix.length, 2);
    modelId = model.id;
    // Progress lines depend on heartbeat timing (12 tiny images may embed between two heartbeats); the status lines do not.
    assert.match(run.stderr, /running/);
    assert.match(run.stderr, /succeeded/);
    const human = await cli(["models", "show", modelId]);
    assert.match(human.stdout, /Confusion matrix/);
    assert.match(human.stdout, /precision/);
    assert.doesNotMatch(human.stdout, ESC);
  }, 600_000);

  test("predict takes files and globs, by model id or alias, and prints {model_id, results}", async () => {
    const byGlob = await cli(["predict", modelId, path.join(folder(), "red", "*.png"), "--top-k", "2", "--json"]);
    assert.equal(byGlob.code, 0, byGlob.stderr);
    const answer = JSON.parse(byGlob.stdout);
    assert.equal(answer.model_id, modelId);
    assert.equal(answer.results.length, 6);
    for (const r of answer.results) {
      assert.match(r.file, /red-\d\.png$/);
      assert.equal(r.predictions.length, 2);
      assert.deepEqual(Object.keys(r.predictions[0]).sort(), ["label", "probability"]);
    }
    assert.equal((await cli(["aliases", "set", "prod", modelId, "--json"])).code, 0);
    const byAlias = JSON.parse((await cli(["predict", "prod", path.join(folder(), "blue", "blue-0.png"), "--json"])).stdout);
    assert.equal(byAlias.model_id, modelId);
    assert.equal(byAlias.results[0].predictions[0].label, "blue");

    // A photo over the edge's 2 MP limit (422 too_many_pixels) is predicted from a copy shrunk to fit, with a note.
    const large = path.join(home, "large-blue.png");
    fs.writeFileSync(large, makeColouredPng(2400, 1800, [40, 60, 200], 99));
    const shrunk = await cli(["predict", modelId, large, "--json"]);
    assert.equal(shrunk.code, 0, shrunk.stderr);
    assert.equal(JSON.parse(shrunk.stdout).results[0].predictions[0].label, "blue");
    assert.match(shrunk.stderr, /large-blue\.png: 2400x1800 is over the edge's limit of 2000000 pixels; predicted from a 1200x900 copy/);
    // A decompression bomb's header is not decoded here either: the edge's refusal stands (exit 1).
    const bomb = path.join(home, "bomb.png");
    fs.writeFileSync(bomb, makeHugePngHeader(30000, 30000));
    const refused = await cli(["predict", modelId, bomb]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /^error: too_many_pixels: .*30000x30000/m);
  });

  test("exit codes: 2 for usage errors, 1 when the API refuses (code and message on stderr)", async () => {
    const unknown = await cli(["datasets", "frobnicate"]);
    assert.equal(unknown.code, 2);
    const missingArg = await cli(["train"]);
    assert.equal(missingArg.code, 2);
    const noFile = await cli(["predict", modelId, path.join(home, "nope-*.jpg")]);
    assert.equal(noFile.code, 2);
    assert.match(noFile.stderr, /nothing matched/);
    const notFound = await cli(["datasets", "show", "ds_missing"]);
    assert.equal(notFound.code, 1);
    assert.match(notFound.stderr, /^error: dataset_not_found: /m);
    assert.equal(notFound.stdout, "");
    const help = await cli(["--help"]);
    assert.equal(help.code, 0);
  });

  test("a push killed halfway resumes where it stopped and the dataset ends with every image once", async () => {
    const dir = path.join(home, "big");
    // Five stored (uncompressed) 8 MB PNGs and five small ones: about 40 MB, eight 5 MiB parts.
    fs.mkdirSync(path.join(dir, "large"), { recursive: true });
    fs.mkdirSync(path.join(dir, "small"), { recursive: true });
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, "large", `${i}.png`), makeStoredPng(1800, 1500, i + 1));
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, "small", `${i}.png`), makeColouredPng(16, 16, [i * 40, 10, 10], i + 1));
    const args = ["datasets", "push", dir, "--parts", "--part-mb", "5", "--json"];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise((r) => child.on("exit", r));
    const uploads = path.join(home, "config", "uploads");
    // Kill it (SIGKILL: no cleanup) once the server holds at least one part.
    const state = await waitFor("the first part on the server", async () => {
      const files = fs.existsSync(uploads) ? fs.readdirSync(uploads) : [];
      if (files.length === 0) return null;
      const saved = JSON.parse(fs.readFileSync(path.join(uploads, files[0]), "utf8"));
      const upload = await api(platform, "GET", `/v1/datasets/${saved.dataset_id}/uploads/${saved.upload_id}`);
      return upload.body.parts?.length >= 1 ? saved : null;
    }, 60_000);
    child.kill("SIGKILL");
    await exited;
    const before = await api(platform, "GET", `/v1/datasets/${state.dataset_id}/uploads/${state.upload_id}`);
    assert.equal(before.body.status, "open", "the upload finished before it could be killed; the test proves nothing");
    const partsBefore = before.body.parts.length;

    const resumed = await cli(args);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /Resuming the interrupted upload/);
    assert.match(resumed.stderr, /already there/);
    const dataset = JSON.parse(resumed.stdout);
    assert.equal(dataset.id, state.dataset_id);
    assert.equal(dataset.status, "ready");
    assert.equal(dataset.image_count, 10);
    assert.equal(dataset.rejected_count, 0); // a part sent twice into the archive would show as duplicates or a corrupt zip
    const after = await api(platform, "GET", `/v1/datasets/${state.dataset_id}/uploads/${state.upload_id}`);
    assert.equal(after.body.status, "completed");
    assert.ok(partsBefore < after.body.parts.length, `${partsBefore} parts before the kill, ${after.body.parts.length} after`);
    assert.deepEqual(fs.readdirSync(uploads), []); // the resume state is gone once the upload completed
  }, 300_000);

  test("on a real terminal, push draws progress bars (read back from a tmux screen)", async (ctx) => {
    if (spawnSync("tmux", ["-V"]).status !== 0) return ctx.skip("tmux is not installed; the TTY rendering check needs it");
    const session = `edgetune-cli-${process.pid}`;
    const dir = path.join(home, "tty");
    writeImageFolder(dir, 5);
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
    const command = `env -i ${envArgs} TERM=xterm-256color ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} datasets push ${JSON.stringify(dir)} --parts --part-mb 5; echo EXIT=$?; sleep 60`;
    spawnSync("tmux", ["new-session", "-d", "-s", session, "-x", "150", "-y", "40", command]);
    try {
      const screen = await waitFor("the push to finish on the tmux screen", async () => {
        const text = spawnSync("tmux", ["capture-pane", "-p", "-t", session], { encoding: "utf8" }).stdout;
        return /EXIT=\d+/.test(text) ? text : null;
      }, 120_000);
      assert.match(screen, /EXIT=0/);
      assert.match(screen, /upload\s+█+[█░]*\s+100% \| .*MB\/s/);
      assert.match(screen, /ingest\s+█+[█░]*\s+100% \| 10\/10 images/);
      assert.match(screen, /│ label\s+│ images │ train │ val │/);
      assert.doesNotMatch(screen, /\x1b/); // capture-pane gives the rendered screen: no raw codes left over
    } finally {
      spawnSync("tmux", ["kill-session", "-t", session]);
    }
  }, 180_000);
});
