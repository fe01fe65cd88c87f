/**
 * What predicting a phone photo costs the CLI and the SDK's `predictFiles` since the edge takes at most 2 MP
 * (PREDICT_MAX_PIXELS): the time `downscaleToFit` (sdk/downscale-node.ts) takes to shrink a 12 MP JPEG and an 8 MP
 * one to fit (decode with mozjpeg, whole-box averages, mozjpeg encode at quality 95), and the bytes sent then.
 *
 *   npx tsx bench/predict/shrink-photo.ts   (median of 5 runs per photo, after one warm-up)
 *
 * Prints numbers; asserts nothing.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import encodeWithMozjpeg, { init as initMozjpegEncoder } from "@jsquash/jpeg/encode.js";
import { downscaleToFit } from "../../sdk/downscale-node";

const require = createRequire(import.meta.url);
await (initMozjpegEncoder as unknown as (module: WebAssembly.Module) => Promise<void>)(await WebAssembly.compile(await readFile(require.resolve("@jsquash/jpeg/codec/enc/mozjpeg_enc.wasm"))));

/** A smooth picture with detail (as bench/predict/large-image-memory.ts makes), as a baseline JPEG at quality 90. */
async function photo(width: number, height: number): Promise<Uint8Array> {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      data[i] = 128 + 100 * Math.sin(x / 37 + y / 53);
      data[i + 1] = 128 + 90 * Math.sin((x * y) / 9000);
      data[i + 2] = (x ^ y) & 255;
      data[i + 3] = 255;
    }
  }
  return new Uint8Array(await encodeWithMozjpeg({ data, width, height, colorSpace: "srgb" } as ImageData, { quality: 90, progressive: false, baseline: true } as never));
}

console.log("| photo | JPEG | shrunk to | JPEG sent | downscaleToFit (median of 5) |");
console.log("| --- | ---: | --- | ---: | ---: |");
for (const [width, height] of [[4000, 3000], [3265, 2449]] as const) {
  const bytes = await photo(width, height);
  await downscaleToFit(bytes, 2_000_000);
  const times: number[] = [];
  let last = await downscaleToFit(bytes, 2_000_000);
  for (let run = 0; run < 5; run++) {
    const started = performance.now();
    last = await downscaleToFit(bytes, 2_000_000);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  console.log(`| ${width}x${height} | ${(bytes.length / 1e6).toFixed(2)} MB | ${last.width}x${last.height} | ${(last.bytes.length / 1e6).toFixed(2)} MB | ${times[2]!.toFixed(0)} ms |`);
}
console.log(`Load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
