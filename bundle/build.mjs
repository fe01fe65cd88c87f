#!/usr/bin/env node
// Builds the runtime of the self-contained model bundle into DIR (dashboard/build.mjs calls it for
// dashboard/dist/bundle-runtime, served as static assets at /bundle-runtime/):
// - edgetune.mjs: shared/bundle/runtime.ts bundled by esbuild with the very modules the API predicts with
//   (shared/image decode + preprocess, the @jsquash decoders' JS, shared/backbone, shared/head); tfjs stays out
//   (the caller passes its own `tf`);
// - mozjpeg_dec.wasm, squoosh_png_bg.wasm: the decoder binaries the Worker imports, copied byte for byte;
// - example.mjs, browser.html, README.md (bundle/), package.json (pinning the tfjs version this repository uses).
// `GET /v1/models/:id/bundle/manifest` lists these next to the model's own files. About 0.1 s.
import * as esbuild from "esbuild";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const require = createRequire(import.meta.url);

export const DECODER_WASM = {
  "mozjpeg_dec.wasm": require.resolve("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm"),
  "squoosh_png_bg.wasm": require.resolve("@jsquash/png/codec/pkg/squoosh_png_bg.wasm"),
};
const TEMPLATES = ["example.mjs", "browser.html", "README.md"];

/** Writes the runtime files into `outdir`; returns their names and sizes. */
export async function buildBundleRuntime({ outdir, quiet = false }) {
  fs.mkdirSync(outdir, { recursive: true });
  await esbuild.build({
    entryPoints: [path.join(ROOT, "shared", "bundle", "runtime.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: ["es2022"],
    minify: true,
    legalComments: "none",
    outfile: path.join(outdir, "edgetune.mjs"),
    banner: { js: "// edgetune bundle runtime: loadBundle(tf, source) -> { predict(imageBytes) }. Built from shared/bundle/runtime.ts; see README.md." },
    logLevel: quiet ? "silent" : "warning",
  });
  for (const [name, file] of Object.entries(DECODER_WASM)) fs.copyFileSync(file, path.join(outdir, name));
  for (const name of TEMPLATES) fs.copyFileSync(path.join(HERE, name), path.join(outdir, name));
  const tfjsVersion = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).dependencies["@tensorflow/tfjs"];
  const pkg = { name: "edgetune-model", private: true, type: "module", description: "An edgetune model: `npm install`, then `node example.mjs photo.jpg`.", dependencies: { "@tensorflow/tfjs": tfjsVersion } };
  fs.writeFileSync(path.join(outdir, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
  return fs.readdirSync(outdir).map((name) => ({ name, bytes: fs.statSync(path.join(outdir, name)).size }));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outdir = path.resolve(process.argv[2] ?? path.join(ROOT, "dashboard", "dist", "bundle-runtime"));
  for (const { name, bytes } of await buildBundleRuntime({ outdir })) console.log(`${name}: ${bytes} bytes`);
}
