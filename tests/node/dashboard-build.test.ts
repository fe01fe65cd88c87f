/** The dashboard build (dashboard/build.mjs): what wrangler serves at /, its CSP, and the first page's JS budget. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error plain ESM build script without type declarations
import { CSP, buildDashboard } from "../../dashboard/build.mjs";

/** The stated budget: the first page's JavaScript, gzipped (everything the dashboard needs is in that one file). */
const JS_BUDGET_GZIP_BYTES = 150 * 1024;

describe("dashboard build", () => {
  let outdir: string;
  let report: { js: string; css: string; jsBytes: number; jsGzip: number };
  beforeAll(async () => {
    outdir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-dashboard-"));
    report = await buildDashboard({ outdir, quiet: true });
  });
  afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

  it("writes index.html that loads one hashed module and one stylesheet, from this origin only, with no inline code", () => {
    const html = fs.readFileSync(path.join(outdir, "index.html"), "utf8");
    expect(html).toContain(`<script type="module" src="/${report.js}"></script>`);
    expect(html).toContain(`<link rel="stylesheet" href="/${report.css}">`);
    expect(html).not.toMatch(/<script>|<style|style="|https?:\/\//);
    expect(fs.existsSync(path.join(outdir, report.js))).toBe(true);
    expect(report.js).toMatch(/^assets\/app-[A-Z0-9]+\.js$/);
  });

  it("serves every path with a strict Content-Security-Policy and caches hashed assets for a year", () => {
    const headers = fs.readFileSync(path.join(outdir, "_headers"), "utf8");
    expect(headers).toContain(`Content-Security-Policy: ${CSP}`);
    expect(CSP).toMatch(/default-src 'none'/);
    expect(CSP).toMatch(/script-src 'self'(;|$)/);
    expect(CSP).toMatch(/frame-ancestors 'none'/);
    expect(CSP).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);
    expect(headers).toMatch(/\/assets\/\*\n {2}Cache-Control: public, max-age=31536000, immutable/);
  });

  it(`keeps the first page's JavaScript within ${JS_BUDGET_GZIP_BYTES / 1024} KB gzipped`, () => {
    console.log(`first page JS: ${report.jsBytes} bytes raw, ${report.jsGzip} bytes gzipped`);
    expect(report.jsGzip).toBeLessThanOrEqual(JS_BUDGET_GZIP_BYTES);
  });
});
