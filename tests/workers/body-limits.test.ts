/**
 * Request bodies inside a 128 MB isolate: JSON routes refuse a body over 1 MB with 413 `payload_too_large` before
 * reading it (hono/body-limit on its Content-Length), and count a body sent without one as it streams.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BASE, callJson, createProject } from "./helpers";

describe("JSON body limit", () => {
  it("a 5 MB JSON body answers 413 payload_too_large from its Content-Length", async () => {
    const { key } = await createProject();
    const body = JSON.stringify({ name: "x".repeat(5 * 1024 * 1024) });
    const res = await callJson("POST", "/v1/datasets", { key, body, headers: { "content-type": "application/json", "content-length": String(body.length) } });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("payload_too_large");
    expect(res.body.error.details.limit_bytes).toBe(1024 * 1024);
  });

  it("a 5 MB JSON body streamed without Content-Length is refused once it passes 1 MB", async () => {
    const { key } = await createProject();
    let sent = 0;
    const piece = new TextEncoder().encode("x".repeat(64 * 1024));
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 5 * 1024 * 1024) return controller.close();
        controller.enqueue(sent === 0 ? new TextEncoder().encode('{"name":"') : piece);
        sent += piece.length;
      },
    });
    const res = await exports.default.fetch(new Request(`${BASE}/v1/datasets`, { method: "POST", body: stream, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, duplex: "half" } as RequestInit));
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).error.code).toBe("payload_too_large");
    expect(sent).toBeLessThan(5 * 1024 * 1024);
  });

  it("a small JSON body still passes", async () => {
    const { key } = await createProject();
    expect((await callJson("POST", "/v1/datasets", { key, json: { name: "ok" } })).status).toBe(201);
  });
});
