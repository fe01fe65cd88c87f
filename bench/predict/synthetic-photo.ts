/**
 * A smooth picture with detail, so that its JPEG (mozjpeg, quality 90) is about the size of a phone photo's: the
 * large photos of bench/predict/large-image-memory.ts and bench/predict/shrink-photo.ts.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import encodeWithMozjpeg, { init as initMozjpegEncoder } from "@jsquash/jpeg/encode.js";

let encoderReady: Promise<void> | undefined;

export async function syntheticPhotoJpeg(width: number, height: number, progressive: boolean): Promise<Uint8Array> {
  const require = createRequire(import.meta.url);
  encoderReady ??= readFile(require.resolve("@jsquash/jpeg/codec/enc/mozjpeg_enc.wasm"))
    .then((bytes) => WebAssembly.compile(bytes))
    .then((module) => (initMozjpegEncoder as unknown as (module: WebAssembly.Module) => Promise<void>)(module));
  await encoderReady;
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
  return new Uint8Array(await encodeWithMozjpeg({ data, width, height, colorSpace: "srgb" } as ImageData, { quality: 90, progressive, baseline: !progressive } as never));
}
