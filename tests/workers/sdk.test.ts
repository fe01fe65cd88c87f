/**
 * The SDK (sdk/) against the real Worker in workerd: typed errors, retry on 429 honouring Retry-After, no retry of a
 * non-idempotent call on 5xx, job events resuming after a dropped stream with Last-Event-ID, pagination, and a
 * multipart upload that resumes where an interrupted one stopped. Faults (a 429, a cut stream, a failing part) are
 * injected by a thin fetch wrapper in front of the Worker; everything else is the Worker itself.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Edgetune, EdgetuneError, collect, zipSource, type ResumeStore, type ZipSourceEntry } from "../../sdk/index";
import { appendEvent } from "../../workers/services/jobs";
import { getDb } from "../../workers/services/db";
import { makePng, makeStoredPng } from "../fixtures/images";
import { BASE, callJson, createDataset, createProject, createTrainableDataset, drainIngests, validatedFetch } from "./helpers";

type Shim = (request: Request, forward: (r: Request) => Promise<Response>) => Promise<Response>;

/** A client whose requests reach the Worker through `shim` (default: straight through); counts requests. */
function client(key: string, shim?: Shim, extra: Partial<ConstructorParameters<typeof Edgetune>[0]> = {}) {
  const seen: Request[] = [];
  const forward = (r: Request) => validatedFetch(r); // every answer checked against the OpenAPI documents
  const sdk = new Edgetune({
    url: BASE, apiKey: key, baseBackoffMs: 5, random: () => 0.5, ...extra,
    fetch: async (input, init) => {
      const request = new Request(input as RequestInfo, init);
      seen.push(request.clone());
      return shim ? shim(request, forward) : forward(request);
    },
  });
  return { sdk, seen };
}

const entriesOf = (files: Record<string, Uint8Array>): ZipSourceEntry[] =>
  Object.entries(files).map(([name, bytes]) => ({ name, size: bytes.length, mtimeMs: Date.UTC(2026, 0, 1), read: async function* () { yield bytes; } }));

describe("SDK errors", () => {
  it("throws one typed error carrying the API's status, code and details", async () => {
    const { key } = await createProject();
    const { sdk } = client(key);
    const err = await sdk.datasets.get("ds_missing").catch((e) => e);
    expect(err).toBeInstanceOf(EdgetuneError);
    expect(err).toMatchObject({ status: 404, code: "dataset_not_found", details: { id: "ds_missing" }, request: "GET /v1/datasets/ds_missing" });
    const bad = await client("et_not_a_key").sdk.datasets.list().catch((e) => e);
    expect(bad).toMatchObject({ status: 401, code: "invalid_api_key" });
    const invalid = await sdk.datasets.create({ name: "" }).catch((e) => e);
    expect(invalid).toMatchObject({ status: 400, code: "invalid_request" });
  });

  it("names the project a key belongs to (what `edgetune login` checks)", async () => {
    const { key, projectId } = await createProject("acme");
    expect(await client(key).sdk.project()).toEqual({ id: projectId, name: "acme", admin: false });
  });
});

describe("SDK retries", () => {
  it("retries a 429 after the Retry-After the API gave, then succeeds", async () => {
    const { key } = await createProject();
    let refused = 0;
    const delays: number[] = [];
    const { sdk, seen } = client(key, async (request, forward) => {
      if (refused++ === 0) return Response.json({ error: { code: "rate_limited", message: "slow down" } }, { status: 429, headers: { "retry-after": "1" } });
      return forward(request);
    });
    const started = Date.now();
    const dataset = await sdk.http.json<any>("POST", "/v1/datasets", { json: { name: "after 429" }, onRetry: (r) => delays.push(r.delayMs) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeGreaterThanOrEqual(1000);
    expect(seen).toHaveLength(2);
    expect(dataset.name).toBe("after 429");
    // Exactly one dataset: the refused request never reached the Worker.
    expect((await sdk.datasets.list()).datasets.filter((d) => d.name === "after 429")).toHaveLength(1);
  });

  it("gives up on 429 with a typed error when Retry-After is longer than it will wait", async () => {
    const { key } = await createProject();
    const { sdk, seen } = client(key, async () => Response.json({ error: { code: "rate_limited", message: "come back tomorrow" } }, { status: 429, headers: { "retry-after": "86400" } }));
    await expect(sdk.datasets.list()).rejects.toMatchObject({ status: 429, code: "rate_limited" });
    expect(seen).toHaveLength(1);
  });

  it("retries 5xx and network errors for reads, never for a POST that may have run", async () => {
    const { key } = await createProject();
    let calls = 0;
    const flaky = client(key, async (request, forward) => {
      calls++;
      if (calls === 1) throw new TypeError("fetch failed: connection reset");
      if (calls === 2) return new Response("bad gateway", { status: 502 });
      return forward(request);
    });
    expect((await flaky.sdk.datasets.list()).datasets).toEqual([]);
    expect(flaky.seen).toHaveLength(3);

    const failing = client(key, async () => new Response("bad gateway", { status: 502 }));
    await expect(failing.sdk.datasets.create({ name: "x" })).rejects.toMatchObject({ status: 502, code: "http_502" });
    expect(failing.seen).toHaveLength(1);
    const offline = client(key, async () => { throw new TypeError("fetch failed"); });
    await expect(offline.sdk.jobs.create({ dataset_id: "ds_x" })).rejects.toMatchObject({ status: 0, code: "network_error" });
    expect(offline.seen).toHaveLength(1);
  });

  it("stops waiting as soon as the caller aborts", async () => {
    const { key } = await createProject();
    const { sdk } = client(key, async () => Response.json({ error: { code: "rate_limited", message: "wait" } }, { status: 429, headers: { "retry-after": "30" } }));
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user gave up")), 50);
    const started = Date.now();
    await expect(sdk.datasets.list({ signal: controller.signal })).rejects.toThrow("user gave up");
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe("SDK job events", () => {
  async function jobWithEvents() {
    const { key, datasetId } = await createTrainableDataset();
    const { sdk } = client(key);
    const job = await sdk.jobs.create({ dataset_id: datasetId });
    const db = getDb(env.DB);
    for (let done = 1; done <= 4; done++) await appendEvent(db, job.id, "progress", { phase: "embedding", done, total: 4 });
    await sdk.jobs.cancel(job.id);
    return { key, job };
  }

  it("yields every event once and ends with the final job", async () => {
    const { key, job } = await jobWithEvents();
    const events = await collect(client(key).sdk.jobs.events(job.id));
    expect(events.map((e) => e.type)).toEqual(["status", "progress", "progress", "progress", "progress", "status", "end"]);
    expect(events.at(-1)!.data.status).toBe("canceled");
  });

  it("reconnects after a dropped stream with Last-Event-ID and neither loses nor repeats events", async () => {
    const { key, job } = await jobWithEvents();
    const expected = (await collect(client(key).sdk.jobs.events(job.id))).map((e) => [e.id, e.type]);
    let cut = false;
    const reconnects: number[] = [];
    // The first events response is cut after its third event, the way a proxy drops an idle connection.
    const { sdk, seen } = client(key, async (request, forward) => {
      const response = await forward(request);
      if (cut || !request.url.endsWith("/events")) return response;
      cut = true;
      const reader = response.body!.getReader();
      let text = "";
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { value, done } = await reader.read();
          if (done) return controller.close();
          text += new TextDecoder().decode(value);
          controller.enqueue(value);
          if (text.split("\n\n").length > 3) {
            await reader.cancel();
            controller.error(new TypeError("network connection lost"));
          }
        },
      });
      return new Response(body, { headers: response.headers });
    });
    const events = await collect(sdk.jobs.events(job.id, { onReconnect: (r) => reconnects.push(r.lastEventId) }));
    expect(events.map((e) => [e.id, e.type])).toEqual(expected);
    const eventRequests = seen.filter((r) => r.url.endsWith("/events"));
    expect(eventRequests).toHaveLength(2);
    expect(eventRequests[0].headers.get("last-event-id")).toBeNull();
    expect(eventRequests[1].headers.get("last-event-id")).toBe(String(expected[2][0]));
    expect(reconnects).toEqual([expected[2][0]]);
  });

  it("waits for a job and returns its final state", async () => {
    const { key, job } = await jobWithEvents();
    const types: string[] = [];
    const final = await client(key).sdk.jobs.wait(job.id, { onEvent: (e) => types.push(e.type) });
    expect(final).toMatchObject({ id: job.id, status: "canceled" });
    expect(types.at(-1)).toBe("end");
  });
});

describe("SDK pagination", () => {
  it("visits every dataset exactly once, newest first, following next_cursor", async () => {
    const { key } = await createProject();
    const { sdk, seen } = client(key);
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await sdk.datasets.create({ name: `d${i}` })).id);
    const listed = await collect(sdk.datasets.all({ limit: 2 }));
    expect(listed.map((d) => d.id).sort()).toEqual([...made].sort());
    expect(new Set(listed.map((d) => d.id)).size).toBe(5);
    const pages = seen.filter((r) => new URL(r.url).pathname === "/v1/datasets" && r.method === "GET");
    const first = await sdk.datasets.list({ limit: 2 });
    if (first.next_cursor !== undefined) {
      // The API paginates: three pages of 2, 2 and 1, each asked with the previous page's cursor.
      expect(pages).toHaveLength(3);
      expect(new URL(pages[1].url).searchParams.get("cursor")).toBeTruthy();
    } else {
      expect(pages).toHaveLength(1); // a route without pagination answers everything on one page
    }
  });
});

describe("SDK uploads", () => {
  it("uploads a small folder as one archive, zipped on the fly, and waits until it is ingested", async () => {
    const { key } = await createProject();
    const { sdk } = client(key);
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 5; i++) files[`cats/${i}.png`] = makePng(10, 10, i + 1);
    for (let i = 0; i < 5; i++) files[`dogs/${i}.png`] = makePng(10, 10, i + 50);
    const id = (await sdk.datasets.create({ name: "pets" })).id;
    const progress: string[] = [];
    const started = await sdk.datasets.upload(id, zipSource(entriesOf(files), "pets.zip"), { onProgress: (p) => progress.push(p.phase) });
    expect(started.status).toBe("ingesting");
    await drainIngests(id);
    const dataset = await sdk.datasets.waitUntilIngested(id, { intervalMs: 10 });
    expect(dataset).toMatchObject({ status: "ready", image_count: 10, rejected_count: 0, ingest: { done: 10, total: 10 } });
    expect(progress).toContain("uploading");
  });

  it("resumes an interrupted multipart upload, sending only the parts the server lacks", async () => {
    const { key } = await createProject();
    const files: Record<string, Uint8Array> = { "big/huge.png": makeStoredPng(1800, 1500, 3) }; // ~8 MB: two 5 MiB parts
    for (let i = 0; i < 5; i++) files[`big/${i}.png`] = makePng(10, 10, i + 1);
    for (let i = 0; i < 6; i++) files[`small/${i}.png`] = makePng(10, 10, i + 100);
    const source = zipSource(entriesOf(files), "pets.zip");
    expect(source.size).toBeGreaterThan(5 * 1024 * 1024);
    let saved: Awaited<ReturnType<ResumeStore["load"]>> = null;
    const resume: ResumeStore = { load: async () => saved, save: async (s) => { saved = s; }, clear: async () => { saved = null; } };
    const datasetId = await createDataset(key, "resumed");

    const broken = client(key, async (request, forward) => {
      if (request.method === "PUT" && request.url.endsWith("/parts/2")) throw new TypeError("network connection lost");
      return forward(request);
    }, { maxRetries: 0 });
    const options = { resume, partBytes: 5 * 1024 * 1024, singleRequestMaxBytes: 1024, concurrency: 1 };
    await expect(broken.sdk.datasets.upload(datasetId, source, options)).rejects.toMatchObject({ code: "network_error" });
    expect(saved).not.toBeNull();
    const upload = await broken.sdk.datasets.getUpload(datasetId, saved!.upload_id);
    expect(upload.parts!.map((p) => p.n)).toEqual([1]);

    const { sdk, seen } = client(key);
    await sdk.datasets.upload(datasetId, source, options);
    expect(seen.filter((r) => r.method === "PUT").map((r) => new URL(r.url).pathname.split("/").pop())).toEqual(["2"]);
    expect(saved).toBeNull();
    await drainIngests(datasetId);
    const dataset = await sdk.datasets.get(datasetId);
    expect(dataset).toMatchObject({ status: "ready", image_count: 12, rejected_count: 0 });
  });
});
