#!/usr/bin/env node
// Builds the web dashboard into dashboard/dist (served by Workers static assets, see wrangler.toml [assets]):
// one minified ES module bundle (Preact + htm + uPlot + the app) and one stylesheet, named by content hash so they can
// be cached for a year; index.html and _headers (the Content-Security-Policy) are written beside them.
// The model bundle's runtime (bundle/build.mjs) goes beside them, in bundle-runtime/.
// Runs in about 0.1 s: wrangler's [build] runs it before `wrangler dev` and `wrangler deploy`, vitest.config.ts
// before the tests. `node dashboard/build.mjs --report` prints the first page's JS size, raw and gzipped.
import * as esbuild from "esbuild";
import fs from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { buildBundleRuntime } from "../bundle/build.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const DIST = path.join(HERE, "dist");

/**
 * Everything the page loads comes from this origin: no inline script or style, no third-party host. `blob:` images are
 * the thumbnails (fetched with the API key, which an <img src> cannot send); `mediastream:`/`blob:` media is the webcam.
 */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob: mediastream:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

export async function buildDashboard({ outdir = DIST, quiet = false } = {}) {
  fs.rmSync(outdir, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: { app: path.join(HERE, "src", "main.ts"), style: path.join(HERE, "src", "style.css") },
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2022"],
    outdir: path.join(outdir, "assets"),
    entryNames: "[name]-[hash]",
    metafile: true,
    legalComments: "none",
    logLevel: quiet ? "silent" : "warning",
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => path.relative(outdir, p).split(path.sep).join("/"));
  const js = outputs.find((p) => /app-.*\.js$/.test(p));
  const css = outputs.find((p) => /style-.*\.css$/.test(p));
  fs.writeFileSync(
    path.join(outdir, "index.html"),
    `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgetune</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/${css}">
<script type="module" src="/${js}"></script>
</head>
<body>
<div id="app"><noscript>The edgetune dashboard needs JavaScript. The API is documented at <a href="/docs">/docs</a>.</noscript></div>
</body>
</html>
`,
  );
  const security = ["X-Content-Type-Options: nosniff", "Referrer-Policy: no-referrer", "Cross-Origin-Opener-Policy: same-origin"];
  fs.writeFileSync(
    path.join(outdir, "_headers"),
    [`/*`, `  Content-Security-Policy: ${CSP}`, ...security.map((h) => `  ${h}`), `/assets/*`, `  Cache-Control: public, max-age=31536000, immutable`, ""].join("\n"),
  );
  await buildBundleRuntime({ outdir: path.join(outdir, "bundle-runtime"), quiet });
  const jsBytes = fs.readFileSync(path.join(outdir, js));
  const cssBytes = fs.readFileSync(path.join(outdir, css));
  return { js, css, jsBytes: jsBytes.length, jsGzip: gzipSync(jsBytes, { level: 9 }).length, cssBytes: cssBytes.length, cssGzip: gzipSync(cssBytes, { level: 9 }).length };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const report = await buildDashboard();
  if (process.argv.includes("--report")) {
    console.log(`first page JS ${report.js}: ${report.jsBytes} bytes raw, ${report.jsGzip} bytes gzipped (budget 153600 gzipped)`);
    console.log(`first page CSS ${report.css}: ${report.cssBytes} bytes raw, ${report.cssGzip} bytes gzipped`);
  }
}
