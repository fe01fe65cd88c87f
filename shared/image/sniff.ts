/**
 * Cheap validation of an uploaded image from its structure alone: no pixel is decoded and nothing proportional to the
 * image's pixel count is allocated. Ingestion runs this on every file of an archive (up to 20,000 per archive inside
 * a 128 MB Worker), so it must reject what the decoder would choke on (a cut-off upload, a damaged chunk, a format we
 * cannot decode, a decompression bomb) at the cost of one pass over the bytes.
 *

 * One file per format under sniff/: jpeg.ts, png.ts (with exif.ts for orientation, common.ts for the size checks,
 * other-formats.ts to name what we refuse).
 *
 * JPEG: walks the marker segments from SOI to EOI, checking each segment's declared length and the layout of the
 * tables it needs (DQT, DHT, SOFn, SOS), skipping entropy-coded data (stuffed 0xFF00 bytes and RSTn markers) with a
 * native `indexOf`, through every scan of a progressive file. A file without EOI is truncated.
 * PNG: signature, IHDR first and valid, every chunk's CRC-32, a PLTE before IDAT for palette images, IDAT, IEND.
 * Measured (Node 20, this repo's machines): about 20 µs for a 500x375 JPEG of 40 KB; see the report in
 * tests/node/image-sniff.test.ts for how to rerun it.
 */
import { ImageError } from "./errors";
import { inspectJpeg } from "./sniff/jpeg";
import { recogniseOtherFormat } from "./sniff/other-formats";
import { inspectPng, startsWithPngSignature } from "./sniff/png";
import type { ImageInfo, InspectOptions } from "./sniff/types";

export { MAX_JPEG_SCANS } from "./sniff/jpeg";
export type { ExifOrientation, ImageFormat, ImageInfo, InspectOptions } from "./sniff/types";

/**
 * Reads format, size and orientation from the headers and validates the file's structure.
 * @throws ImageError with code empty_file | not_an_image | unsupported_format | truncated_image | corrupt_image |
 *   too_many_pixels
 */
export function inspectImage(bytes: Uint8Array, options: InspectOptions): ImageInfo {
  if (!(options.maxPixels > 0)) throw new RangeError(`maxPixels must be a positive number, got ${options.maxPixels}`);
  if (bytes.length === 0) {
    throw new ImageError("empty_file", "The file is empty (0 bytes). Check the file on your side and upload it again.");
  }
  if (bytes[0] === 0xff && (bytes.length === 1 || bytes[1] === 0xd8)) return inspectJpeg(bytes, options.maxPixels);
  if (startsWithPngSignature(bytes)) return inspectPng(bytes, options.maxPixels);
  const other = recogniseOtherFormat(bytes);
  if (other) {
    throw new ImageError(
      "unsupported_format",
      `This file is ${other}; only JPEG and PNG images are accepted. Convert it to JPEG or PNG and upload it again.`,
      { format: other },
    );
  }
  throw new ImageError(
    "not_an_image",
    "This file is not an image: it starts with neither JPEG's nor PNG's signature. Upload JPEG or PNG files only.",
  );
}
