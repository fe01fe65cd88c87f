/**
 * Writes the builtin backbone (nsfwjs' MobileNetV2) as a plain tfjs layers model: `<dir>/model.json` +
 * `<dir>/weights.bin` (uint8-quantized, as shipped: about 2.6 MB), ready to upload to R2.
 *
 *   npx tsx gpu-runner/scripts/export-builtin-backbone.ts <dir>
 */
import { loadNsfwjsBundle } from "../src/backbones/builtin-nsfwjs";
import { saveBundleToDir } from "../src/backbones/load-bundle";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: npx tsx gpu-runner/scripts/export-builtin-backbone.ts <output-dir>");
  process.exit(2);
}
const bundle = await loadNsfwjsBundle();
const { modelPath, weightsPath } = await saveBundleToDir(bundle, dir);
console.log(`wrote ${modelPath} and ${weightsPath} (${bundle.weightData.byteLength} bytes), input range [${bundle.inputRange}]`);
