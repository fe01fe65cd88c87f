/**
 * Key scopes, last_used_at, admin key rotation and weak admin keys, written as the attacker's (or the careless
 * operator's) requests with the safe answer asserted.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../workers/index";
import { LAST_USED_SAMPLE_MS, parseAdminKeys, recordKeyUse } from "../../workers/services/auth";
import { getDb } from "../../workers/services/db";
import { ADMIN_KEY, BASE, call, callJson, createProject, createTrainableDataset } from "./helpers";

const predictKeyOf = async (key: string) => {
  const { status, body } = await callJson("POST", "/v1/keys", { key, json: { name: "mobile app", scope: "predict" } });
  expect(status).toBe(201);
  expect(body.scope).toBe("predict");
  return body.secret as string;
};

/** The app with other settings than the test bindings (admin keys), called the way the runtime does. */
async function withEnv(overrides: Record<string, string>, method: string, path: string, key: string, json?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (json !== undefined) headers["content-type"] = "application/json";
  const res = await app.fetch(new Request(BASE + path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) }), { ...env, ...overrides });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

describe("a predict key shipped inside an app", () => {
  it("can read models and aliases and call predict, nothing else (403 scope_required)", async () => {
    const { key, datasetId } = await createTrainableDataset(2);
    const predictKey = await predictKeyOf(key);
    expect((await call("GET", "/v1/models", { key: predictKey })).status).toBe(200);
    // Predict on a model that does not exist: past the scope check, then 404.
    expect((await callJson("POST", "/v1/models/mdl_nope/predict", { key: predictKey, json: { embeddings: [[1]] } })).body.error.code).not.toBe("scope_required");
    expect((await callJson("GET", "/v1/aliases/prod", { key: predictKey })).body.error.code).toBe("alias_not_found");
    const attacks: Array<[string, string, unknown?]> = [
      ["GET", "/v1/datasets"],
      ["GET", `/v1/datasets/${datasetId}`],
      ["DELETE", `/v1/datasets/${datasetId}`],
      ["POST", "/v1/keys", { name: "escalate" }],
      ["GET", "/v1/keys"],
      ["POST", "/v1/jobs", { dataset_id: datasetId }],
      ["GET", "/v1/jobs"],
      ["DELETE", "/v1/models/mdl_x"],
      ["PUT", "/v1/aliases/prod", { model_id: "mdl_x" }],
      ["POST", "/v1/backbones", { name: "x" }],
      ["POST", "/v1/projects", { name: "x" }],
      ["GET", "/v1/runners"],
    ];
    for (const [method, path, json] of attacks) {
      const { status, body } = await callJson(method, path, { key: predictKey, json });
      expect(status, `${method} ${path}`).toBe(403);
      expect(body.error.code).toBe("scope_required");
    }
    // The dataset survived the DELETE attempt.
    expect((await call("GET", `/v1/datasets/${datasetId}`, { key })).status).toBe(200);
  });

  it("a scope other than full or predict is refused with 400 naming the field", async () => {
    const { key } = await createProject();
    const { status, body } = await callJson("POST", "/v1/keys", { key, json: { name: "x", scope: "admin" } });
    expect(status).toBe(400);
    expect(body.error.details.issues[0].path).toBe("scope");
  });
});

describe("last_used_at", () => {
  it("is null for a new key and set once the key is used", async () => {
    const { key } = await createProject();
    const listed = await callJson("GET", "/v1/keys", { key });
    // This very listing used the key: the write runs after the response (waitUntil), so read it from D1.
    const id = listed.body.keys[0].id;
    for (let i = 0; i < 50; i++) {
      const row = await env.DB.prepare("select last_used_at from api_keys where id = ?").bind(id).first<{ last_used_at: string | null }>();
      if (row?.last_used_at) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error("last_used_at was never written");
  });

  it("is written at most once a minute per key (sampled)", async () => {
    const db = getDb(env.DB);
    const caller = { projectId: "p", keyId: "key_x", isAdmin: false, scope: "full" as const, lastUsedAt: new Date(Date.now() - 1000).toISOString() };
    expect(recordKeyUse(db, caller)).toBeNull();
    expect(recordKeyUse(db, { ...caller, lastUsedAt: new Date(Date.now() - LAST_USED_SAMPLE_MS - 1).toISOString() })).not.toBeNull();
    expect(recordKeyUse(db, { ...caller, lastUsedAt: null })).not.toBeNull();
  });
});

describe("admin keys", () => {
  const OLD = "et_admin_old_0123456789abcdefXYZ";
  const NEW = "et_admin_new_9876543210zyxwvuABC";

  it("several admin keys are accepted at once (rotation) and listed, never with their secrets", async () => {
    const setting = { EDGETUNE_ADMIN_KEY: `${NEW}, ${OLD}` };
    for (const key of [OLD, NEW]) expect((await withEnv(setting, "GET", "/v1/datasets", key)).status).toBe(200);
    const listed = await withEnv(setting, "GET", "/v1/keys", NEW);
    const admins = listed.body.keys.filter((k: any) => k.admin);
    expect(admins.map((k: any) => k.id)).toEqual((await parseAdminKeys(`${NEW},${OLD}`)).map((k) => k.id));
    expect(JSON.stringify(listed.body)).not.toContain(OLD);
    expect(JSON.stringify(listed.body)).not.toContain(NEW);
    // After rotation only the new key works.
    expect((await withEnv({ EDGETUNE_ADMIN_KEY: NEW }, "GET", "/v1/datasets", OLD)).status).toBe(401);
    // An admin key cannot be revoked by DELETE: it is rotated in the setting.
    const del = await withEnv(setting, "DELETE", `/v1/keys/${admins[0].id}`, NEW);
    expect(del.status).toBe(409);
  });

  it("a deployment refuses a weak admin key (503 weak_admin_key), even when the caller knows it", async () => {
    for (const weak of ["admin", "changeme", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "et_admin_e2e"]) {
      const { status, body } = await withEnv({ EDGETUNE_ADMIN_KEY: weak }, "POST", "/v1/projects", weak, { name: "pwned" });
      expect(status, weak).toBe(503);
      expect(body.error.code).toBe("weak_admin_key");
    }
    const count = await env.DB.prepare("select count(*) as n from projects where name = 'pwned'").first<{ n: number }>();
    expect(count?.n).toBe(0);
  });

  it("a project key never passes for an admin key", async () => {
    const { key } = await createProject();
    expect((await callJson("POST", "/v1/projects", { key, json: { name: "x" } })).status).toBe(403);
    expect((await callJson("POST", "/v1/runners", { key, json: { name: "x" } })).status).toBe(403);
    expect((await callJson("GET", "/v1/datasets", { key: ADMIN_KEY })).status).toBe(200);
  });
});
