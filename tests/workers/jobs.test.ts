import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { getDb } from "../../workers/services/db";
import { runScheduledSweeps } from "../../workers/services/sweeps";
import { LEASE_MS, completeJob, failJob, heartbeat, leaseJob, sweepExpiredLeases } from "../../workers/services/jobs";
import { sha256Hex } from "../../shared/ids";
import { RUNNER_TOKEN, call, callJson, callMetered, createDataset, createProject, createTrainableDataset, runnerCall } from "./helpers";

async function createJob(key: string, datasetId: string, extra: Record<string, unknown> = {}) {
  return callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId, ...extra } });
}

/** Clears queued jobs of earlier tests' projects so a lease picks this test's job (storage is shared per file). */
async function onlyThisJob(jobId: string) {
  await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(jobId).run();
}

const done = { labels: ["cat", "dog"], metrics: { accuracy: 1 }, headBytes: 10, objectPrefix: "x", epochs: [], skipped: [] };

describe("jobs API", () => {
  it("creates a queued job with defaults filled in and freezes the dataset version", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const { status, body } = await createJob(key, datasetId);
    expect(status).toBe(201);
    expect(body).toMatchObject({ status: "queued", dataset_id: datasetId, dataset_version: 1, attempt: 0, backbone: "bb_builtin_mobilenet_v1_075", progress: { done: 0, total: 0 }, metrics: { epochs: [] }, model_id: null, error: null });
    expect(body.config.head).toEqual({ type: "auto", folds: 5 });
    expect(body.config.hyperparameters.epochs).toBeGreaterThan(0);
    const ds = await env.DB.prepare("select version, frozen_version from datasets where id = ?").bind(datasetId).first();
    expect(ds).toEqual({ version: 1, frozen_version: 1 });
  });

  it("answers 400 naming the field for nonsense hyperparameters", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const res = await createJob(key, datasetId, { hyperparameters: { learning_rate: -1 } });
    expect(res.status).toBe(400);
    expect(res.body.error.details.issues[0].path).toBe("hyperparameters.learning_rate");
    const head = await createJob(key, datasetId, { head: { type: "mlp", hidden: [0] } });
    expect(head.body.error.details.issues[0].path).toBe("head.hidden.0");
  });

  it("keeps fine_tune in the job config, answers 400 naming fine_tune.blocks outside 1..2 and 422 for a backbone without known blocks", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const created = await callMetered("POST", "/v1/jobs", { key, json: { dataset_id: datasetId, fine_tune: { blocks: 2 } } });
    expect(created.status).toBe(201);
    expect(created.body.config.fine_tune).toEqual({ blocks: 2 });
    expect(created.d1.statements).toBeLessThanOrEqual(12);
    for (const blocks of [0, 3, 1.5]) {
      const res = await createJob(key, datasetId, { fine_tune: { blocks } });
      expect(res.status).toBe(400);
      expect(res.body.error.details.issues[0].path).toBe("fine_tune.blocks");
    }
    const nsfw = await createJob(key, datasetId, { backbone: "mobilenet_v2", fine_tune: { blocks: 1 } });
    expect(nsfw.status).toBe(422);
    expect(nsfw.body.error.code).toBe("fine_tune_unsupported");
    expect(nsfw.body.error.message).toContain("mobilenet_v1_075");
    expect(nsfw.body.error.details).toMatchObject({ backbone: "bb_builtin_mobilenet_v2", blocks: 1, max_blocks: 0 });
    const augmented = await createJob(key, datasetId, { fine_tune: { blocks: 1 }, augmentation: { views: 2 } });
    expect(augmented.status).toBe(422);
    expect(augmented.body.error.code).toBe("fine_tune_unsupported");
    expect(augmented.body.error.message).toContain("augmentation");
  });

  it("answers 409 dataset_not_trainable with the reason", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const res = await createJob(key, id);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("dataset_not_trainable");
    expect(res.body.error.message).toContain("empty");
  });

  it("answers 404 for another project's dataset, an unknown backbone and another project's job", async () => {
    const a = await createTrainableDataset();
    const b = await createProject();
    expect((await createJob(b.key, a.datasetId)).body.error.code).toBe("dataset_not_found");
    expect((await createJob(a.key, a.datasetId, { backbone: "resnet9000" })).body.error.code).toBe("backbone_not_found");
    const job = await createJob(a.key, a.datasetId);
    expect((await callJson("GET", `/v1/jobs/${job.body.id}`, { key: b.key })).status).toBe(404);
    expect((await callJson("POST", `/v1/jobs/${job.body.id}/cancel`, { key: b.key })).status).toBe(404);
  });

  it("lists jobs and cancels a queued job at once", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = await createJob(key, datasetId);
    expect((await callJson("GET", "/v1/jobs", { key })).body.jobs.map((j: any) => j.id)).toEqual([job.body.id]);
    const canceled = await callJson("POST", `/v1/jobs/${job.body.id}/cancel`, { key });
    expect(canceled.status).toBe(202);
    expect(canceled.body.status).toBe("canceled");
  });

  it("streams job events as Server-Sent Events and ends after the final status", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = await createJob(key, datasetId);
    await callJson("POST", `/v1/jobs/${job.body.id}/cancel`, { key });
    const res = await call("GET", `/v1/jobs/${job.body.id}/events`, { key });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const text = await res.text();
    expect(text).toContain("event: status");
    expect(text).toContain('"status":"queued"');
    expect(text).toContain('"status":"canceled"');
    expect(text).toContain("event: end");
  });
});

describe("lease state machine", () => {
  it("gives each job to one runner only when more runners than jobs ask at once", async () => {
    // leaseJob awaits between statements (sweep, claim, event), so concurrent calls interleave in this isolate: a
    // claim that read its candidate in one statement and updated it in another would hand a job out twice here.
    const { key, datasetId } = await createTrainableDataset();
    const created = [];
    for (let i = 0; i < 3; i++) created.push((await createJob(key, datasetId)).body);
    await env.DB.prepare(`update jobs set status = 'canceled' where id not in (?, ?, ?) and status in ('queued', 'running')`).bind(...created.map((j) => j.id)).run();
    const db = getDb(env.DB);
    const leases = (await Promise.all(Array.from({ length: 8 }, (_, i) => leaseJob(db, `runner-${i}`)))).filter((l) => l !== null);
    expect(leases.map((l) => l.job.id).sort()).toEqual(created.map((j) => j.id).sort());
    expect(leases.every((l) => l.job.attempt === 1)).toBe(true);
    const rows = await env.DB.prepare(`select runner_id from jobs where id in (?, ?, ?)`).bind(...created.map((j) => j.id)).all<{ runner_id: string }>();
    expect(new Set(rows.results.map((r) => r.runner_id)).size).toBe(3);
  });

  it("puts a job whose lease expired back in the queue after a backoff, counting the attempt", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await createJob(key, datasetId)).body;
    await onlyThisJob(job.id);
    const db = getDb(env.DB);
    const t0 = Date.now();
    const lease = (await leaseJob(db, "runner-a", t0))!;
    expect(lease.job.id).toBe(job.id);
    // Backdated clock: the sweep runs LEASE_MS + 1 ms later.
    expect(await sweepExpiredLeases(db, t0 + LEASE_MS + 1)).toBe(1);
    const row = await env.DB.prepare("select status, attempt, run_after, error from jobs where id = ?").bind(job.id).first<any>();
    expect(row.status).toBe("queued");
    expect(row.attempt).toBe(1);
    expect(Date.parse(row.run_after)).toBeGreaterThan(t0 + LEASE_MS + 1000); // e^1 s backoff
    expect(row.error).toContain("no heartbeat");
    expect(await leaseJob(db, "runner-b", t0 + LEASE_MS + 2)).toBeNull(); // still backing off
    const second = (await leaseJob(db, "runner-b", t0 + LEASE_MS + 10_000))!;
    expect(second.job.attempt).toBe(2);
  });

  it("refuses a late report from the runner that lost its lease and changes nothing", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await createJob(key, datasetId)).body;
    await onlyThisJob(job.id);
    const db = getDb(env.DB);
    const t0 = Date.now();
    const first = (await leaseJob(db, "runner-a", t0))!;
    await sweepExpiredLeases(db, t0 + LEASE_MS + 1);
    const second = (await leaseJob(db, "runner-b", t0 + LEASE_MS + 60_000))!;
    expect(second.job.id).toBe(job.id);
    await expect(heartbeat(db, job.id, first.leaseToken, undefined, t0 + LEASE_MS + 60_001)).rejects.toMatchObject({ code: "lease_lost" });
    await expect(completeJob(db, job.id, first.leaseToken, done, t0 + LEASE_MS + 60_001)).rejects.toMatchObject({ code: "lease_lost" });
    const modelId = await completeJob(db, job.id, second.leaseToken, done, t0 + LEASE_MS + 60_002);
    await expect(completeJob(db, job.id, second.leaseToken, done, t0 + LEASE_MS + 60_003)).rejects.toMatchObject({ code: "lease_lost" });
    const models = await env.DB.prepare("select id from models where job_id = ?").bind(job.id).all();
    expect(models.results).toEqual([{ id: modelId }]);
  });

  it("fails the job with the last error after the maximum attempts", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await createJob(key, datasetId, { max_attempts: 2 })).body;
    await onlyThisJob(job.id);
    const db = getDb(env.DB);
    let t = Date.now();
    const one = (await leaseJob(db, "r", t))!;
    expect(await failJob(db, job.id, one.leaseToken, { error: "CUDA out of memory", retryable: true }, t + 1)).toBe("queued");
    t += 60_000;
    const two = (await leaseJob(db, "r", t))!;
    expect(two.job.attempt).toBe(2);
    expect(await failJob(db, job.id, two.leaseToken, { error: "CUDA out of memory", retryable: true }, t + 1)).toBe("failed");
    const read = await callJson("GET", `/v1/jobs/${job.id}`, { key });
    expect(read.body.status).toBe("failed");
    expect(read.body.error).toContain("after 2 attempts: CUDA out of memory");
  });

  it("delivers a cancel at the next heartbeat and ends canceled when the runner stops", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await createJob(key, datasetId)).body;
    await onlyThisJob(job.id);
    const lease = await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: "r1", wait_s: 0 } });
    expect(lease.status).toBe(200);
    const token = lease.body.lease.token;
    expect((await runnerCall("POST", `/v1/runner/jobs/${job.id}/heartbeat`, { json: { lease_token: token, progress: { phase: "embedding", done: 3, total: 10 } } })).body.cancel_requested).toBe(false);
    await callJson("POST", `/v1/jobs/${job.id}/cancel`, { key });
    expect((await runnerCall("POST", `/v1/runner/jobs/${job.id}/heartbeat`, { json: { lease_token: token } })).body.cancel_requested).toBe(true);
    expect((await runnerCall("POST", `/v1/runner/jobs/${job.id}/fail`, { json: { lease_token: token, error: "canceled by user", canceled: true } })).body.status).toBe("canceled");
    expect((await callJson("GET", `/v1/jobs/${job.id}`, { key })).body.status).toBe("canceled");
  });
});

describe("runner protocol", () => {
  it("refuses runner routes without the runner token, and project keys there", async () => {
    const { key } = await createProject();
    expect((await callJson("POST", "/v1/runner/lease", { key: null, json: { runner_id: "r", wait_s: 0 } })).body.error.code).toBe("missing_runner_token");
    expect((await callJson("POST", "/v1/runner/lease", { key, json: { runner_id: "r", wait_s: 0 } })).status).toBe(401);
  });

  it("leases with the job, its backbone and its dataset snapshot, then completes into a model", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await createJob(key, datasetId)).body;
    await onlyThisJob(job.id);
    const lease = await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: "r1", wait_s: 0 } });
    expect(lease.body.job.id).toBe(job.id);
    expect(lease.body.images).toHaveLength(10);
    expect(lease.body.backbone.builtin).toBe(true);
    const token = lease.body.lease.token;
    const image = await call("GET", `/v1/runner/jobs/${job.id}/images/${lease.body.images[0].sha256}`, { key: "et_rnr_test0000000000000000000000000", headers: { "x-lease-token": token } });
    expect(image.status).toBe(200);
    expect((await image.arrayBuffer()).byteLength).toBeGreaterThan(50);
    expect((await runnerCall("POST", `/v1/runner/jobs/${job.id}/complete`, { json: { lease_token: token, labels: ["cat", "dog"], metrics: { accuracy: 1, per_class: [], confusion_matrix: [[1, 0], [0, 1]] }, epochs: [], head_bytes: 4 } })).body.error.code).toBe("artifacts_missing");
    for (const name of ["head.json", "head.bin", "model.json", "weights.bin"]) {
      const put = await call("PUT", `/v1/runner/jobs/${job.id}/artifacts/${name}`, { key: "et_rnr_test0000000000000000000000000", body: new Uint8Array([1, 2, 3, 4]), headers: { "x-lease-token": token } });
      expect(put.status).toBe(200);
    }
    await runnerCall("POST", `/v1/runner/jobs/${job.id}/epochs`, { json: { lease_token: token, epochs: [{ epoch: 1, train_loss: 0.5, val_loss: 0.6, train_accuracy: 0.8, val_accuracy: 0.7 }] } });
    const metrics = { accuracy: 0.9, per_class: [], confusion_matrix: [[1, 0], [0, 1]] };
    const complete = await runnerCall("POST", `/v1/runner/jobs/${job.id}/complete`, { json: { lease_token: token, labels: ["cat", "dog"], metrics, epochs: [{ epoch: 1, train_loss: 0.5, val_loss: 0.6, train_accuracy: 0.8, val_accuracy: 0.7 }], head_bytes: 4 } });
    expect(complete.status).toBe(200);
    const read = (await callJson("GET", `/v1/jobs/${job.id}`, { key })).body;
    expect(read).toMatchObject({ status: "succeeded", model_id: complete.body.model_id });
    const model = await callJson("GET", `/v1/models/${complete.body.model_id}`, { key });
    expect(model.body).toMatchObject({ job_id: job.id, dataset_id: datasetId, labels: ["cat", "dog"], metrics: { accuracy: 0.9 } });
    expect((await callJson("GET", "/v1/models", { key })).body.models).toHaveLength(1);
    const again = await runnerCall("POST", `/v1/runner/jobs/${job.id}/complete`, { json: { lease_token: token, labels: ["cat", "dog"], metrics, epochs: [], head_bytes: 4 } });
    expect(again.body.error.code).toBe("lease_lost");
  });

  it("downloads a batch of images in one call, marks missing ones, and refuses it without the lease", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await createJob(key, datasetId)).body;
    await onlyThisJob(job.id);
    const lease = (await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: "r1", wait_s: 0 } })).body;
    const shas = lease.images.slice(0, 3).map((i: { sha256: string }) => i.sha256);
    const missing = "0".repeat(64);
    const response = await call("POST", `/v1/runner/jobs/${job.id}/images`, { key: "et_rnr_test0000000000000000000000000", json: { sha256: [...shas, missing] }, headers: { "x-lease-token": lease.lease.token } });
    expect(response.status).toBe(200);
    const body = new Uint8Array(await response.arrayBuffer());
    const view = new DataView(body.buffer);
    const seen: Array<[string, number]> = [];
    for (let offset = 0; offset < body.length; ) {
      const sha = [...body.subarray(offset, offset + 32)].map((b) => b.toString(16).padStart(2, "0")).join("");
      const length = view.getUint32(offset + 32);
      seen.push([sha, length]);
      offset += 36 + (length === 0xffffffff ? 0 : length);
    }
    expect(seen.map(([sha]) => sha).sort()).toEqual([...shas, missing].sort());
    for (const [sha, length] of seen) expect(sha === missing ? length === 0xffffffff : length > 50).toBe(true);
    const refused = await call("POST", `/v1/runner/jobs/${job.id}/images`, { key: "et_rnr_test0000000000000000000000000", json: { sha256: shas }, headers: { "x-lease-token": "lease_wrong" } });
    expect(refused.status).toBe(409);
    const tooMany = await call("POST", `/v1/runner/jobs/${job.id}/images`, { key: "et_rnr_test0000000000000000000000000", json: { sha256: Array(65).fill(missing) }, headers: { "x-lease-token": lease.lease.token } });
    expect(tooMany.status).toBe(400);
  });

  it("leaves images past the 24 MB batch budget out of the answer (always one in), for the runner to ask again", async () => {
    const { key, projectId, datasetId } = await createTrainableDataset();
    const job = (await createJob(key, datasetId)).body;
    await onlyThisJob(job.id);
    const lease = (await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: "r1", wait_s: 0 } })).body;
    const big = ["a".repeat(64), "b".repeat(64)];
    for (const sha of big) await env.BUCKET.put(`projects/${projectId}/images/${sha}`, new Uint8Array(14 * 1024 * 1024).fill(7));
    // Two large images of the job's snapshot (a runner gets only its job's images).
    for (const sha of big) {
      await env.DB.prepare("insert into dataset_images (dataset_id, label, filename, sha256, bytes, format, width, height, added_version) values (?, 'cat', ?, ?, ?, 'png', 8, 8, ?)")
        .bind(datasetId, `${sha.slice(0, 8)}.png`, sha, 14 * 1024 * 1024, job.dataset_version).run();
    }
    const ask = async (shas: string[]) => {
      const response = await call("POST", `/v1/runner/jobs/${job.id}/images`, { key: "et_rnr_test0000000000000000000000000", json: { sha256: shas }, headers: { "x-lease-token": lease.lease.token } });
      expect(response.status).toBe(200);
      const body = new Uint8Array(await response.arrayBuffer());
      return { count: body.length / (36 + 14 * 1024 * 1024), first: [...body.subarray(0, 1)][0] };
    };
    const first = await ask(big);
    expect(first.count).toBe(1);
    const other = first.first === 0xaa ? big[1]! : big[0]!;
    expect((await ask([other])).count).toBe(1);
  });

  it("puts a job whose runner vanished back in the queue from the scheduled sweep, even when no runner polls", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await createJob(key, datasetId)).body;
    await onlyThisJob(job.id);
    await runnerCall("POST", "/v1/runner/lease", { json: { runner_id: "vanishing", wait_s: 0 } });
    await env.DB.prepare("update jobs set lease_expires_at = ? where id = ?").bind(new Date(Date.now() - 1000).toISOString(), job.id).run();
    // A read never writes (tests/workers/sweeps.test.ts); the cron's sweep does.
    await runScheduledSweeps(env as any);
    const read = (await callJson("GET", `/v1/jobs/${job.id}`, { key })).body;
    expect(read.status).toBe("queued");
    expect(read.attempt).toBe(1);
    expect(read.error).toMatch(/lost its runner/);
    // Which runner (and so which host) ran a tenant's job is the operator's business, not the tenant's.
    expect(read.error).not.toMatch(/rnr_|vanishing/);
  });

  it("answers 204 after the long poll when no job is queued", async () => {
    await env.DB.prepare("update jobs set status = 'canceled' where status in ('queued', 'running')").run();
    const started = Date.now();
    const res = await call("POST", "/v1/runner/lease", { key: "et_rnr_test0000000000000000000000000", json: { runner_id: "r", wait_s: 1 } });
    expect(res.status).toBe(204);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it("caches embeddings by image hash and as packs, through the leased job", async () => {
    const { key: apiKey, datasetId } = await createTrainableDataset(5);
    const job = (await createJob(apiKey, datasetId)).body;
    await onlyThisJob(job.id);
    const lease = (await runnerCall("POST", "/v1/runner/lease", { json: { wait_s: 0 } })).body;
    const shas: string[] = [...new Set<string>(lease.images.map((i: { sha256: string }) => i.sha256))].sort();
    const headers = { "x-lease-token": lease.lease.token };
    const key = "ab".repeat(16);
    const dim = 3;
    const record = (sha: string, values: number[]) => {
      const r = new Uint8Array(32 + dim * 4);
      r.set(Uint8Array.from(sha.match(/../g)!.map((h) => parseInt(h, 16))), 0);
      new Float32Array(r.buffer, 32, dim).set(values);
      return r;
    };
    const body = new Uint8Array([...record(shas[0]!, [1, 2, 3]), ...record(shas[1]!, [4, 5, 6])]);
    const pack = await sha256Hex(shas.join("\n"));
    const base = `/v1/runner/jobs/${job.id}/embeddings/${key}`;
    expect((await runnerCall("PUT", `${base}?dim=${dim}`, { body, headers })).body.stored).toBe(2);
    const found = new Uint8Array(await (await call("POST", `${base}/lookup`, { key: RUNNER_TOKEN, json: { sha256: [shas[0], shas[2]] }, headers })).arrayBuffer());
    expect(found.length).toBe(32 + dim * 4);
    expect(Array.from(new Float32Array(found.slice(32).buffer))).toEqual([1, 2, 3]);
    // A pack in two shards (runners write shard 0 last), each streamed into R2 and read back streamed.
    const shard1 = record(shas[2]!, [7, 8, 9]);
    expect((await runnerCall("PUT", `${base}?dim=${dim}&pack=${pack}&shard=1&shards=2`, { body: shard1, headers })).body.stored).toBe(1);
    expect((await runnerCall("PUT", `${base}?dim=${dim}&pack=${pack}&shard=0&shards=2`, { body, headers })).body.stored).toBe(2);
    const fromPack = await call("POST", `${base}/lookup`, { key: RUNNER_TOKEN, json: { sha256: [], pack }, headers });
    expect(fromPack.headers.get("x-embedding-source")).toBe("pack");
    expect(fromPack.headers.get("x-embedding-pack-shards")).toBe("2");
    expect((await fromPack.arrayBuffer()).byteLength).toBe(body.length);
    const second = await call("POST", `${base}/lookup`, { key: RUNNER_TOKEN, json: { sha256: [], pack, shard: 1 }, headers });
    expect(second.headers.get("x-embedding-source")).toBe("pack");
    expect(new Uint8Array(await second.arrayBuffer())).toEqual(shard1);
    // A pack shard holding a record of an image outside the snapshot is refused and nothing is stored.
    const outsider = record("cd".repeat(32), [0, 0, 0]);
    const refused = await runnerCall("PUT", `${base}?dim=${dim}&pack=${pack}&shard=2&shards=3`, { body: new Uint8Array([...record(shas[3]!, [1, 1, 1]), ...outsider]), headers });
    expect(refused.body.error.code).toBe("not_leased");
    expect(refused.body.error.details.sha256).toBe("cd".repeat(32));
    const listed = await env.BUCKET.list({ prefix: "projects/" });
    expect(listed.objects.filter((o) => o.key.endsWith(`${pack}.2`))).toEqual([]);
    const bad = await runnerCall("PUT", `${base}?dim=${dim}`, { body: new Uint8Array(7), headers });
    expect(bad.body.error.code).toBe("invalid_embedding_records");
  });
});
