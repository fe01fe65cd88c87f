/**
 * Bodies that move data stay bounded inside the 128 MB isolate: runner uploads stream into R2 (known length
 * required, the runtime's FixedLengthStream holds the body to it), R2 checks a builtin file's pinned sha256 while
 * storing it, and an image batch never carries an image past its byte budget.
 */
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { NSFWJS_MOBILENET_V2 } from "../../shared/catalog";
import { readImageBatch } from "../../workers/services/datasets";
import { sha256Hex } from "../../shared/ids";
import { embeddingPackKey, imageObjectKey, builtinObjectPrefix } from "../../workers/services/object-keys";
import { BASE, RUNNER_TOKEN, call, callJson, createTrainableDataset, runnerCall } from "./helpers";

describe("streamed uploads", () => {
  it("a builtin file of the pinned length but other bytes is refused by R2's sha256 check, and nothing is stored", async () => {
    const builtin = NSFWJS_MOBILENET_V2;
    const prefix = builtinObjectPrefix(builtin.id);
    await env.BUCKET.delete(`${prefix}/model.json`);
    const pinned = builtin.files!["model.json"];
    const wrong = new Uint8Array(pinned.bytes).fill(0x20);
    const refused = await callJson("PUT", `/v1/runner/backbones/${builtin.id}/model.json`, { key: RUNNER_TOKEN, body: wrong });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("builtin_file_mismatch");
    expect(await env.BUCKET.head(`${prefix}/model.json`)).toBeNull();
  });

  it("a runner artifact sent without Content-Length answers 411: it is streamed into R2, which needs the length", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(job.id).run();
    const lease = (await runnerCall("POST", "/v1/runner/lease", { json: { wait_s: 0 } })).body;
    const body = new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new Uint8Array([1, 2, 3])), c.close()) });
    const res = await exports.default.fetch(new Request(`${BASE}/v1/runner/jobs/${job.id}/artifacts/head.bin`, { method: "PUT", body, headers: { authorization: `Bearer ${RUNNER_TOKEN}`, "x-lease-token": lease.lease.token }, duplex: "half" } as RequestInit));
    expect(res.status).toBe(411);
    expect(((await res.json()) as any).error.code).toBe("length_required");
    const stored = await call("PUT", `/v1/runner/jobs/${job.id}/artifacts/head.bin`, { key: RUNNER_TOKEN, body: new Uint8Array([1, 2, 3]), headers: { "x-lease-token": lease.lease.token } });
    expect(await stored.json()).toEqual({ name: "head.bin", bytes: 3 });
  });

  it("an image batch leaves out every image past its byte budget, even the first", async () => {
    const projectId = "prj_batch_budget";
    await env.BUCKET.put(imageObjectKey(projectId, "a".repeat(64)), new Uint8Array(600));
    await env.BUCKET.put(imageObjectKey(projectId, "b".repeat(64)), new Uint8Array(300));
    const batch = await readImageBatch(env.BUCKET, projectId, ["a".repeat(64), "b".repeat(64), "c".repeat(64)], { maxBytes: 500, concurrency: 1 });
    expect(batch.map(([sha, bytes]) => [sha[0], bytes?.length ?? null])).toEqual([["b", 300], ["c", null]]);
  });

  it("a pack stored whole before packs had shards reads back as one shard", async () => {
    const { key, projectId, datasetId } = await createTrainableDataset();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    await env.DB.prepare("update jobs set status = 'canceled' where id != ? and status in ('queued', 'running')").bind(job.id).run();
    const lease = (await runnerCall("POST", "/v1/runner/lease", { json: { wait_s: 0 } })).body;
    const shas = [...new Set<string>(lease.images.map((i: { sha256: string }) => i.sha256))].sort();
    const pack = await sha256Hex(shas.join("\n"));
    const cacheKey = "cd".repeat(16);
    const old = new Uint8Array(32 + 4 * 2).fill(9);
    await env.BUCKET.put(embeddingPackKey(projectId, cacheKey, pack), old); // no `shards` metadata: the old layout
    const res = await call("POST", `/v1/runner/jobs/${job.id}/embeddings/${cacheKey}/lookup`, { key: RUNNER_TOKEN, json: { sha256: [], pack }, headers: { "x-lease-token": lease.lease.token } });
    expect(res.headers.get("x-embedding-source")).toBe("pack");
    expect(res.headers.get("x-embedding-pack-shards")).toBe("1");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(old);
  });
});
