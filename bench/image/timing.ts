/**
 * Benchmark: timing of the image pipeline on real photos (flowers5: 400 JPEGs of about 500x375):
 *
 *   npx tsx bench/image/timing.ts
 *
 * (FLOWERS5_DIR overrides the dataset folder, ../shared/datasets/flowers5 from the repository root by default.)
 * Prints, per image, the median and 90th percentile of inspectImage, decodeImage (which includes inspectImage and
 * the EXIF orientation) and preprocessImage to 224x224 center_crop and to the default backbone's 288 + 352, each in
 * TypeScript (what the Worker runs) and with the runner's SIMD resampler (shared/image/resample.wat, same floats).
 * Each image runs `ROUNDS` times and keeps its fastest round, which filters the noise of a shared machine.
 */
import assert from "node:assert/strict";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { decodeImage } from "../../shared/image/decode";
import { preprocessImage, type PreprocessSpec } from "../../shared/image/preprocess";
import { inspectImage } from "../../shared/image/sniff";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";

const DATASET_DIR = resolve(process.env.FLOWERS5_DIR ?? "../shared/datasets/flowers5");
const ROUNDS = 3;
const SPEC: PreprocessSpec = { input_size: [224, 224], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: "center_crop" };
const TWO_SIZES: PreprocessSpec = { input_size: [288, 288], extra_input_sizes: [[352, 352]], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: "squash" };

async function listImages(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && /\.(jpe?g|png)$/i.test(e.name)).map((e) => join(e.parentPath ?? e.path, e.name)).sort();
}

const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))]!;

if (!(await stat(DATASET_DIR).catch(() => null))?.isDirectory()) {
  console.error(`flowers5 not found at ${DATASET_DIR} (set FLOWERS5_DIR)`);
  process.exit(2);
}
{
  const codecs = await getNodeCodecs();
  const files = await listImages(DATASET_DIR);
  const images = await Promise.all(files.map(async (file) => new Uint8Array(await readFile(file))));
  const times = { inspect: [] as number[], decode: [] as number[], preprocess: [] as number[], simd: [] as number[], twoSizes: [] as number[], twoSizesSimd: [] as number[] };
  let bytes = 0;
  for (const image of images) {
    bytes += image.length;
    let best = { inspect: Infinity, decode: Infinity, preprocess: Infinity, simd: Infinity, twoSizes: Infinity, twoSizesSimd: Infinity };
    for (let round = 0; round < ROUNDS; round++) {
      const t0 = performance.now();
      const info = inspectImage(image, { maxPixels: 40_000_000 });
      const t1 = performance.now();
      const decoded = await decodeImage(image, codecs);
      const t2 = performance.now();
      const input = preprocessImage(decoded, SPEC);
      const t3 = performance.now();
      preprocessImage(decoded, SPEC, undefined, codecs.resample);
      const t4 = performance.now();
      preprocessImage(decoded, TWO_SIZES);
      const t5 = performance.now();
      preprocessImage(decoded, TWO_SIZES, undefined, codecs.resample);
      const t6 = performance.now();
      assert.equal(input.length, 224 * 224 * 3);
      assert.deepEqual([decoded.width, decoded.height], [info.uprightWidth, info.uprightHeight]);
      const spent = { inspect: t1 - t0, decode: t2 - t1, preprocess: t3 - t2, simd: t4 - t3, twoSizes: t5 - t4, twoSizesSimd: t6 - t5 };
      for (const key of Object.keys(best) as (keyof typeof best)[]) best[key] = Math.min(best[key], spent[key]);
    }
    for (const key of Object.keys(best) as (keyof typeof best)[]) times[key].push(best[key]);
  }
  const line = (name: string, values: number[], unit: "ms" | "µs") => {
    const scale = unit === "µs" ? 1000 : 1;
    const format = (v: number) => (v * scale).toFixed(unit === "µs" ? 0 : 2);
    return `${name}: median ${format(quantile(values, 0.5))} ${unit}, p90 ${format(quantile(values, 0.9))} ${unit}, mean ${format(values.reduce((a, b) => a + b, 0) / values.length)} ${unit}`;
  };
  console.log(`${images.length} images, ${(bytes / images.length / 1024).toFixed(0)} KB on average, best of ${ROUNDS} rounds each`);
  console.log(line("inspectImage", times.inspect, "µs"));
  console.log(line("decodeImage (incl. inspect)", times.decode, "ms"));
  console.log(line("preprocessImage 224x224 center_crop", times.preprocess, "ms"));
  console.log(line("  the same with the runner's SIMD resampler", times.simd, "ms"));
  console.log(line("preprocessImage 288x288 + 352x352 squash (the default backbone)", times.twoSizes, "ms"));
  console.log(line("  the same with the runner's SIMD resampler", times.twoSizesSimd, "ms"));
}
