/**
 * What predicting a phone photo costs the CLI and the SDK's `predictFiles` since the edge takes at most 2 MP
 * (PREDICT_MAX_PIXELS): the time `downscaleToFit` (sdk/downscale-node.ts) takes to shrink a 12 MP JPEG and an 8 MP
 * one to fit (decode with mozjpeg, whole-box averages, mozjpeg encode at quality 95), and the bytes sent then.
 *
 *   npx tsx bench/predict/shrink-photo.ts   (median of 5 runs per photo, after one warm-up)
 *
 * Prints numbers; asserts nothing.
 */
import { loadavg } from "node:os";
import { downscaleToFit } from "../../sdk/downscale-node";
import { syntheticPhotoJpeg } from "./synthetic-photo";

console.log("| photo | JPEG | shrunk to | JPEG sent | downscaleToFit (median of 5) |");
console.log("| --- | ---: | --- | ---: | ---: |");
for (const [width, height] of [[4000, 3000], [3265, 2449]] as const) {
  const bytes = await syntheticPhotoJpeg(width, height, false);
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
