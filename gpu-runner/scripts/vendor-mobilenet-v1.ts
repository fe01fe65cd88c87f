/**
 * One-off: vendors ../shared/backbones/mobilenet_v1_075_224 (Google's ImageNet MobileNet v1 0.75 224, tfjs layers,
 * Apache-2.0) into gpu-runner/vendor/mobilenet_v1_075_224 as the two objects the platform stores in R2: model.json
 * naming one weights.bin (the 55 shards concatenated in manifest order, bytes unchanged), and prints the sha256s to
 * pin in shared/catalog.ts.
 *
 *   npx tsx gpu-runner/scripts/vendor-mobilenet-v1.ts
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadBundleFromDir, saveBundleToDir } from "../src/backbones/load-bundle";

const here = path.dirname(fileURLToPath(import.meta.url));
const shared = process.env.EDGETUNE_SHARED_DIR ?? path.resolve(here, "../../../shared");
const source = path.join(shared, "backbones", "mobilenet_v1_075_224");
const target = path.resolve(here, "../vendor/mobilenet_v1_075_224");

const bundle = await loadBundleFromDir(source, { name: "builtin:mobilenet_v1_075_224", inputRange: [-1, 1] });
const { modelPath, weightsPath } = await saveBundleToDir(bundle, target);
for (const file of [modelPath, weightsPath]) {
  console.log(`${path.basename(file)}: ${createHash("sha256").update(await readFile(file)).digest("hex")}`);
}
