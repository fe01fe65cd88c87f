/**
 * Heartbeats never starve (issue 12): a runner whose head training blocks its training thread for longer than the
 * lease (LEASE_MS = 15 s, EDGETUNE_TEST_TRAIN_STALL_MS = 20 s here) keeps its lease, because training runs in a
 * worker thread and the heartbeat timer on the main event loop keeps firing. Before that, training on the main
 * thread starved the heartbeat and the job failed after three lapsed attempts (20,000 images).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, test } from "vitest";
import { zipSync } from "fflate";
import { ROOT } from "../../scripts/platform.mjs";
import { makeColouredPng } from "../fixtures/images";
import { api, startTestPlatform, waitFor, type Platform } from "./platform";

const STALL_MS = 20_000;
let platform: Platform;
let runner: ChildProcess | undefined;
let runnerOutput = "";

beforeAll(async () => {
  platform = await startTestPlatform({ runner: false });
  runner = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "gpu-runner/src/main.ts"), "--api", platform.url], {
    // The token in the environment, never on the command line (`ps` shows arguments to every local user).
    cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, EDGETUNE_RUNNER_TOKEN: platform.runnerToken, EDGETUNE_TEST_TRAIN_STALL_MS: String(STALL_MS) },
  });
  runner.stdout!.on("data", (chunk) => (runnerOutput += chunk));
  runner.stderr!.on("data", (chunk) => (runnerOutput += chunk));
});
afterAll(async () => {
  if (runner && runner.exitCode === null) runner.kill("SIGKILL");
  await platform?.stop();
});

describe("heartbeats during a long training step", () => {
  test("a job whose training thread stalls for longer than the lease succeeds on its first attempt", { timeout: 180_000 }, async () => {
    const files: Record<string, Uint8Array> = {};
    const colours: Record<string, [number, number, number]> = { red: [200, 40, 40], blue: [40, 60, 200] };
    let seed = 9000;
    for (const [label, rgb] of Object.entries(colours)) for (let i = 0; i < 6; i++) files[`${label}/${i}.png`] = makeColouredPng(32, 32, rgb, seed++);
    const dataset = (await api(platform, "POST", "/v1/datasets", { json: { name: "stall" } })).body;
    assert.equal((await api(platform, "POST", `/v1/datasets/${dataset.id}/archive`, { body: zipSync(files), headers: { "content-type": "application/zip" } })).status, 202);
    await waitFor("dataset ready", async () => (await api(platform, "GET", `/v1/datasets/${dataset.id}`)).body.status === "ready", 60_000);

    const created = (await api(platform, "POST", "/v1/jobs", { json: { dataset_id: dataset.id, head: { type: "linear" } } })).body;
    const job = await waitFor("the job to finish", async () => {
      const j = (await api(platform, "GET", `/v1/jobs/${created.id}`)).body;
      return ["succeeded", "failed", "canceled"].includes(j.status) ? j : null;
    }, 150_000);
    assert.equal(job.status, "succeeded", `${job.error}\n${runnerOutput.slice(-2000)}`);
    assert.equal(job.attempt, 1, "the lease never lapsed");
    assert.ok(job.metrics.timings_ms.training_ms >= STALL_MS, `training took ${job.metrics.timings_ms.training_ms} ms: the stall happened`);
    assert.doesNotMatch(runnerOutput, /heartbeat failed|lease lost/);
  });
});
