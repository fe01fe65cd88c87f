/**
 * Shrinks a photo that is over the edge's pixel limit (the API's 422 `too_many_pixels`, whose `details.max_pixels`
 * says the limit), so that `predictFiles` can still predict a 12 MP phone photo: the edge cannot decode one within
 * its 128 MB isolate (bench/predict/large-image-memory.ts).
 *
 * The copy is decoded with the platform's own decoders (mozjpeg, png; EXIF orientation applied), averaged over k x k
 * pixel boxes with the smallest whole k that fits the limit, and encoded as a baseline JPEG at quality 95. The models see
 * at most a few hundred pixels a side, so the prediction barely moves; it is not the tensor of the original bytes,
 * which is why this only runs when the edge refuses the original.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import encodeWithMozjpeg, { init as initMozjpegEncoder } from "@jsquash/jpeg/encode.js";
import { createCodecLoader } from "../shared/image/codecs";
import { decodeImage, DEFAULT_MAX_PIXELS } from "../shared/image/decode";
import { inspectImage } from "../shared/image/sniff";

const require = createRequire(import.meta.url);

const getCodecs = createCodecLoader(async () => ({
  jpeg: await WebAssembly.compile(await readFile(require.resolve("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm"))),
  png: await WebAssembly.compile(await readFile(require.resolve("@jsquash/png/codec/pkg/squoosh_png_bg.wasm"))),
}));

let encoderReady: Promise<void> | undefined;
function initEncoder(): Promise<void> {
  encoderReady ??= readFile(require.resolve("@jsquash/jpeg/codec/enc/mozjpeg_enc.wasm"))
    .then((bytes) => WebAssembly.compile(bytes))
    // The .d.ts declares init(options) only; the code takes (module, options), as for the decoder (codecs.ts).
    .then((module) => (initMozjpegEncoder as unknown as (module: WebAssembly.Module) => Promise<void>)(module));
  return encoderReady;
}

/** Width and height of an image from its headers (upright, EXIF orientation applied); null if not a JPEG or PNG. */
export function imagePixels(bytes: Uint8Array): { width: number; height: number } | null {
  try {
    const info = inspectImage(bytes, { maxPixels: Number.MAX_SAFE_INTEGER });
    return { width: info.uprightWidth, height: info.uprightHeight };
  } catch {
    return null;
  }
}

export interface Downscaled {
  bytes: Uint8Array<ArrayBuffer>;
  width: number;
  height: number;
  /** The original's upright size. */
  from: { width: number; height: number };
}

/**
 * A JPEG copy of `bytes` with at most `maxPixels` pixels (see above).
 * @throws ImageError for what the platform refuses anywhere: not a JPEG or PNG, damaged, or over the datasets' 40 MP
 *   (DEFAULT_MAX_PIXELS: a decompression bomb's header is refused before any pixel buffer exists).
 */
export async function downscaleToFit(bytes: Uint8Array, maxPixels: number): Promise<Downscaled> {
  const image = await decodeImage(bytes, await getCodecs(), { maxPixels: DEFAULT_MAX_PIXELS });
  const { width, height } = image;
  let k = Math.max(1, Math.ceil(Math.sqrt((width * height) / maxPixels)));
  while (Math.floor(width / k) * Math.floor(height / k) > maxPixels) k++;
  const outWidth = Math.max(1, Math.floor(width / k));
  const outHeight = Math.max(1, Math.floor(height / k));
  const out = new Uint8ClampedArray(outWidth * outHeight * 4);
  const sums = new Float64Array(outWidth * 3);
  const area = k * k;
  const data = image.data;
  for (let oy = 0; oy < outHeight; oy++) {
    sums.fill(0);
    for (let y = oy * k; y < (oy + 1) * k; y++) {
      let i = y * width * 4;
      for (let ox = 0; ox < outWidth; ox++) {
        let r = 0;
        let g = 0;
        let b = 0;
        if (image.opaque) {
          for (let dx = 0; dx < k; dx++, i += 4) {
            r += data[i]!;
            g += data[i + 1]!;
            b += data[i + 2]!;
          }
        } else {
          // Transparent PNG pixels are composited on white, as preprocessing does.
          for (let dx = 0; dx < k; dx++, i += 4) {
            const alpha = data[i + 3]! / 255;
            r += data[i]! * alpha + 255 * (1 - alpha);
            g += data[i + 1]! * alpha + 255 * (1 - alpha);
            b += data[i + 2]! * alpha + 255 * (1 - alpha);
          }
        }
        sums[ox * 3] += r;
        sums[ox * 3 + 1] += g;
        sums[ox * 3 + 2] += b;
      }
    }
    for (let ox = 0; ox < outWidth; ox++) {
      const o = (oy * outWidth + ox) * 4;
      out[o] = sums[ox * 3]! / area;
      out[o + 1] = sums[ox * 3 + 1]! / area;
      out[o + 2] = sums[ox * 3 + 2]! / area;
      out[o + 3] = 255;
    }
  }
  await initEncoder();
  // Baseline, not mozjpeg's default progressive: it encodes in half the time, and the edge decodes a baseline JPEG
  // in a third less memory (bench/predict/large-image-memory.ts: 8.3 against 12.4 MB at 2 MP).
  const jpeg = await encodeWithMozjpeg({ data: out, width: outWidth, height: outHeight, colorSpace: "srgb" } as ImageData, { quality: 95, baseline: true, progressive: false });
  return { bytes: new Uint8Array(jpeg), width: outWidth, height: outHeight, from: { width, height } };
}
