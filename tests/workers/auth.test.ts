import { describe, expect, it } from "vitest";
import { call, callJson, createDataset, createProject } from "./helpers";

describe("API keys and tenancy", () => {
  it("rejects a request without a key with 401 missing_api_key", async () => {
    const { status, body } = await callJson("GET", "/v1/datasets", { key: null });
    expect(status).toBe(401);
    expect(body.error.code).toBe("missing_api_key");
  });

  it("rejects an unknown key with 401 invalid_api_key", async () => {
    const { status, body } = await callJson("GET", "/v1/datasets", { key: "et_nope" });
    expect(status).toBe(401);
    expect(body.error.code).toBe("invalid_api_key");
  });

  it("creates a project whose key works, and only the admin key may create projects", async () => {
    const { key } = await createProject();
    expect(key).toMatch(/^et_/);
    expect((await call("GET", "/v1/datasets", { key })).status).toBe(200);
    const denied = await callJson("POST", "/v1/projects", { key, json: { name: "x" } });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe("admin_key_required");
  });

  it("validates project creation with 400 naming the field", async () => {
    const { status, body } = await callJson("POST", "/v1/projects", { json: { name: "" } });
    expect(status).toBe(400);
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.details.issues[0].path).toBe("name");
  });

  it("answers 400 malformed_json for a body that is not JSON", async () => {
    const res = await call("POST", "/v1/keys", { body: "{not json", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe("malformed_json");
  });

  it("creates, lists (without secrets) and revokes keys; a revoked key gets 401", async () => {
    const { key } = await createProject();
    const created = await callJson("POST", "/v1/keys", { key, json: { name: "ci" } });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^et_/);
    const listed = await callJson("GET", "/v1/keys", { key });
    expect(listed.body.keys.map((k: any) => k.name).sort()).toEqual(["ci", "default"]);
    expect(JSON.stringify(listed.body)).not.toContain(created.body.secret);
    expect((await call("DELETE", `/v1/keys/${created.body.id}`, { key })).status).toBe(204);
    expect((await call("GET", "/v1/datasets", { key: created.body.secret })).status).toBe(401);
  });

  it("answers 404 when revoking another project's key", async () => {
    const a = await createProject("a");
    const b = await createProject("b");
    const keyOfB = (await callJson("GET", "/v1/keys", { key: b.key })).body.keys[0].id;
    const res = await callJson("DELETE", `/v1/keys/${keyOfB}`, { key: a.key });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("key_not_found");
  });

  it("never shows one project's dataset to another project's key", async () => {
    const a = await createProject("a");
    const b = await createProject("b");
    const id = await createDataset(a.key);
    const res = await callJson("GET", `/v1/datasets/${id}`, { key: b.key });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("dataset_not_found");
    expect((await callJson("GET", "/v1/datasets", { key: b.key })).body.datasets).toEqual([]);
    expect((await call("DELETE", `/v1/datasets/${id}`, { key: b.key })).status).toBe(404);
  });

  it("stores keys only as hashes", async () => {
    const { key } = await createProject();
    const { env } = await import("cloudflare:test");
    const rows = await env.DB.prepare("select * from api_keys").all();
    expect(JSON.stringify(rows.results)).not.toContain(key);
  });
});

describe("documents", () => {
  it("serves an OpenAPI 3.1 document listing the dataset routes", async () => {
    const { status, body } = await callJson("GET", "/openapi.json", { key: null });
    expect(status).toBe(200);
    expect(body.openapi).toBe("3.1.0");
    expect(Object.keys(body.paths)).toContain("/v1/datasets/{id}/uploads/{upload_id}/parts/{n}");
    expect(body.components.schemas.Dataset).toBeDefined();
  });

  it("serves a docs page and a 404 with a code for unknown routes", async () => {
    expect((await call("GET", "/docs", { key: null })).headers.get("content-type")).toContain("text/html");
    const res = await callJson("GET", "/nope", { key: null });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("route_not_found");
  });
});
