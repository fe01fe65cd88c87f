/**
 * The README's quick start, typed as a new user would in a clean clone with an empty environment: `git clone` of this
 * checkout's committed HEAD into a temporary folder, then, with nothing but PATH and a fresh HOME (`env -i`), `npm ci`,
 * `npm start` in the background until its banner, and the CLI's login / datasets push / train --wait / predict lines
 * exactly as README.md's code blocks show them (parsed from README.md, so the README and this test cannot drift): on a
 * generated ImageFolder, then on a subset of ../shared/datasets/flowers5 when ../shared is there. Only the values a
 * user reads off the screen are filled in: the URL and key `npm start` printed, the dataset id `push` printed, the
 * model id `train` printed. The port comes from PORT, which the README documents, so the test never collides with a
 * platform on 8787. The fresh HOME's npm cache is a link to this machine's, as on any machine that ran npm before
 * (the registry stays reachable for anything missing). The whole process tree is stopped at the end.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, test } from "vitest";
import { ROOT, freePort } from "../../scripts/platform.mjs";
import { makeColouredPng, makeJpeg } from "../fixtures/images";
import { descendants, isAlive, waitFor } from "./platform";

const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
const FLOWERS = path.join(ROOT, "..", "shared", "datasets", "flowers5");
const FLOWERS_PER_LABEL = 12;

/** The shell lines of the ```sh blocks of the README's "Quick start" section, comments stripped. */
function quickStartBlocks(readme: string): string[][] {
  const start = readme.indexOf("## Quick start");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((block) =>
    block[1].split("\n").map((line) => line.replace(/\s+#.*$/, "").trim()).filter(Boolean),
  );
}

interface Run {
  line: string;
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const git = spawnSync("git", ["--version"]).status === 0;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-quickstart-"));
const clone = path.join(work, "edgetune");
const home = path.join(work, "home");
let port = 0;
let server: ChildProcess | null = null;
let serverTree: number[] = [];
const timings: Record<string, number> = {};

/** The empty environment of a new user's shell: PATH (to find node, npm, git) and HOME; PORT only for `npm start`. */
const userEnv = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, ...extra });

/** Types `line` into `sh -c` in the clone, as a user at a prompt would. */
function type(line: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn("sh", ["-c", line], { cwd: clone, env: userEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ line, code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

const show = (run: Run) => `$ ${run.line}\n(exit ${run.code} after ${run.ms} ms)\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-3000)}`;

/** Stops `npm start` and everything under it: SIGTERM to its process group, then SIGKILL to whatever is left. */
async function stopServer(): Promise<void> {
  if (!server?.pid) return;
  serverTree = [...new Set([...serverTree, ...descendants(server.pid)])];
  try { process.kill(-server.pid, "SIGTERM"); } catch {}
  await waitFor("npm start's tree to exit", async () => [server!.pid!, ...serverTree].every((pid) => !isAlive(pid)), 20_000).catch(() => undefined);
  for (const pid of [server.pid, ...serverTree]) if (isAlive(pid)) try { process.kill(pid, "SIGKILL"); } catch {}
}

afterAll(async () => {
  await stopServer();
  const left = serverTree.filter(isAlive);
  fs.rmSync(work, { recursive: true, force: true });
  assert.deepEqual(left, [], "processes of npm start still running after the test");
});

/** Fills in what a user reads off the screen; everything else stays as the README wrote it. */
function fillIn(line: string, values: { url: string; key: string; datasetId?: string; modelId?: string }): string {
  return line
    .replace(/http:\/\/127\.0\.0\.1:8787/g, values.url)
    .replace(/\bKEY\b/g, values.key)
    .replace(/\bds_\.\.\./g, values.datasetId ?? "ds_...")
    .replace(/\bmdl_\.\.\./g, values.modelId ?? "mdl_...");
}

describe("the README's quick start in a clean clone with an empty environment", () => {
  const [install, commands] = quickStartBlocks(README);

  test("the README's quick start has the install block and the four CLI lines", () => {
    assert.deepEqual(install, ["npm ci", "npm start", "npm test"]);
    assert.deepEqual(commands.map((line) => line.split(" ").slice(0, 3).join(" ")), ["npx edgetune login", "npx edgetune datasets", "npx edgetune train", "npx edgetune predict"]);
  });

  test.skipIf(!git || process.platform !== "linux")("git clone, npm ci, npm start, then login, push, train --wait and predict exactly as written", async () => {
    const started = Date.now();
    // 1. The clone (this checkout's committed HEAD) and a new user's HOME, whose npm cache is this machine's.
    fs.mkdirSync(home);
    const cache = process.env.npm_config_cache || path.join(os.homedir(), ".npm");
    if (fs.existsSync(cache)) fs.symlinkSync(cache, path.join(home, ".npm"));
    const cloned = spawnSync("git", ["clone", "--quiet", ROOT, clone], { env: userEnv(), encoding: "utf8" });
    assert.equal(cloned.status, 0, cloned.stderr);
    timings.clone_ms = Date.now() - started;

    // 2. npm ci, exactly.
    const ci = await type(install[0], 300_000);
    assert.equal(ci.code, 0, show(ci));
    timings.npm_ci_ms = ci.ms;

    // 3. npm start in the background (its own process group, so the whole tree can be stopped), until the banner.
    port = await freePort();
    const startAt = Date.now();
    server = spawn("sh", ["-c", install[1]], { cwd: clone, env: userEnv({ PORT: String(port) }), stdio: ["ignore", "pipe", "pipe"], detached: true });
    let banner = "";
    server.stdout!.on("data", (d) => (banner += d));
    server.stderr!.on("data", (d) => (banner += d));
    await waitFor("npm start's banner", async () => banner.includes("Stop with Ctrl-C") || server!.exitCode !== null, 180_000);
    assert.match(banner, /Stop with Ctrl-C/, banner.slice(-3000));
    timings.npm_start_ms = Date.now() - startAt;
    serverTree = descendants(server.pid!);
    const login = banner.match(/npx edgetune login --url (\S+) --key (\S+)/);
    assert.ok(login, banner);
    const values = { url: login[1], key: login[2] };
    assert.equal(values.url, `http://127.0.0.1:${port}`);

    // 4. The CLI lines, on a generated ImageFolder and then on the flowers.
    const rounds: Array<{ name: string; write: () => string[] }> = [
      {
        name: "generated",
        write: () => {
          const colours: Record<string, [number, number, number]> = { red: [200, 40, 40], blue: [40, 60, 200] };
          let seed = 1;
          for (const [label, rgb] of Object.entries(colours)) {
            fs.mkdirSync(path.join(clone, "my-images", label), { recursive: true });
            for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(clone, "my-images", label, `${label}-${i}.png`), makeColouredPng(32, 32, rgb, seed++));
          }
          fs.mkdirSync(path.join(clone, "more"), { recursive: true });
          fs.writeFileSync(path.join(clone, "rose.jpg"), makeJpeg("small"));
          fs.writeFileSync(path.join(clone, "more", "a.jpg"), makeJpeg("other"));
          fs.writeFileSync(path.join(clone, "more", "b.jpg"), makeJpeg("small"));
          return Object.keys(colours);
        },
      },
    ];
    if (fs.existsSync(FLOWERS)) {
      rounds.push({
        name: "flowers5",
        write: () => {
          for (const dir of ["my-images", "more"]) fs.rmSync(path.join(clone, dir), { recursive: true, force: true });
          fs.mkdirSync(path.join(clone, "more"), { recursive: true });
          const labels = fs.readdirSync(FLOWERS).filter((l) => fs.statSync(path.join(FLOWERS, l)).isDirectory()).sort();
          for (const label of labels) {
            const files = fs.readdirSync(path.join(FLOWERS, label)).filter((f) => /\.jpe?g$/i.test(f)).sort();
            fs.mkdirSync(path.join(clone, "my-images", label), { recursive: true });
            for (const file of files.slice(0, FLOWERS_PER_LABEL)) fs.copyFileSync(path.join(FLOWERS, label, file), path.join(clone, "my-images", label, file));
            // Held-out photos to predict: the README's rose.jpg is a rose; more/*.jpg one of each other label.
            const heldOut = path.join(FLOWERS, label, files[files.length - 1]!);
            fs.copyFileSync(heldOut, label === "roses" ? path.join(clone, "rose.jpg") : path.join(clone, "more", `${label}.jpg`));
          }
          return labels;
        },
      });
    } else {
      console.log("quickstart: ../shared/datasets/flowers5 is absent; the flowers round is skipped (the generated ImageFolder round ran)");
    }

    for (const round of rounds) {
      const labels = round.write();
      const [loginLine, pushLine, trainLine, predictLine] = commands;
      const loggedIn = await type(fillIn(loginLine, values), 60_000);
      assert.equal(loggedIn.code, 0, show(loggedIn));
      const pushed = await type(fillIn(pushLine, values), 180_000);
      assert.equal(pushed.code, 0, show(pushed));
      const datasetId = (pushed.stdout + pushed.stderr).match(/\bds_[0-9a-z]{10,}/)?.[0];
      assert.ok(datasetId, show(pushed));
      const trained = await type(fillIn(trainLine, { ...values, datasetId }), 300_000);
      assert.equal(trained.code, 0, show(trained));
      const modelId = (trained.stdout + trained.stderr).match(/\bmdl_[0-9a-z]{10,}/)?.[0];
      assert.ok(modelId, show(trained));
      const predicted = await type(fillIn(predictLine, { ...values, datasetId, modelId }), 120_000);
      assert.equal(predicted.code, 0, show(predicted));
      // One row per file (rose.jpg and each of more/*.jpg), each with one of the dataset's labels.
      const files = ["rose.jpg", ...fs.readdirSync(path.join(clone, "more")).map((f) => `more/${f}`)];
      for (const file of files) {
        const row = predicted.stdout.split("\n").find((line) => line.includes(file));
        assert.ok(row, `no prediction for ${file}:\n${show(predicted)}`);
        assert.ok(labels.some((label) => new RegExp(`\\b${label}\\b`).test(row)), `no label of ${labels.join(", ")} in: ${row}`);
      }
      timings[`${round.name}_cli_ms`] = loggedIn.ms + pushed.ms + trained.ms + predicted.ms;
    }

    await stopServer();
    assert.deepEqual(serverTree.filter(isAlive), [], "npm start's processes outlived the stop");
    timings.total_ms = Date.now() - started;
    console.log(`quickstart: ${JSON.stringify(timings)}`);
  }, 900_000);
});
