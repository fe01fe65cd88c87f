/**
 * Memory of one edge prediction on a large photo with the default backbone resident, in Node running the edge's code
 * path (tfjs-wasm with the fused two-size embedder, the @jsquash decoders without the runner's SIMD resampler,
 * preprocess.ts's TypeScript passes). What a Worker isolate holds is its JS heap plus its WebAssembly memories, which
 * Node counts as `heapUsed` and `external`; Cloudflare's limit is 128 MB per isolate.
 *
 * For each size, as a baseline and as a progressive JPEG (one fresh process each, so no memory carries over), it
 * prints that sum with the backbone warm (after a collection), how much decoding adds (a collection right before,
 * none during: a lower bound of the decode's peak), the largest reading through preprocessing and embedding over
 * the warm figure, what is left after a collection with the image and its tensor still referenced, and the JPEG
 * decoder's WASM memory then (shared/image/codecs.ts starts a fresh decoder after a photo over 8 MP). workers/config.ts
 * sets PREDICT_MAX_PIXELS from these figures.
 *
 *   npx tsx bench/predict/large-image-memory.ts [--sizes=2,3,4,8,12]   (megapixels)
 *
 * Prints numbers; asserts nothing. The heads cache (up to 32 MiB, workers/config.ts) is not in these figures.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { loadVendoredBundle } from "../../gpu-runner/src/backbones/builtin-vendored";
import { CODEC_WASM_PATHS } from "../../gpu-runner/src/codecs-node";
import { DEFAULT_BACKBONE, preprocessSpecOf } from "../../shared/catalog";
import { initCodecs } from "../../shared/image/codecs";
import { decodeImage } from "../../shared/image/decode";
import { preprocessImage } from "../../shared/image/preprocess";
import { createEmbedder } from "../../workers/inference/embedder";
import { syntheticPhotoJpeg } from "./synthetic-photo";

/** A 4:3 photo of about `megapixels`, in `file`. */
async function writePhoto(megapixels: number, progressive: boolean, file: string): Promise<void> {
  const height = Math.round(Math.sqrt((megapixels * 1e6 * 3) / 4));
  const width = Math.round((height * 4) / 3);
  await writeFile(file, await syntheticPhotoJpeg(width, height, progressive));
}

const file = process.argv[2]?.startsWith("--") ? undefined : process.argv[2];
if (!file) {
  // The photos are made here; each child only decodes and embeds, so no encoder memory is in its figures.
  const dir = await mkdtemp(path.join(tmpdir(), "edgetune-large-image-"));
  console.log("| photo | backbone warm | decoding adds | peak over warm | after GC, over warm | decoder's WASM memory after |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  const sizes = (process.argv.find((arg) => arg.startsWith("--sizes="))?.slice(8) ?? "2,3,4,8,12").split(",").map(Number);
  for (const [megapixels, progressive] of sizes.flatMap((size) => [[size, false], [size, true]] as const)) {
    const photo = path.join(dir, `${megapixels}mp-${progressive ? "progressive" : "baseline"}.jpg`);
    await writePhoto(megapixels, progressive, photo);
    process.stdout.write(execFileSync(process.execPath, ["--expose-gc", "--import", "tsx", fileURLToPath(import.meta.url), photo], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
  }
  await rm(dir, { recursive: true, force: true });
  console.log(`JS heap + WebAssembly memories (Node's heapUsed + external), MB. Load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
} else {
  const mb = () => {
    const usage = process.memoryUsage();
    return (usage.heapUsed + usage.external) / 1e6;
  };
  const codecs = await initCodecs({
    jpeg: await WebAssembly.compile(await readFile(CODEC_WASM_PATHS.jpeg)),
    png: await WebAssembly.compile(await readFile(CODEC_WASM_PATHS.png)),
  });
  await tf.setBackend("wasm");
  const embedder = await createEmbedder(tf as never, await loadVendoredBundle(DEFAULT_BACKBONE), DEFAULT_BACKBONE.spec, {});
  const spec = preprocessSpecOf(DEFAULT_BACKBONE.spec);
  // Warm: one small prediction, so that tfjs's heap has grown to the backbone's working size, as in a serving isolate.
  await embedder.embed(preprocessImage({ data: new Uint8ClampedArray(64 * 48 * 4).fill(200), width: 64, height: 48 }, spec));
  const gc = () => (globalThis as { gc?: () => void }).gc?.();
  gc();
  const warm = mb();
  const bytes = new Uint8Array(await readFile(file));
  gc();
  const beforeDecode = mb();
  const image = await decodeImage(bytes, codecs, { maxPixels: 50_000_000 });
  const afterDecode = mb();
  const tensor = preprocessImage(image, spec);
  const afterPreprocess = mb();
  await embedder.embed(tensor);
  const afterEmbed = mb();
  gc();
  const settled = mb();
  const mode = path.basename(file).includes("progressive") ? "progressive" : "baseline";
  const over = (value: number) => (value - warm).toFixed(1);
  console.log(`| ${image.width}x${image.height} (${((image.width * image.height) / 1e6).toFixed(1)} MP, ${mode} JPEG ${(bytes.length / 1e6).toFixed(1)} MB) | ${warm.toFixed(1)} | ${(afterDecode - beforeDecode).toFixed(1)} | ${over(Math.max(afterDecode, afterPreprocess, afterEmbed))} | ${over(settled)} | ${(codecs.jpegDecoderBytes!() / 1e6).toFixed(1)} |`);
  embedder.dispose();
}
