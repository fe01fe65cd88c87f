/**
 * The builtin backbone: the MobileNetV2 224x224 that the `nsfwjs` npm package (MIT) ships inside two browserify
 * bundles, `dist/models/mobilenet_v2/model.min.js` (model.json as a JS object literal) and
 * `group1-shard1of1.min.js` (the uint8-quantized weights as one base64 string). We read those files as text and
 * cut the literal and the string out; the package's own code is never run.
 *
 * Layers up to block_10 are ImageNet's; later ones were fine-tuned for nsfwjs' 5-class task. Input range [0, 1].
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { BUILTIN_BACKBONE_NAME } from "../../../shared/backbone/builtin";
import { expectedWeightBytes } from "../../../shared/backbone/model-json";
import type { BackboneBundle, LayersModelJson } from "../../../shared/backbone/types";

export const BUILTIN_NSFWJS_NAME = BUILTIN_BACKBONE_NAME;

/** Folder holding nsfwjs' MobileNetV2 bundles, found through Node's resolver. */
export function nsfwjsModelDir(): string {
  const require = createRequire(import.meta.url);
  const entry = require.resolve("nsfwjs"); // <pkg>/dist/cjs/index.js
  return path.join(entry, "..", "..", "models", "mobilenet_v2");
}

/**
 * Extracts the object literal assigned by `a.exports={modelTopology:...}` from the browserify wrapper. The literal
 * is data only (keys, strings, numbers, `!0`/`!1`), so evaluating that slice alone with `new Function` is safe.
 */
export function parseModelJsonModule(source: string): LayersModelJson {
  const start = source.search(/\.exports=\{modelTopology:/);
  const end = source.lastIndexOf("},{}]},{},[1])(1)");
  if (start < 0 || end < 0) throw new Error("nsfwjs model.min.js: cannot find the model literal (package layout changed?)");
  const literal = source.slice(source.indexOf("=", start) + 1, end);
  if (/[;()]|=>|function/.test(literal.replace(/"(?:[^"\\]|\\.)*"/g, '""'))) {
    throw new Error("nsfwjs model.min.js: the model literal contains code, refusing to evaluate it");
  }
  const value = new Function(`return (${literal});`)() as LayersModelJson;
  if (!value.modelTopology || !Array.isArray(value.weightsManifest)) throw new Error("nsfwjs model.min.js: not a model.json");
  return value;
}

/** Extracts the base64 string assigned by `h.exports="..."` and decodes it. */
export function parseWeightsModule(source: string): ArrayBuffer {
  const match = /\.exports="([A-Za-z0-9+/=]+)"/.exec(source);
  if (!match) throw new Error("nsfwjs group1-shard1of1.min.js: cannot find the base64 weights");
  const bytes = Buffer.from(match[1]!, "base64");
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/** Reads the builtin MobileNetV2 out of the installed nsfwjs package. */
export async function loadNsfwjsBundle(modelDir = nsfwjsModelDir()): Promise<BackboneBundle> {
  const [modelSource, weightsSource] = await Promise.all([
    readFile(path.join(modelDir, "model.min.js"), "utf8"),
    readFile(path.join(modelDir, "group1-shard1of1.min.js"), "utf8"),
  ]);
  const modelJson = parseModelJsonModule(modelSource);
  const weightData = parseWeightsModule(weightsSource);
  const expected = expectedWeightBytes(modelJson);
  if (weightData.byteLength !== expected) {
    throw new Error(`nsfwjs weights: ${weightData.byteLength} bytes, manifest expects ${expected}`);
  }
  return { name: BUILTIN_NSFWJS_NAME, modelJson, weightData, inputRange: [0, 1] };
}
