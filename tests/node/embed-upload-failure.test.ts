/**
 * A network failure while the runner uploads embeddings (gpu-runner/src/embed-dataset.ts, through the real
 * RunnerClient) fails that attempt with the upload's error, which run-job.ts reports with /fail; it must never
 * surface as an unhandledRejection, which under Node's default policy ends the runner process with every job it holds.
 * The API is a node:http server on loopback that answers the lookup and image calls and drops the connection on every
 * embeddings PUT (the client retries it, then gives up).
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, it } from "vitest";
import { sha256Hex } from "../../shared/ids";
import type { PreprocessSpec } from "../../shared/image/preprocess";
import { encodeImageRecords } from "../../shared/wire";
import { RunnerClient } from "../../gpu-runner/src/api-client";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { embedDataset } from "../../gpu-runner/src/embed-dataset";
import type { EmbeddingEngine } from "../../gpu-runner/src/engine/types";
import { makePng } from "../fixtures/images";

const preprocess: PreprocessSpec = { input_size: [8, 8], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], resize: "squash" };
/** The client's attempts at one idempotent call: the first and its 4 retries (sdk/http.ts maxRetries). */
const PUT_ATTEMPTS = 5;

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe("embedding upload over a dropped connection", () => {
  const images = new Map<string, Uint8Array>();
  let server: Server;
  let apiUrl = "";
  let embeddingPuts = 0;

  beforeAll(async () => {
    for (let i = 0; i < 80; i++) images.set(await sha256Hex(makePng(10 + (i % 6), 9 + (i % 4), i + 1)), makePng(10 + (i % 6), 9 + (i % 4), i + 1));
    server = createServer(async (request, response) => {
      const path = new URL(request.url ?? "/", "http://x").pathname;
      if (request.method === "PUT" && /\/embeddings\//.test(path)) {
        embeddingPuts++;
        request.socket.destroy(); // the network drops it: no status, no body
        return;
      }
      const body = await readBody(request);
      if (path.endsWith("/lookup")) return response.writeHead(200, { "content-type": "application/octet-stream" }).end();
      if (path.endsWith("/images")) {
        const wanted = (JSON.parse(body.toString()) as { sha256: string[] }).sha256;
        return response.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.concat(encodeImageRecords(wanted.map((sha) => [sha, images.get(sha) ?? null]))));
      }
      response.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "not_found", message: path } }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("fails the attempt with the upload's network error and raises no unhandledRejection", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      let batches = 0;
      // The second batch's backbone run lasts until the first batch's upload has failed for good: the upload's
      // rejection lands while the pipeline is busy with other work, the case that escaped as unhandled.
      const engine: EmbeddingEngine = {
        name: "fake", dim: 3,
        async embed(_batch, n) {
          if (batches++ === 1) {
            while (embeddingPuts < PUT_ATTEMPTS) await new Promise((resolve) => setTimeout(resolve, 20));
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          return new Float32Array(n * 3).fill(0.5);
        },
        async close() {},
      };
      const client = new RunnerClient(apiUrl, "et_rnr_test", fetch);
      const list = [...images.keys()].map((sha256, i) => ({ sha256, path: `class/${i}.png` }));
      await assert.rejects(
        embedDataset({
          client, jobId: "job_1", leaseToken: "lease", cacheKey: "0".repeat(64), images: list, preprocess, engine, codecs: await getNodeCodecs(),
          maxPixels: 1e7, signal: new AbortController().signal, onProgress: () => undefined, log: () => undefined,
        }),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, "network_error");
          assert.match(error.message, /PUT \/v1\/runner\/jobs\/job_1\/embeddings\//);
          return true;
        },
      );
      assert.equal(embeddingPuts, PUT_ATTEMPTS, "one upload, retried, then the attempt stops uploading");
      // Rejections are reported after the microtask queue drains: give a late one its turn.
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  }, 30_000);
});
