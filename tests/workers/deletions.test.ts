/**
 * Deleting a dataset of any size: gone from the API in one bounded request, its rows and the R2 objects only it used
 * purged in bounded steps (inline, then the queue), objects shared with another dataset kept. The old code ran one
 * statement per 90 images inside the request (229 at 20,000 images; past ~90,000 it ran out of D1's 1,000 queries
 * halfway and orphaned the rest of the objects).
 */
import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { meterD1 } from "../../workers/services/d1-meter";
import { imageObjectKey } from "../../workers/services/object-keys";
import { runPurgeMessage } from "../../workers/services/deletions";
import { callJson, callMetered, createDataset, createProject } from "./helpers";

const shaOf = (i: number) => i.toString(16).padStart(64, "0");

async function seedImages(datasetId: string, from: number, to: number) {
  await env.DB.prepare(
    `with recursive n(i) as (select ?2 union all select i + 1 from n where i < ?3)
     insert into dataset_images (dataset_id, label, filename, split, sha256, bytes, format, width, height, added_version)
     select ?1, 'l' || (i % 5), 'f' || i || '.png', 'auto', printf('%064x', i), 10, 'png', 8, 8, 1 from n`,
  ).bind(datasetId, from, to).run();
  await env.DB.prepare("update datasets set status = 'ready' where id = ?").bind(datasetId).run();
}

describe("deleting a dataset", () => {
  it("deletes 20,000 images in one bounded call and purges the rest in bounded queue steps, keeping shared bytes", async () => {
    const { key, projectId } = await createProject();
    const big = await createDataset(key, "big");
    const other = await createDataset(key, "other");
    await seedImages(big, 1, 20_000);
    await seedImages(other, 100, 100); // shares the bytes of image 100
    const sampled = Array.from({ length: 200 }, (_, k) => (k + 1) * 100);
    for (const i of sampled) await env.BUCKET.put(imageObjectKey(projectId, shaOf(i)), "x");

    // This test runs the purge messages itself: the DELETE's message must not also reach the pool's queue consumer,
    // which would purge the same deletion concurrently whenever the test takes over ~1 s to get there.
    const send = vi.spyOn(env.INGEST_QUEUE, "send").mockResolvedValue(undefined as never);
    const res = await callMetered("DELETE", `/v1/datasets/${big}`, { key });
    expect(send).toHaveBeenCalledWith({ kind: "purge", deletion_id: expect.any(String) });
    send.mockRestore();
    expect(res.status).toBe(204);
    expect(res.d1.maxParams).toBeLessThanOrEqual(100);
    expect(res.d1.statements).toBeLessThan(100);
    expect((await callJson("GET", `/v1/datasets/${big}`, { key })).status).toBe(404);
    expect((await callJson("GET", "/v1/datasets", { key })).body.datasets.map((d: { id: string }) => d.id)).toEqual([other]);

    const deletion = await env.DB.prepare("select id from deletions where target_id = ?").bind(big).first<{ id: string }>();
    let message: { kind: "purge"; deletion_id: string } | null = { kind: "purge", deletion_id: deletion!.id };
    let messages = 0;
    while (message) {
      const { db, usage } = meterD1(env.DB);
      message = await runPurgeMessage({ ...env, DB: db } as any, message);
      expect(usage.statements).toBeLessThan(1000);
      expect(usage.maxParams).toBeLessThanOrEqual(100);
      messages++;
    }
    expect(messages).toBeLessThanOrEqual(3);
    const left = await env.DB.prepare("select count(*) as n from dataset_images where dataset_id = ?").bind(big).first<{ n: number }>();
    expect(left!.n).toBe(0);
    const row = await env.DB.prepare("select status, rows_deleted from deletions where id = ?").bind(deletion!.id).first();
    expect(row).toEqual({ status: "done", rows_deleted: 20_000 });
    for (const i of sampled) {
      const object = await env.BUCKET.head(imageObjectKey(projectId, shaOf(i)));
      expect(object === null, `image ${i}`).toBe(i !== 100);
    }
  });

  it("finishes a small dataset inside the request", async () => {
    const { key, projectId } = await createProject();
    const small = await createDataset(key, "small");
    await seedImages(small, 1, 30);
    await env.BUCKET.put(imageObjectKey(projectId, shaOf(7)), "x");
    expect((await callJson("DELETE", `/v1/datasets/${small}`, { key })).status).toBe(204);
    expect(await env.BUCKET.head(imageObjectKey(projectId, shaOf(7)))).toBeNull();
    const row = await env.DB.prepare("select status from deletions where target_id = ?").bind(small).first();
    expect(row).toEqual({ status: "done" });
  });
});
