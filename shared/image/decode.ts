/**
 * Image bytes to upright 8-bit RGBA pixels: validate the structure first (cheap, and it refuses decompression bombs
 * before any pixel buffer exists), decode with the injected WASM codecs, then apply the EXIF orientation so that a
 * phone photo is upright. The same code runs in the runner (Node) and the Worker (workerd).
 */
import type { ImageCodecs, RgbaImage } from "./codecs";
import { ImageError } from "./errors";
import { inspectImage, type ExifOrientation, type ImageInfo } from "./sniff";

/**
 * Default pixel limit, as `MAX_IMAGE_PIXELS` in wrangler.toml. A decoded image costs 4 bytes per pixel in JS plus as
 * much again inside the decoder's WASM heap: 40 MP is 160 MB, beyond a 128 MB Worker, so serving should pass a
 * smaller limit (PREDICT_MAX_PIXELS, 2 MP: workers/config.ts) while the runner can afford this one.
 */
export const DEFAULT_MAX_PIXELS = 40_000_000;

export interface DecodeOptions {
  /** Largest accepted declared `width * height`; defaults to `DEFAULT_MAX_PIXELS`. */
  maxPixels?: number;
}

export interface DecodedImage extends RgbaImage {
  /** What the headers said (format, stored size, EXIF orientation). */
  info: ImageInfo;
}

/**
 * Decodes a JPEG or PNG to upright RGBA (`data.length === width * height * 4`).
 * @throws ImageError: whatever `inspectImage` throws, and `corrupt_image` when the decoder fails on data that looked
 *   well formed.
 */
export async function decodeImage(bytes: Uint8Array, codecs: ImageCodecs, options: DecodeOptions = {}): Promise<DecodedImage> {
  const info = inspectImage(bytes, { maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS });
  const formatName = info.format === "jpeg" ? "JPEG" : "PNG";
  let stored: RgbaImage;
  try {
    stored = info.format === "jpeg" ? await codecs.decodeJpeg(bytes) : await codecs.decodePng(bytes);
  } catch {
    // The decoder's own message is internal detail ("Decoding error"); the user needs to know what to do.
    throw new ImageError(
      "corrupt_image",
      `This ${formatName} is damaged: its headers are valid but its image data cannot be decoded. Open and re-save it in an image editor, or upload an intact copy.`,
      { format: info.format },
    );
  }
  if (stored.width !== info.width || stored.height !== info.height || stored.data.length !== stored.width * stored.height * 4) {
    throw new ImageError(
      "corrupt_image",
      `This ${formatName} is damaged: it declares ${info.width}x${info.height} pixels but decodes to ${stored.width}x${stored.height}. Re-save it or upload an intact copy.`,
      { format: info.format },
    );
  }
  // A JPEG has no alpha channel: mozjpeg writes 255 to every alpha byte, so preprocessImage need not scan for one.
  return { ...applyExifOrientation(stored, info.orientation), info, opaque: info.format === "jpeg" };
}

/**
 * Turns stored pixels upright according to an EXIF orientation (1..8). Orientations 2..4 are done in place (the
 * input buffer is reused); 5..8 swap width and height and return a new buffer.
 */
export function applyExifOrientation(image: RgbaImage, orientation: ExifOrientation): RgbaImage {
  if (orientation === 1) return image;
  const { width, height } = image;
  // One 32-bit word per RGBA pixel: moves whole pixels, independent of endianness.
  const data = image.data.byteOffset % 4 === 0 ? image.data : image.data.slice();
  const source = new Uint32Array(data.buffer, data.byteOffset, width * height);

  if (orientation === 2) {
    for (let y = 0; y < height; y++) source.subarray(y * width, (y + 1) * width).reverse();
    return { data, width, height };
  }
  if (orientation === 3) {
    source.reverse();
    return { data, width, height };
  }
  if (orientation === 4) {
    const row = new Uint32Array(width);
    for (let top = 0, bottom = height - 1; top < bottom; top++, bottom--) {
      row.set(source.subarray(top * width, (top + 1) * width));
      source.copyWithin(top * width, bottom * width, (bottom + 1) * width);
      source.set(row, bottom * width);
    }
    return { data, width, height };
  }

  // 5..8: the output is height x width. Output pixel (x', y') reads source column x = f(y'), row y = g(x'):
  // 5 transpose: (y', x'); 6 rotate 90° clockwise: (y', H-1-x'); 7 transverse: (W-1-y', H-1-x');
  // 8 rotate 90° counter-clockwise: (W-1-y', x').
  const outWidth = height;
  const outHeight = width;
  const output = new Uint8ClampedArray(width * height * 4);
  const target = new Uint32Array(output.buffer);
  const rowsDescend = orientation === 6 || orientation === 7;
  const columnsMirrored = orientation === 7 || orientation === 8;
  const step = rowsDescend ? -width : width;
  for (let yOut = 0; yOut < outHeight; yOut++) {
    const sourceX = columnsMirrored ? width - 1 - yOut : yOut;
    let at = (rowsDescend ? height - 1 : 0) * width + sourceX;
    let out = yOut * outWidth;
    for (let xOut = 0; xOut < outWidth; xOut++, at += step) target[out++] = source[at]!;
  }
  return { data: output, width: outWidth, height: outHeight };
}
