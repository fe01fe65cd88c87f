/**
 * Chaos: `wrangler dev` (the whole process group: wrangler and its workerd) is killed with SIGKILL while an archive
 * is being ingested and a job is running, then started again on the same state folder and port. Nothing may be
 * stranded or done twice: the ingest's queue message died with the process, and the scheduled sweep re-enqueues it
 * from its cursor in D1 (SWEEP_STALL_S=10 here, 3 min in production), so the dataset ends `ready` with every image
 * exactly once; the job ends `succeeded` once with one model (its runner rides out the restart, or its lease lapses
 * and the job is leased again). Then the consistency checker (tests/e2e/consistency.ts) finds no R2 object without its
 * row and no row without its object.
 *
 * Bounded: 600 generated 8x8 PNGs (3 ingest chunks of at most 250), a job on 90 small images with a slow runner
 * (tfjs-wasm, one thread, about 10 img/s) so that "mid-job" is a window of seconds.
 */
import assert from "node:assert/strict";
import { afterAll, describe, test } from "vitest";
import { zipSync } from "fflate";
import { makeColouredPng, makePng } from "../fixtures/images";
import { checkConsistency } from "./consistency";
import { api, platformLogTail, startTestPlatform, waitFor, type Platform } from "./platform";

const ARCHIVE_IMAGES = 600;
const SLOW_RUNNER = ["--engine", "tfjs-wasm", "--threads", "1"];
const CHAOS_VARS = { SWEEP_STALL_S: "10" };
const SWEEP_EVERY_MS = 2_000;

let first: Platform | undefined;
let second: Platform | undefined;

afterAll(async () => {
  await second?.stop();
  await first?.stop();
});

/** SIGKILL to wrangler's process group: wrangler and workerd die at once, as in a crash or an OOM kill. */
function killWrangler(platform: Platform) {
  process.kill(-platform.wranglerPid, "SIGKILL");
}

async function readyDataset(platform: Platform, name: string, files: Record<string, Uint8Array>) {
  const dataset = await api(platform, "POST", "/v1/datasets", { json: { name } });
  assert.equal(dataset.status, 201);
  const upload = await api(platform, "POST", `/v1/datasets/${dataset.body.id}/archive`, { body: zipSync(files, { level: 1 }), headers: { "content-type": "application/zip" } });
  assert.equal(upload.status, 202, JSON.stringify(upload.body));
  return dataset.body.id as string;
}

async function allImagePaths(platform: Platform, datasetId: string): Promise<string[]> {
  const paths: string[] = [];
  for (let cursor = ""; ; ) {
    const page = (await api(platform, "GET", `/v1/datasets/${datasetId}/images?limit=100${cursor ? `&cursor=${cursor}` : ""}`)).body;
    paths.push(...page.images.map((i: { path: string }) => i.path));
    if (!page.next_cursor) return paths;
    cursor = page.next_cursor;
  }
}

describe("chaos: wrangler dev killed mid-ingest and mid-job", () => {
  test("the ingest resumes and ends ready with every image once; the job succeeds once with one model; storage stays consistent", async () => {
    first = await startTestPlatform({ runner: SLOW_RUNNER, vars: CHAOS_VARS, sweepEveryMs: SWEEP_EVERY_MS });
    const { stateDir } = first;
    const port = Number(new URL(first.url).port);

    // A trainable dataset, then a job on it with the slow runner.
    const colours: Record<string, [number, number, number]> = { red: [200, 40, 40], green: [40, 180, 60], blue: [40, 60, 200] };
    const trainFiles: Record<string, Uint8Array> = {};
    let seed = 1;
    for (const [label, rgb] of Object.entries(colours)) for (let i = 0; i < 30; i++) trainFiles[`${label}/${i}.png`] = makeColouredPng(48, 48, rgb, seed++);
    const trainId = await readyDataset(first, "chaos train", trainFiles);
    await waitFor("training dataset ready", async () => (await api(first!, "GET", `/v1/datasets/${trainId}`)).body.status === "ready", 120_000);
    const job = await api(first, "POST", "/v1/jobs", { json: { dataset_id: trainId } });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    const jobId = job.body.id as string;
    await waitFor("the job running", async () => (await api(first!, "GET", `/v1/jobs/${jobId}`)).body.status === "running", 120_000);

    // The archive, and the kill once its ingest has made some progress.
    const archiveFiles: Record<string, Uint8Array> = {};
    for (let i = 0; i < ARCHIVE_IMAGES; i++) archiveFiles[`${i % 2 ? "cat" : "dog"}/${i}.png`] = makePng(8, 8, 10_000 + i);
    const ingestId = await readyDataset(first, "chaos ingest", archiveFiles);
    const atKill = await waitFor("ingest progress", async () => {
      const d = (await api(first!, "GET", `/v1/datasets/${ingestId}`)).body;
      return d.ingest.done > 0 || d.status !== "ingesting" ? d : null;
    }, 60_000);
    killWrangler(first);
    assert.equal(atKill.status, "ingesting", `the ingest ended before the kill: ${JSON.stringify(atKill.ingest)}`);
    assert.ok(atKill.ingest.done < ARCHIVE_IMAGES, `killed at ${atKill.ingest.done} of ${ARCHIVE_IMAGES}`);

    // Restart on the same state and port; the first platform's runner keeps going against it.
    second = await startTestPlatform({ runner: false, vars: CHAOS_VARS, sweepEveryMs: SWEEP_EVERY_MS, stateDir, port });
    const runningAfterRestart = (await api(second, "GET", `/v1/jobs/${jobId}`)).body;
    assert.notEqual(runningAfterRestart.status, "succeeded", "the job finished before the kill: the test did not kill it mid-job");

    const dataset = await waitFor("the ingest to finish after the restart", async () => {
      const d = (await api(second!, "GET", `/v1/datasets/${ingestId}`)).body;
      return d.status === "ingesting" ? null : d;
    }, 180_000).catch((err) => assert.fail(`${err.message}\n${platformLogTail(second!)}`));
    assert.equal(dataset.status, "ready", JSON.stringify(dataset));
    assert.equal(dataset.image_count, ARCHIVE_IMAGES);
    const paths = await allImagePaths(second, ingestId);
    assert.equal(paths.length, ARCHIVE_IMAGES);
    assert.equal(new Set(paths).size, ARCHIVE_IMAGES, "an image was recorded twice");

    const finished = await waitFor("the job to finish after the restart", async () => {
      const j = (await api(second!, "GET", `/v1/jobs/${jobId}`)).body;
      return ["succeeded", "failed", "canceled"].includes(j.status) ? j : null;
    }, 300_000).catch((err) => assert.fail(`${err.message}\n${platformLogTail(second!)}`));
    assert.equal(finished.status, "succeeded", JSON.stringify(finished));
    const models = (await api(second, "GET", "/v1/models?limit=100")).body.models.filter((m: { job_id: string }) => m.job_id === jobId);
    assert.equal(models.length, 1);
    assert.equal(models[0].id, finished.model_id);

    // Storage: stop everything, then compare D1 and R2.
    await second.stop();
    await first.stop();
    second = first = undefined;
    const report = await checkConsistency(stateDir);
    console.log(`consistency: ${report.objects} objects, ${report.rows} rows checked, ${report.problems.length} problems; killed at ingest ${atKill.ingest.done}/${ARCHIVE_IMAGES}, job ${runningAfterRestart.status} (attempt ${runningAfterRestart.attempt}) after the restart, succeeded at attempt ${finished.attempt}`);
    assert.deepEqual(report.problems, []);
    // Two platform starts, two 600-image ingests and a job on a shared 2-core box: its own waits go up to 300 s.
  }, 900_000);
});
