/**
 * Webhooks end to end: a local receiver (allowed by the operator setting URL_ALLOW_PRIVATE_HOSTS, as on a developer's
 * machine) verifies every signature with the SDK's verifier, answers 500 to the first delivery and sees it retried
 * through the queue, then answers 200 and sees each event exactly once; the deliveries route records the attempts.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { afterAll, beforeAll, describe, test } from "vitest";
import { Edgetune, verifyWebhook, zipSource } from "../../sdk/index";
import { makePng } from "../fixtures/images";
import { freePort, startTestPlatform, waitFor, type Platform } from "./platform";

interface Received {
  id: string;
  type: string;
  verified: boolean;
  answered: number;
  signature: string;
}

let platform: Platform;
let server: http.Server;
let receiverUrl: string;
const received: Received[] = [];
let failFirst = true;
let secret = "";

beforeAll(async () => {
  platform = await startTestPlatform({ vars: { URL_ALLOW_PRIVATE_HOSTS: "true", WEBHOOK_RETRY_BASE_S: "1" } });
  const port = await freePort();
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", async () => {
      const signature = String(req.headers["edgetune-signature"] ?? "");
      let verified = false;
      let event: any = {};
      try {
        event = await verifyWebhook(secret, signature, body);
        verified = true;
      } catch {
        event = JSON.parse(body || "{}");
      }
      const answered = failFirst ? 500 : 200;
      failFirst = false;
      received.push({ id: event.id, type: event.type, verified, answered, signature });
      res.writeHead(answered).end();
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  receiverUrl = `http://127.0.0.1:${port}/hooks`;
});
afterAll(async () => {
  server?.close();
  await platform?.stop();
});

describe("webhooks", () => {
  test("signed deliveries, retried after a 500, each event delivered once after a 200, recorded per delivery", async () => {
    const client = new Edgetune({ url: platform.url, apiKey: platform.adminKey });
    await assert.rejects(client.webhooks.create({ url: "file:///etc/passwd", events: ["dataset.ready"] }), (e: any) => e.status >= 400 && e.status < 500);
    const hook = await client.webhooks.create({ url: receiverUrl, events: ["dataset.ready", "job.canceled"] });
    secret = hook.secret;
    assert.match(secret, /^whsec_/);
    const listed = await client.webhooks.list();
    assert.deepEqual(listed.webhooks.map((w) => w.id), [hook.id]);
    assert.equal(listed.webhooks[0].secret, undefined);

    // dataset.ready: an archive ingested to ready.
    const dataset = await client.datasets.create({ name: "hooks" });
    const files = Array.from({ length: 10 }, (_, i) => ({ name: `${i < 5 ? "a" : "b"}/${i}.png`, bytes: makePng(8, 8, i + 1) }));
    await client.datasets.upload(dataset.id, zipSource(files.map((f) => ({ name: f.name, size: f.bytes.length, mtimeMs: 0, read: async function* () { yield f.bytes; } }))));
    await client.datasets.waitUntilIngested(dataset.id, { intervalMs: 300, timeoutMs: 60_000 });
    // job.canceled: a queued job canceled (no runner in this platform).
    const job = await client.jobs.create({ dataset_id: dataset.id });
    await client.jobs.cancel(job.id);

    await waitFor("both events acknowledged with 200", async () => received.filter((r) => r.answered === 200).length >= 2, 60_000);
    await new Promise((r) => setTimeout(r, 4000)); // time for any duplicate to show up
    assert.ok(received.every((r) => r.verified), JSON.stringify(received));
    assert.equal(received[0].answered, 500);
    const first = received[0].id;
    assert.deepEqual(received.filter((r) => r.id === first).map((r) => r.answered), [500, 200], "retried after the 500, then never again");
    const ok = received.filter((r) => r.answered === 200);
    assert.deepEqual(ok.map((r) => r.type).sort(), ["dataset.ready", "job.canceled"]);
    assert.equal(new Set(ok.map((r) => r.id)).size, ok.length, "each event once after its 200");
    assert.match(received[0].signature, /^t=\d+,v1=[0-9a-f]{64}$/);

    const deliveries = (await client.webhooks.deliveries(hook.id)).deliveries;
    const retried = deliveries.find((d) => d.event_id === first)!;
    assert.equal(retried.status, "delivered");
    assert.equal(retried.attempts, 2);
    assert.equal(retried.last_status_code, 200);
    assert.ok(deliveries.every((d) => d.status === "delivered"));

    await client.webhooks.delete(hook.id);
    assert.deepEqual((await client.webhooks.list()).webhooks, []);
  }, 180_000);
});
