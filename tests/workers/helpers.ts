/** Factories for tests that call the Worker through `exports.default.fetch` inside workerd. */
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { zipSync, type Zippable } from "fflate";
import { runIngestChunk, type IngestMessage } from "../../workers/services/ingest";
import { DOCUMENT_PATHS, assertDocumentedResponse } from "./openapi-validation";

export const ADMIN_KEY = "et_admin_test_key_7Hq2Zp9Lw4Xr";
export const BASE = "http://edgetune.test";

export interface CallOptions {
  key?: string | null;
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

export async function call(method: string, path: string, options: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  const key = options.key === undefined ? ADMIN_KEY : options.key;
  if (key) headers.authorization = `Bearer ${key}`;
  let body = options.body;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  return validatedFetch(new Request(BASE + path, { method, headers, body }));
}

let documents: Promise<any[]> | null = null;
/** The served OpenAPI documents (public API and runner protocol), fetched once per test file. */
export function servedDocuments(): Promise<any[]> {
  documents ??= Promise.all(DOCUMENT_PATHS.map(async (path) => (await exports.default.fetch(new Request(BASE + path))).json()));
  return documents;
}

/**
 * The Worker's `fetch`, with every answer checked against the OpenAPI documents (tests/workers/openapi-validation.ts):
 * an undocumented status, Content-Type or body shape fails the test that got it.
 */
export async function validatedFetch(request: Request): Promise<Response> {
  const response = await exports.default.fetch(request);
  await assertDocumentedResponse(await servedDocuments(), request.method, request.url, response);
  return response;
}

export async function callJson<T = any>(method: string, path: string, options: CallOptions = {}): Promise<{ status: number; body: T }> {
  const res = await call(method, path, options);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A new project and its key (via the admin key). */
export async function createProject(name = "test project"): Promise<{ projectId: string; key: string }> {
  const { status, body } = await callJson("POST", "/v1/projects", { json: { name } });
  if (status !== 201) throw new Error(`project creation failed: ${status} ${JSON.stringify(body)}`);
  return { projectId: body.project.id, key: body.key.secret };
}

export async function createDataset(key: string, name = "flowers"): Promise<string> {
  const { status, body } = await callJson("POST", "/v1/datasets", { key, json: { name } });
  if (status !== 201) throw new Error(`dataset creation failed: ${status} ${JSON.stringify(body)}`);
  return body.id;
}

export function buildZip(files: Record<string, Uint8Array>, level: 0 | 6 = 6): Uint8Array {
  const zippable: Zippable = {};
  for (const [path, bytes] of Object.entries(files)) zippable[path] = [bytes, { level }];
  return zipSync(zippable);
}

/**
 * Runs the ingest queue's work for a dataset synchronously, chunk after chunk, the way the consumer does (tests don't
 * wait on queue delivery timing). Returns how many chunks ran.
 */
export async function drainIngests(datasetId: string, chunkDeadlineMs?: number): Promise<number> {
  const rows = await env.DB.prepare("select id, cursor from ingests where dataset_id = ? and status in ('queued', 'running')").bind(datasetId).all<{ id: string; cursor: number }>();
  let chunks = 0;
  for (const row of rows.results) {
    let message: IngestMessage | null = { kind: "ingest", ingest_id: row.id, cursor: row.cursor };
    while (message) {
      message = await runIngestChunk(env, message, chunkDeadlineMs);
      chunks++;
    }
  }
  return chunks;
}

/** A valid BackboneSpec as stored JSON, for tests that insert backbone rows directly. */
export const SEEDED_BACKBONE_SPEC = JSON.stringify({ name: "seeded", feature_layer: "conv_pw_13_relu", input_size: [224, 224], normalization: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, pooling: "avg", resize: "squash" });

/** A runner registered by the setup file (tests/workers/apply-migrations.ts), as POST /v1/runners would. */
export const RUNNER_TOKEN = "et_rnr_test0000000000000000000000000";
export const RUNNER_ID = "rnr_test";

/** A project with a trainable dataset (2 labels x `perLabel` PNGs), uploaded through the API. */
export async function createTrainableDataset(perLabel = 5, firstSeed = 1): Promise<{ key: string; projectId: string; datasetId: string }> {
  const { key, projectId } = await createProject();
  const datasetId = await createDataset(key);
  const { makePng } = await import("../fixtures/images");
  let seed = firstSeed;
  for (const label of ["cat", "dog"]) {
    for (let i = 0; i < perLabel; i++) {
      const res = await call("PUT", `/v1/datasets/${datasetId}/images/${label}/${i}.png`, { key, body: makePng(8, 8, seed++), headers: { "content-type": "image/png" } });
      if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
    }
  }
  return { key, projectId, datasetId };
}

export const runnerCall = <T = any>(method: string, path: string, options: CallOptions = {}) => callJson<T>(method, path, { key: RUNNER_TOKEN, ...options });

/**
 * A DNS-over-HTTPS JSON answer (the URL policy's resolver) for a mocked fetch: `hosts` maps names to addresses
 * (IPv4 answer A queries, IPv6 AAAA); an unknown name is NXDOMAIN.
 */
export function dohAnswer(url: string, hosts: Record<string, string[]>): Response {
  const query = new URL(url).searchParams;
  const name = query.get("name") ?? "";
  const type = query.get("type") === "AAAA" ? 28 : 1;
  const addresses = hosts[name];
  if (!addresses) return Response.json({ Status: 3 });
  return Response.json({ Status: 0, Answer: addresses.filter((a) => a.includes(":") === (type === 28)).map((data) => ({ name, type, TTL: 60, data })) });
}

/** D1 use of one request, as the Worker's meter counted it (workers/services/d1-meter.ts; D1_METER_HEADERS is on in tests). */
export interface D1Counts {
  statements: number;
  calls: number;
  maxParams: number;
}

export function d1Counts(res: Response): D1Counts {
  const read = (name: string) => {
    const value = res.headers.get(`x-edgetune-d1-${name}`);
    if (value === null) throw new Error(`response has no x-edgetune-d1-${name} header: is D1_METER_HEADERS "true" in the test bindings?`);
    return Number(value);
  };
  return { statements: read("statements"), calls: read("calls"), maxParams: read("max-params") };
}

/** `callJson` plus the request's D1 counts. */
export async function callMetered<T = any>(method: string, path: string, options: CallOptions = {}): Promise<{ status: number; body: T; d1: D1Counts }> {
  const res = await call(method, path, options);
  const d1 = d1Counts(res);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, d1 };
}
