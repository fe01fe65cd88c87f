/**
 * The runner's HTTP client against a scripted API (a fetch stand-in that answers like workers/routes/runner.ts):
 * what it asks for and how it reads the answers. The real routes are covered in tests/workers/jobs.test.ts and end
 * to end in tests/e2e/train.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "vitest";
import { LeaseLostError, RunnerClient } from "../../gpu-runner/src/api-client";
import { encodeImageRecords } from "../../shared/wire";

const sha = (c: string) => c.repeat(64);
const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

describe("RunnerClient", () => {
  it("asks again for the images an answer left out (the API's per-call byte budget) until every one is answered", async () => {
    const asked: string[][] = [];
    const stored = new Map([[sha("a"), new Uint8Array([1, 2, 3])], [sha("b"), new Uint8Array([4, 5])]]);
    const fetchImpl = (async (_url: string, init: RequestInit) => {
      const wanted = (JSON.parse(String(init.body)) as { sha256: string[] }).sha256;
      asked.push(wanted);
      // One image per answer; "c" is not stored at all.
      const first = wanted[0]!;
      return new Response(new Blob(encodeImageRecords([[first, stored.get(first) ?? null]]) as Uint8Array<ArrayBuffer>[]), { status: 200 });
    }) as unknown as typeof fetch;
    const client = new RunnerClient("http://api", "token", fetchImpl);
    const images = await client.getImages("job_1", "lease_1", [sha("a"), sha("b"), sha("c")]);
    assert.deepEqual(asked, [[sha("a"), sha("b"), sha("c")], [sha("b"), sha("c")], [sha("c")]]);
    assert.deepEqual([...images.get(sha("a"))!], [1, 2, 3]);
    assert.deepEqual([...images.get(sha("b"))!], [4, 5]);
    assert.equal(images.get(sha("c")), null);
  });

  it("reads an image larger than a whole batch's budget alone, from the streamed single-image route", async () => {
    const big = new Uint8Array(1000).fill(7);
    const requests: string[] = [];
    const fetchImpl = (async (url: string, init: RequestInit) => {
      requests.push(`${init.method} ${new URL(url).pathname}`);
      if (init.method === "GET") return url.endsWith(sha("a")) ? new Response(big, { status: 200 }) : json(404, { error: { code: "image_not_found", message: "gone" } });
      const wanted = (JSON.parse(String(init.body)) as { sha256: string[] }).sha256;
      // "a" is over the budget, so the batch leaves it out; "b" fits.
      return new Response(new Blob(encodeImageRecords(wanted.includes(sha("b")) ? [[sha("b"), new Uint8Array([1])]] : []) as Uint8Array<ArrayBuffer>[]), { status: 200 });
    }) as unknown as typeof fetch;
    const client = new RunnerClient("http://api", "token", fetchImpl);
    const images = await client.getImages("job_1", "lease_1", [sha("a"), sha("b")]);
    assert.deepEqual([...images.get(sha("a"))!], [...big]);
    assert.deepEqual([...images.get(sha("b"))!], [1]);
    assert.deepEqual(requests, ["POST /v1/runner/jobs/job_1/images", "POST /v1/runner/jobs/job_1/images", `GET /v1/runner/jobs/job_1/images/${sha("a")}`]);
  });

  it("turns a 409 lease_lost into LeaseLostError, and other errors into messages with the code", async () => {
    const lost = new RunnerClient("http://api", "t", (async () => json(409, { error: { code: "lease_lost", message: "gone" } })) as unknown as typeof fetch);
    await assert.rejects(lost.heartbeat("job_1", "lease"), LeaseLostError);
    const bad = new RunnerClient("http://api", "t", (async () => json(400, { error: { code: "invalid_request", message: "field x" } })) as unknown as typeof fetch);
    await assert.rejects(bad.heartbeat("job_1", "lease"), /400 invalid_request: field x/);
  });

  it("re-validates a leased job with the shared schemas and refuses a malformed one", async () => {
    const client = new RunnerClient("http://api", "t", (async () => json(200, { job: { id: "job_1" } })) as unknown as typeof fetch);
    await assert.rejects(client.lease("r", 0, []), /invalid|Required|expected/i);
    const idle = new RunnerClient("http://api", "t", (async () => new Response(null, { status: 204 })) as unknown as typeof fetch);
    assert.equal(await idle.lease("r", 0, []), null);
  });
});
