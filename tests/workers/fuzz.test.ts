/**
 * Fuzzing every route of the served OpenAPI documents (/openapi.json and /runner/openapi.json) with malformed and hostile inputs (fast-check, seeded, bounded),
 * as project A's full key, A's predict key, project B's key, a garbage key and no key, with B's real resource ids mixed
 * into the inputs: no answer is a 5xx, no answer to anyone but B carries B's data, and the API still serves B's data
 * intact afterwards. Prints the number of requests it made.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { call, callJson, createDataset, createProject } from "./helpers";
import { makePng } from "../fixtures/images";

const SEED = 20261202;
const RUNS_PER_OPERATION = 6;

type Operation = { method: string; path: string; parameters: Array<{ name: string; in: string }>; bodyTypes: string[] };

function operationsOf(doc: any): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      out.push({ method: method.toUpperCase(), path, parameters: op.parameters ?? [], bodyTypes: Object.keys(op.requestBody?.content ?? {}) });
    }
  }
  return out;
}

describe("fuzzing the OpenAPI document's routes", () => {
  it("never answers 5xx, never leaks another project's data, and keeps serving", { timeout: 600_000 }, async () => {
    // Both documents: the public API and the runner protocol.
    const operations = [
      ...operationsOf((await callJson("GET", "/openapi.json", { key: null })).body),
      ...operationsOf((await callJson("GET", "/runner/openapi.json", { key: null })).body),
    ];
    expect(operations.length).toBeGreaterThan(20);

    // Project B: the victim, with a dataset (marked name) and an image.
    const victim = await createProject("victim project");
    const marker = `victim-secret-${Date.now()}`;
    const victimDataset = await createDataset(victim.key, marker);
    const put = await callJson("PUT", `/v1/datasets/${victimDataset}/images/cat/a.png`, { key: victim.key, body: makePng(8, 8, 777_001), headers: { "content-type": "image/png" } });
    expect(put.status).toBe(201);
    const victimSecrets = [victimDataset, marker, put.body.sha256 as string, victim.projectId];

    // Project A: the attacker, with a full key and a predict key.
    const attacker = await createProject("attacker project");
    const attackerDataset = await createDataset(attacker.key, "mine");
    const predictKey = (await callJson("POST", "/v1/keys", { key: attacker.key, json: { name: "app", scope: "predict" } })).body.secret as string;
    const callers: Array<{ name: string; key: string | null; mayReadVictim: boolean }> = [
      { name: "attacker", key: attacker.key, mayReadVictim: false },
      { name: "predict", key: predictKey, mayReadVictim: false },
      { name: "victim", key: victim.key, mayReadVictim: true },
      { name: "garbage", key: "et_not_a_key", mayReadVictim: false },
      { name: "none", key: null, mayReadVictim: false },
    ];

    const hostileString = fc.oneof(
      fc.constantFrom(victimDataset, attackerDataset, put.body.sha256, victim.projectId, "..", "../../v1/keys", "%2e%2e%2f", "%00", "' or 1=1 --", "<script>alert(1)</script>", "\u202egnp.exe", "cafe\u0301", "a".repeat(5000), "-1", "0", "1e309", "null", "[]", "{}"),
      fc.string({ maxLength: 40 }),
      fc.string({ unit: "grapheme", maxLength: 20 }),
    );
    const hostileJson = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.dictionary(fc.constantFrom("name", "dataset_id", "backbone", "model_id", "url", "scope", "images", "embeddings", "label", "split", "quotas", "hyperparameters", "head", "events", "lease_token", "sha256"), fc.oneof(hostileString, fc.jsonValue({ maxDepth: 2 }))),
    );
    const hostileBody = fc.oneof(
      hostileJson.map((v) => ({ type: "application/json", body: JSON.stringify(v) as BodyInit })),
      fc.string({ maxLength: 200 }).map((s) => ({ type: "application/json", body: s as BodyInit })),
      fc.uint8Array({ maxLength: 2048 }).map((b) => ({ type: "application/octet-stream", body: b as BodyInit })),
      fc.uint8Array({ maxLength: 512 }).map((b) => ({ type: "image/png", body: b as BodyInit })),
      fc.constant({ type: "multipart/form-data; boundary=x", body: "--x\r\nContent-Disposition: form-data; name=\"spec\"\r\n\r\n{}\r\n--x--" as BodyInit }),
    );

    let requests = 0;
    const failures: string[] = [];
    for (const [index, op] of operations.entries()) {
      const inputs = fc.sample(
        fc.record({
          caller: fc.constantFrom(...callers),
          params: fc.array(hostileString, { minLength: 4, maxLength: 4 }),
          query: fc.dictionary(fc.constantFrom(...(op.parameters.filter((p) => p.in === "query").map((p) => p.name).concat(["limit", "cursor", "force"]))), hostileString, { maxKeys: 3 }),
          body: fc.option(hostileBody, { nil: undefined }),
        }),
        { seed: SEED + index, numRuns: RUNS_PER_OPERATION },
      );
      for (const input of inputs) {
        let n = 0;
        const path = op.path.replace(/\{[^}]+\}/g, () => encodeURIComponent(String(input.params[n++ % 4])));
        const query = new URLSearchParams(Object.entries(input.query).map(([k, v]) => [k, String(v)])).toString();
        const url = `${path}${query ? `?${query}` : ""}`;
        const headers: Record<string, string> = {};
        if (input.body) headers["content-type"] = input.body.type;
        const res = await call(op.method, url, { key: input.caller.key, body: op.method === "GET" || op.method === "DELETE" ? undefined : input.body?.body, headers });
        requests++;
        // Event streams are read no further than their headers.
        const text = (res.headers.get("content-type") ?? "").startsWith("text/event-stream") ? (await res.body?.cancel(), "") : await res.text();
        const where = `${input.caller.name} ${op.method} ${url.slice(0, 120)} -> ${res.status}`;
        if (res.status >= 500) failures.push(`${where}: ${text.slice(0, 200)}`);
        if (!input.caller.mayReadVictim && res.status < 300) {
          for (const secret of victimSecrets) {
            // The attacker's own requests may echo an id it sent; a 2xx body carrying B's data is a leak.
            if (text.includes(secret) && !url.includes(encodeURIComponent(secret)) && !url.includes(secret)) failures.push(`${where}: leaked ${secret}`);
          }
        }
      }
    }
    console.log(`fuzz: ${requests} requests over ${operations.length} operations (seed ${SEED})`);
    expect(failures).toEqual([]);

    // Still answering, and B's data is intact.
    const after = await callJson("GET", `/v1/datasets/${victimDataset}`, { key: victim.key });
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ id: victimDataset, name: marker, image_count: 1 });
    const image = await call("GET", `/v1/datasets/${victimDataset}/images/${put.body.sha256}`, { key: victim.key });
    expect(image.status).toBe(200);
    expect(new Uint8Array(await image.arrayBuffer())).toEqual(makePng(8, 8, 777_001));
  });
});
