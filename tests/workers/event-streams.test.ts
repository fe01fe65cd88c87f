/**
 * SSE limits (workers/services/event-streams.ts): streams per key are capped, a revoked key is noticed at the next
 * re-check, polling backs off. Before, a key could open any number of streams, each polling D1 every second for
 * 5 minutes (600 queries), and a revoked key kept streaming until the 5 minutes were over.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { getDb } from "../../workers/services/db";
import { MAX_STREAMS_PER_KEY, POLL_MAX_MS, POLL_MIN_MS, closeStream, nextPollMs, openStream, renewStream } from "../../workers/services/event-streams";
import { call, callJson, createProject, createTrainableDataset } from "./helpers";

describe("event stream limits", () => {
  it("caps open streams per key: one more answers 429 rate_limited with Retry-After", async () => {
    const { key, datasetId } = await createTrainableDataset();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    const keys = (await callJson("GET", "/v1/keys", { key })).body.keys;
    const keyId = keys[0].id;
    const db = getDb(env.DB);
    const open: string[] = [];
    for (let i = 0; i < MAX_STREAMS_PER_KEY; i++) open.push(await openStream(db, keyId, job.id));
    const res = await call("GET", `/v1/jobs/${job.id}/events`, { key });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect((await res.json<any>()).error.code).toBe("rate_limited");
    await closeStream(db, open[0]);
    // A slot is free again: the stream opens (the job is queued, so it stays open; cancel the job to end it).
    await callJson("POST", `/v1/jobs/${job.id}/cancel`, { key });
    const ok = await call("GET", `/v1/jobs/${job.id}/events`, { key });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("event: end");
  });

  it("an expired slot (its isolate died) frees itself", async () => {
    const db = getDb(env.DB);
    for (let i = 0; i < MAX_STREAMS_PER_KEY; i++) await openStream(db, "key_dead", "job_x", Date.now() - 10 * 60_000);
    await expect(openStream(db, "key_dead", "job_x")).resolves.toMatch(/^sse_/);
  });

  it("a revoked key fails the re-check; the admin key has no row and passes", async () => {
    const { key } = await createProject();
    const created = (await callJson("POST", "/v1/keys", { key, json: { name: "watcher" } })).body;
    const db = getDb(env.DB);
    const stream = await openStream(db, created.id, "job_x");
    expect(await renewStream(db, stream, created.id)).toBe(true);
    expect((await call("DELETE", `/v1/keys/${created.id}`, { key })).status).toBe(204);
    expect(await renewStream(db, stream, created.id)).toBe(false);
    expect(await renewStream(db, stream, "key_admin")).toBe(true);
  });

  it("backs off while nothing happens and resets when events arrive", () => {
    let ms = POLL_MIN_MS;
    const seen = [ms];
    for (let i = 0; i < 6; i++) seen.push((ms = nextPollMs(ms, false)));
    expect(seen).toEqual([1000, 2000, 4000, 8000, 8000, 8000, 8000]);
    expect(Math.max(...seen)).toBe(POLL_MAX_MS);
    expect(nextPollMs(ms, true)).toBe(POLL_MIN_MS);
  });
});
