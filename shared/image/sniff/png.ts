/** PNG: signature, IHDR first and valid, every chunk's CRC-32, a PLTE before IDAT for palette images, IDAT, IEND. */
import { crc32 } from "../../bytes";
import { ImageError } from "../errors";
import { checkDimensions, hex, imageInfo } from "./common";
import { readExifOrientation } from "./exif";
import type { ExifOrientation, ImageInfo } from "./types";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const IHDR = 0x49484452;
const PLTE = 0x504c5445;
const IDAT = 0x49444154;
const IEND = 0x49454e44;
const EXIF = 0x65584966; // eXIf

/** Allowed bit depths per colour type (PNG spec, table 11.1). */
const PNG_BIT_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

export function startsWithPngSignature(bytes: Uint8Array): boolean {
  // The first four bytes identify PNG; damage in bytes 4..7 (line-ending conversion) is reported as corruption.
  for (let i = 0; i < 4 && i < bytes.length; i++) if (bytes[i] !== PNG_SIGNATURE[i]) return false;
  return bytes.length >= 4 || bytes[0] === 0x89;
}

export function inspectPng(bytes: Uint8Array, maxPixels: number): ImageInfo {
  const end = bytes.length;
  if (end < 8) throw truncatedPng("it ends inside its signature");
  for (let i = 4; i < 8; i++) {
    if (bytes[i] !== PNG_SIGNATURE[i]) {
      throw corruptPng("its signature is altered, as when a file is transferred in text mode (line endings converted)");
    }
  }
  let pos = 8;
  let width = 0;
  let height = 0;
  let colorType = -1;
  let sawPalette = false;
  let sawImageData = false;
  let orientation: ExifOrientation = 1;

  for (let chunkIndex = 0; ; chunkIndex++) {
    if (pos + 8 > end) throw truncatedPng("it ends before its IEND chunk");
    const length = readU32(bytes, pos);
    const type = readU32(bytes, pos + 4);
    if (length > 0x7fffffff) throw corruptPng(`chunk ${chunkIndex} at byte ${pos} declares an impossible length`);
    if (!isChunkType(bytes, pos + 4)) throw corruptPng(`chunk ${chunkIndex} at byte ${pos} has an invalid type`);
    const dataStart = pos + 8;
    const dataEnd = dataStart + length;
    if (dataEnd + 4 > end) throw truncatedPng(`it ends inside its ${chunkName(type)} chunk`);
    if (chunkIndex === 0 && type !== IHDR) throw corruptPng("its first chunk is not IHDR");
    if (crc32(bytes, pos + 4, dataEnd) !== readU32(bytes, dataEnd)) {
      throw corruptPng(`its ${chunkName(type)} chunk at byte ${pos} fails its CRC check`);
    }

    if (type === IHDR) {
      if (chunkIndex !== 0) throw corruptPng("it has a second IHDR chunk");
      if (length !== 13) throw corruptPng(`its IHDR chunk is ${length} bytes long, not 13`);
      width = readU32(bytes, dataStart);
      height = readU32(bytes, dataStart + 4);
      const bitDepth = bytes[dataStart + 8]!;
      colorType = bytes[dataStart + 9]!;
      if (!PNG_BIT_DEPTHS[colorType]?.includes(bitDepth)) {
        throw corruptPng(`its IHDR declares colour type ${colorType} with bit depth ${bitDepth}, an invalid combination`);
      }
      if (bytes[dataStart + 10] !== 0 || bytes[dataStart + 11] !== 0 || bytes[dataStart + 12]! > 1) {
        throw corruptPng("its IHDR declares an unknown compression, filter or interlace method");
      }
      if (width > 0x7fffffff || height > 0x7fffffff) throw corruptPng("its IHDR declares an impossible size");
      checkDimensions(width, height, maxPixels, "png");
    } else if (type === PLTE) {
      sawPalette = true;
    } else if (type === IDAT) {
      if (colorType === 3 && !sawPalette) throw corruptPng("it is a palette image without a PLTE chunk before its data");
      sawImageData = true;
    } else if (type === IEND) {
      if (!sawImageData) throw corruptPng("it has no image data (IDAT chunk)");
      return imageInfo("png", width, height, orientation);
    } else if (type === EXIF) {
      orientation = readExifOrientation(bytes, dataStart, dataEnd);
    } else if ((bytes[pos + 4]! & 0x20) === 0) {
      // An unknown critical chunk: decoders must refuse the file (Apple's CgBI "optimized" PNGs are the usual case).
      throw new ImageError(
        "unsupported_format",
        `This PNG needs the non-standard critical chunk ${chunkName(type)} (Apple-optimized PNGs have CgBI) that the decoder cannot read. Re-save it as a standard PNG.`,
        { format: "png", chunk: chunkName(type) },
      );
    }
    pos = dataEnd + 4;
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function isChunkType(bytes: Uint8Array, at: number): boolean {
  for (let i = at; i < at + 4; i++) {
    const c = bytes[i]! | 0x20; // fold case
    if (c < 0x61 || c > 0x7a) return false;
  }
  return true;
}

function chunkName(type: number): string {
  return String.fromCharCode(type >>> 24, (type >>> 16) & 255, (type >>> 8) & 255, type & 255);
}

const truncatedPng = (what: string) =>
  new ImageError(
    "truncated_image",
    `This PNG is cut short: ${what} (an interrupted upload or copy?). Upload the complete file again.`,
    { format: "png" },
  );

const corruptPng = (what: string) =>
  new ImageError(
    "corrupt_image",
    `This PNG is damaged: ${what}. Open and re-save it in an image editor, or upload an intact copy.`,
    { format: "png" },
  );
