/**
 * Builtin backbones vendored in this repository (gpu-runner/vendor/), as the two objects the platform stores in R2:
 * `model.json` naming one `weights.bin`. Their sha256s are pinned in the catalog (shared/catalog.ts `files`), and a
 * file that does not match is refused: the weights define every cached embedding and every model trained on them.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { BackboneBundle, LayersModelJson } from "../../../shared/backbone/types";
import { expectedWeightBytes } from "../../../shared/backbone/model-json";
import type { CatalogEntry } from "../../../shared/catalog";
import { inputRangeOfNormalization } from "../../../shared/catalog";

export const VENDOR_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../vendor");
export const VENDORED_MOBILENET_V1_075_DIR = path.join(VENDOR_DIR, "mobilenet_v1_075_224");

/** Reads a vendored file and checks it against the sha256 the catalog pins. */
export async function readPinnedFile(entry: CatalogEntry, file: "model.json" | "weights.bin"): Promise<Uint8Array> {
  const pinned = entry.vendored?.files[file];
  if (!entry.vendored || !pinned) throw new Error(`builtin backbone ${entry.id} is not vendored`);
  const bytes = new Uint8Array(await readFile(path.join(VENDOR_DIR, entry.vendored.dir, file)));
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== pinned) {
    throw new Error(`gpu-runner/vendor/${entry.vendored.dir}/${file}: sha256 ${actual}, the catalog pins ${pinned}; restore the file (git checkout) or update the pin deliberately`);
  }
  return bytes;
}

/** The bundle of a vendored builtin backbone, sha256-checked. */
export async function loadVendoredBundle(entry: CatalogEntry): Promise<BackboneBundle> {
  const [modelBytes, weights] = await Promise.all([readPinnedFile(entry, "model.json"), readPinnedFile(entry, "weights.bin")]);
  const modelJson = JSON.parse(new TextDecoder().decode(modelBytes)) as LayersModelJson;
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer;
  if (weightData.byteLength !== expectedWeightBytes(modelJson)) throw new Error(`${entry.id}: weights.bin does not match its model.json manifest`);
  return { name: entry.id, modelJson, weightData, inputRange: inputRangeOfNormalization(entry.spec) };
}
