/**
 * Small leaks, each written as the request that would expose something, with the safe answer asserted: response
 * headers (nosniff, no-store on secrets, CSP on HTML), runner details in tenant-visible errors, label normalisation,
 * and hostile entry names in the rejection list.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { makePng } from "../fixtures/images";
import { tenantSafeError } from "../../workers/services/runners";
import { ADMIN_KEY, RUNNER_TOKEN, buildZip, call, callJson, createDataset, createProject, createTrainableDataset, drainIngests, runnerCall } from "./helpers";

describe("response headers", () => {
  it("every response says nosniff; API answers are no-store, so a new key's secret stays out of every cache", async () => {
    const { key } = await createProject();
    const created = await call("POST", "/v1/keys", { key, json: { name: "ci" } });
    expect(created.status).toBe(201);
    expect(created.headers.get("cache-control")).toBe("no-store");
    expect(created.headers.get("x-content-type-options")).toBe("nosniff");
    const project = await call("POST", "/v1/projects", { key: ADMIN_KEY, json: { name: "p" } });
    expect(project.headers.get("cache-control")).toBe("no-store");
    const runner = await call("POST", "/v1/runners", { key: ADMIN_KEY, json: { name: "r" } });
    expect(runner.headers.get("cache-control")).toBe("no-store");
    for (const res of [await call("GET", "/v1/datasets", { key: null }), await call("GET", "/nope"), await call("GET", "/openapi.json")]) {
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      await res.body?.cancel();
    }
  });

  it("an uploaded image served back is never sniffed into HTML", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const put = await callJson("PUT", `/v1/datasets/${id}/images/cat/a.png`, { key, body: makePng(8, 8, 3), headers: { "content-type": "image/png" } });
    const res = await call("GET", `/v1/datasets/${id}/images/${put.body.sha256}`, { key });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    await res.body?.cancel();
  });

  it("/docs and /docs/runner carry a strict Content-Security-Policy: no script at all, only their own nonce'd style", async () => {
    for (const page of ["/docs", "/docs/runner"]) {
      const res = await call("GET", page, { key: null });
      const csp = res.headers.get("content-security-policy")!;
      const html = await res.text();
      const nonce = csp.match(/style-src 'nonce-([^']+)'/)![1];
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
      expect(html).toContain(`<style nonce="${nonce}">`);
      expect(html).not.toMatch(/<script/i);
      // A fresh nonce per response.
      const again = (await call("GET", page, { key: null })).headers.get("content-security-policy");
      expect(again).not.toBe(csp);
    }
  });
});

describe("runner details never reach tenants", () => {
  it("a failure report is stripped of the runner's name, paths, addresses and stack", async () => {
    const { key, datasetId } = await createTrainableDataset();
    await env.DB.prepare("update jobs set status = 'canceled' where status in ('queued', 'running')").run();
    const job = (await callJson("POST", "/v1/jobs", { key, json: { dataset_id: datasetId } })).body;
    const lease = (await runnerCall("POST", "/v1/runner/lease", { json: { wait_s: 0 } })).body;
    expect(lease.job.id).toBe(job.id);
    const raw = "ECONNREFUSED 10.0.3.7:9000 on test runner while reading /home/ops/edgetune/gpu-runner/src/run-job.ts from https://internal.example:8443/x\n    at runJob (/srv/app/run-job.ts:12:3)";
    await runnerCall("POST", `/v1/runner/jobs/${job.id}/fail`, { json: { lease_token: lease.lease.token, error: raw, retryable: false } });
    const read = (await callJson("GET", `/v1/jobs/${job.id}`, { key })).body;
    expect(read.status).toBe("failed");
    expect(read.error).toMatch(/ECONNREFUSED/);
    for (const secret of ["10.0.3.7", "test runner", "/home/ops", "internal.example", "runJob", "/srv/app"]) expect(read.error).not.toContain(secret);
    const events = await (await call("GET", `/v1/jobs/${job.id}/events`, { key })).text();
    expect(events).not.toMatch(/10\.0\.3\.7|home\/ops|rnr_test|test runner/);
  });

  it("tenantSafeError keeps the message's meaning", () => {
    expect(tenantSafeError("image decode failed: corrupt_image", { name: "gpu-1" })).toBe("image decode failed: corrupt_image");
    expect(tenantSafeError("gpu-1.lan: out of memory", { name: "gpu-1.lan" })).toBe("[runner]: out of memory");
    expect(tenantSafeError("", { name: "x" })).toMatch(/without a message/);
  });
});

describe("labels and names", () => {
  it("labels are NFC: the same word typed as NFD (macOS) and NFC is one label; combining marks are allowed", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const nfd = "cafe\u0301";
    const nfc = "caf\u00e9";
    for (const [i, label] of [nfd, nfc, "हिन्दी"].entries()) {
      const res = await callJson("PUT", `/v1/datasets/${id}/images/${encodeURIComponent(label)}/${i}.png`, { key, body: makePng(8, 8, 100 + i), headers: { "content-type": "image/png" } });
      expect(res.status, label).toBe(201);
      expect(res.body.label).toBe(label.normalize("NFC"));
    }
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.labels.map((l: { name: string }) => l.name).sort()).toEqual([nfc, "हिन्दी"].sort());
    expect(ds.labels.find((l: { name: string }) => l.name === nfc).count).toBe(2);
  });

  it("rejected entry names are stored sanitised and truncated", async () => {
    const { key } = await createProject();
    const id = await createDataset(key);
    const long = `cat/${"x".repeat(5000)}.png`;
    const bidi = "cat/\u202egpj.exe";
    const zip = buildZip({ [long]: makePng(8, 8, 1), [bidi]: makePng(8, 8, 2), "cafe\u0301/ok.png": makePng(8, 8, 3) });
    expect((await call("POST", `/v1/datasets/${id}/archive`, { key, body: zip, headers: { "content-type": "application/zip" } })).status).toBe(202);
    await drainIngests(id);
    const ds = (await callJson("GET", `/v1/datasets/${id}`, { key })).body;
    expect(ds.labels.map((l: { name: string }) => l.name)).toEqual(["caf\u00e9"]);
    const paths: string[] = ds.rejected.map((r: { path: string }) => r.path);
    expect(paths).toHaveLength(2);
    for (const path of paths) {
      expect(path.length).toBeLessThanOrEqual(300);
      expect(path).not.toMatch(/[\u0000-\u001f\u202e]/);
    }
    expect(paths.some((p) => p.endsWith("…"))).toBe(true);
  });

  it("the runner token constant is a registered runner (test wiring)", async () => {
    expect((await callJson("GET", "/v1/runner/me", { key: RUNNER_TOKEN })).body.id).toBe("rnr_test");
  });
});

describe("progressive JPEG scan bomb", () => {
  it("a JPEG of 60 scans is refused from its headers, before any decode", async () => {
    const { JPEG_SMALL_BASE64 } = await import("../fixtures/jpegs");
    const jpeg = Uint8Array.from(atob(JPEG_SMALL_BASE64), (c) => c.charCodeAt(0));
    let sos = -1;
    for (let i = 2; i < jpeg.length - 1; i++) if (jpeg[i] === 0xff && jpeg[i + 1] === 0xda) { sos = i; break; }
    const scan = jpeg.subarray(sos, jpeg.length - 2); // SOS header + entropy-coded data, up to EOI
    const bomb = new Uint8Array(sos + scan.length * 60 + 2);
    bomb.set(jpeg.subarray(0, sos));
    for (let i = 0; i < 60; i++) bomb.set(scan, sos + i * scan.length);
    bomb.set([0xff, 0xd9], bomb.length - 2);
    const { key } = await createProject();
    const id = await createDataset(key);
    const res = await callJson("PUT", `/v1/datasets/${id}/images/cat/bomb.jpg`, { key, body: bomb, headers: { "content-type": "image/jpeg" } });
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: "too_many_scans", details: { limit: 48 } });
    // Its original, one scan, is fine.
    expect((await callJson("PUT", `/v1/datasets/${id}/images/cat/ok.jpg`, { key, body: jpeg, headers: { "content-type": "image/jpeg" } })).status).toBe(201);
  });
});
