/**
 * Every list is paginated (../shared API.md, "Lists, limits, timestamps"): ?limit= 1 to 100 (default 50), an opaque
 * cursor, newest first; following next_cursor visits every item exactly once, also while items are being added.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { SEEDED_BACKBONE_SPEC, callJson, callMetered, createProject } from "./helpers";

/** Inserts `n` rows of a project-owned table straight into D1, created `base`+i ms (the API path is tested elsewhere). */
async function seed(table: "datasets" | "jobs" | "models" | "aliases", projectId: string, n: number, base = Date.UTC(2026, 0, 1)) {
  const rows = Array.from({ length: n }, (_, i) => ({ id: `${table}_${projectId}_${String(i).padStart(5, "0")}`, at: new Date(base + i * 1000).toISOString() }));
  const json = JSON.stringify(rows);
  const each = "from json_each(?2) as e";
  const sql = {
    datasets: `insert into datasets (id, project_id, name, created_at, updated_at) select json_extract(e.value, '$.id'), ?1, 'd', json_extract(e.value, '$.at'), json_extract(e.value, '$.at') ${each}`,
    jobs: `insert into jobs (id, project_id, dataset_id, dataset_version, backbone, config, run_after, status, created_at, updated_at) select json_extract(e.value, '$.id'), ?1, 'ds_x', 1, 'bb_builtin_mobilenet_v2', '{"head":{"type":"linear"},"hyperparameters":{}}', json_extract(e.value, '$.at'), 'canceled', json_extract(e.value, '$.at'), json_extract(e.value, '$.at') ${each}`,
    models: `insert into models (id, project_id, job_id, dataset_id, dataset_version, backbone, labels, metrics, object_prefix, head_bytes, created_at, updated_at) select json_extract(e.value, '$.id'), ?1, json_extract(e.value, '$.id'), 'ds_x', 1, 'bb_builtin_mobilenet_v2', '["a","b"]', '{"accuracy":1,"per_class":[],"confusion_matrix":[]}', 'x', 1, json_extract(e.value, '$.at'), json_extract(e.value, '$.at') ${each}`,
    aliases: `insert into aliases (project_id, name, model_id, created_at, updated_at) select ?1, 'a' || e.key, 'mdl_x', json_extract(e.value, '$.at'), json_extract(e.value, '$.at') ${each}`,
  }[table];
  await env.DB.prepare(sql).bind(projectId, json).run();
}

async function walk(path: string, key: string, field: string, limit: number, between?: (page: number) => Promise<void>) {
  const seen: any[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const res: { status: number; body: any } = await callJson("GET", `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { key });
    expect(res.status).toBe(200);
    expect(res.body[field].length).toBeLessThanOrEqual(limit);
    seen.push(...res.body[field]);
    cursor = res.body.next_cursor;
    if (!cursor) return seen;
    await between?.(page);
  }
  throw new Error("pagination did not end");
}

const newestFirst = (items: { created_at: string }[]) => items.every((item, i) => i === 0 || items[i - 1].created_at >= item.created_at);

describe("pagination of every list", () => {
  for (const [table, path, field, idOf] of [
    ["datasets", "/v1/datasets", "datasets", (x: any) => x.id],
    ["jobs", "/v1/jobs", "jobs", (x: any) => x.id],
    ["models", "/v1/models", "models", (x: any) => x.id],
    ["aliases", "/v1/aliases", "aliases", (x: any) => x.name],
  ] as const) {
    it(`${path}: pages of ?limit= visit every item once, newest first`, async () => {
      const { key, projectId } = await createProject();
      await seed(table, projectId, 23);
      const items = await walk(path, key, field, 5);
      expect(items).toHaveLength(23);
      expect(new Set(items.map(idOf)).size).toBe(23);
      expect(newestFirst(items)).toBe(true);
      const first = await callJson("GET", path, { key });
      expect(first.body[field]).toHaveLength(23);
      expect(first.body.next_cursor).toBeNull();
    });
  }

  it("defaults to 50 and refuses a limit outside 1..100 and a cursor it did not issue", async () => {
    const { key, projectId } = await createProject();
    await seed("datasets", projectId, 60);
    const first = await callJson("GET", "/v1/datasets", { key });
    expect(first.body.datasets).toHaveLength(50);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    for (const limit of ["0", "101", "x"]) expect((await callJson("GET", `/v1/datasets?limit=${limit}`, { key })).status).toBe(400);
    for (const path of ["/v1/datasets", "/v1/jobs", "/v1/models", "/v1/aliases", "/v1/keys", "/v1/backbones"]) {
      const bad = await callJson("GET", `${path}?cursor=not-a-cursor`, { key });
      expect(bad.status, path).toBe(400);
      expect(bad.body.error.code).toBe("invalid_cursor");
    }
  });

  it("stays exact while items are created between pages", async () => {
    const { key, projectId } = await createProject();
    await seed("datasets", projectId, 12);
    let added = 0;
    const items = await walk("/v1/datasets", key, "datasets", 4, async () => {
      for (let i = 0; i < 3; i++, added++) await callJson("POST", "/v1/datasets", { key, json: { name: `new ${added}` } });
    });
    // The new datasets are newer than every page already shown, so they are not part of this walk; the old ones
    // all are, exactly once.
    expect(items.map((d) => d.id).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `datasets_${projectId}_${String(i).padStart(5, "0")}`));
    expect(added).toBeGreaterThan(0);
  });

  it("/v1/keys and /v1/backbones page too (builtin backbones first)", async () => {
    const { key, projectId } = await createProject();
    for (let i = 0; i < 6; i++) await callJson("POST", "/v1/keys", { key, json: { name: `k${i}` } });
    const keys = await walk("/v1/keys", key, "keys", 2);
    expect(keys).toHaveLength(7);
    expect(new Set(keys.map((k) => k.id)).size).toBe(7);
    const at = (i: number) => new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString();
    for (let i = 0; i < 5; i++) {
      await env.DB.prepare("insert into backbones (id, project_id, name, spec, object_prefix, format, param_count, weight_bytes, created_at, updated_at) values (?, ?, ?, ?, 'x', 'layers-model', 1, 1, ?, ?)")
        .bind(`bb_${projectId}_${i}`, projectId, `own ${i}`, SEEDED_BACKBONE_SPEC, at(i), at(i))
        .run();
    }
    const all = (await callJson("GET", "/v1/backbones?limit=100", { key })).body.backbones;
    const builtinCount = all.filter((b: any) => b.builtin).length;
    expect(builtinCount).toBeGreaterThan(0);
    for (const limit of [1, 2, 3]) {
      const paged = await walk("/v1/backbones", key, "backbones", limit);
      expect(paged.map((b) => b.id)).toEqual(all.map((b: any) => b.id));
    }
    expect(all.slice(0, builtinCount).every((b: any) => b.builtin)).toBe(true);
    expect(all.slice(builtinCount).map((b: any) => b.name)).toEqual(["own 4", "own 3", "own 2", "own 1", "own 0"]);
  });

  it("lists a project of 1,000 datasets page by page within D1's limits", async () => {
    const { key, projectId } = await createProject();
    await seed("datasets", projectId, 1000);
    // Some datasets with images, rejections and ingests, so every per-dataset query has rows to group.
    await env.DB.prepare(
      "insert into dataset_images (dataset_id, label, filename, split, sha256, bytes, format, width, height, added_version) select d.id, 'l' || (d.rowid % 3), 'f' || d.rowid || '.png', 'auto', 'sha' || d.rowid, 10, 'png', 8, 8, 1 from datasets d where d.project_id = ?",
    ).bind(projectId).run();
    await env.DB.prepare("insert into dataset_rejections (dataset_id, ingest_id, path, code, message) select d.id, null, 'x.txt', 'not_an_image', 'no' from datasets d where d.project_id = ?").bind(projectId).run();
    let cursor: string | null = null;
    let pages = 0;
    const ids = new Set<string>();
    do {
      const res: any = await callMetered("GET", `/v1/datasets?limit=100${cursor ? `&cursor=${cursor}` : ""}`, { key });
      expect(res.status).toBe(200);
      expect(res.d1.maxParams).toBeLessThanOrEqual(100);
      expect(res.d1.statements).toBeLessThanOrEqual(10);
      for (const d of res.body.datasets) {
        ids.add(d.id);
        expect(d.image_count).toBe(1);
        expect(d.rejected_count).toBe(1);
      }
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor);
    expect(ids.size).toBe(1000);
    expect(pages).toBe(10);
  });
});
