/**
 * JPEG: walks the marker segments from SOI to EOI, checking each segment's declared length and the layout of the
 * tables it needs (DQT, DHT, SOFn, SOS), skipping entropy-coded data (stuffed 0xFF00 bytes and RSTn markers) with a
 * native `indexOf`, through every scan of a progressive file. A file without EOI is truncated.
 */
import { ImageError } from "../errors";
import { checkDimensions, hex, imageInfo } from "./common";
import { hasExifSignature, readExifOrientation } from "./exif";
import type { ExifOrientation, ImageInfo } from "./types";

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DQT = 0xdb;
const DHT = 0xc4;
const DRI = 0xdd;
const APP1 = 0xe1;

/** Scans a JPEG may have (see the scan-bomb note in inspectJpeg); libjpeg-turbo's djpeg suggests a limit of 100. */
export const MAX_JPEG_SCANS = 48;

export function inspectJpeg(bytes: Uint8Array, maxPixels: number): ImageInfo {
  const end = bytes.length;
  if (end < 4) throw truncatedJpeg();
  let pos = 2;
  let frame: JpegFrame | null = null;
  let quantizationTables = 0; // bit i set once table i is defined
  let orientation: ExifOrientation | null = null;
  let scans = 0;

  for (;;) {
    if (pos >= end) throw truncatedJpeg();
    if (bytes[pos] !== 0xff) throw corruptJpeg(`expected a marker at byte ${pos}, found 0x${hex(bytes[pos]!)}`);
    while (pos < end && bytes[pos] === 0xff) pos++; // fill bytes may precede any marker
    if (pos >= end) throw truncatedJpeg();
    const marker = bytes[pos++]!;

    if (marker === EOI) {
      if (!frame) throw corruptJpeg("it ends without a frame header (SOF)");
      if (scans === 0) throw corruptJpeg("it ends without any image data (SOS)");
      return imageInfo("jpeg", frame.width, frame.height, orientation ?? 1);
    }
    if (marker === 0x01) continue; // TEM: standalone, no length
    if (marker === SOI || marker === 0x00 || (marker >= 0xd0 && marker <= 0xd7)) {
      throw corruptJpeg(`marker 0x${hex(marker)} at byte ${pos - 1} is out of place`);
    }
    if (marker < 0xc0 || marker === 0xc8) throw corruptJpeg(`unknown marker 0x${hex(marker)} at byte ${pos - 1}`);

    if (pos + 2 > end) throw truncatedJpeg();
    const length = (bytes[pos]! << 8) | bytes[pos + 1]!;
    if (length < 2) throw corruptJpeg(`segment 0x${hex(marker)} at byte ${pos - 1} declares length ${length}`);
    const body = pos + 2;
    const segmentEnd = pos + length;
    if (segmentEnd > end) throw truncatedJpeg();

    if (isStartOfFrame(marker)) {
      if (frame) throw corruptJpeg("it has two frame headers (SOF)");
      frame = readJpegFrame(bytes, marker, body, segmentEnd, maxPixels);
    } else if (marker === DHT) {
      checkHuffmanTables(bytes, body, segmentEnd);
    } else if (marker === DQT) {
      quantizationTables |= readQuantizationTables(bytes, body, segmentEnd);
    } else if (marker === DRI) {
      if (length !== 4) throw corruptJpeg(`its restart interval segment has length ${length}, not 4`);
    } else if (marker === APP1 && orientation === null && hasExifSignature(bytes, body, segmentEnd)) {
      orientation = readExifOrientation(bytes, body + 6, segmentEnd);
    } else if (marker === SOS) {
      if (!frame) throw corruptJpeg("image data (SOS) comes before the frame header (SOF)");
      checkScanHeader(bytes, body, segmentEnd, frame.componentIds);
      if (scans === 0) {
        for (const table of frame.quantizationTableIds) {
          if (!(quantizationTables & (1 << table))) throw corruptJpeg(`its quantization table ${table} is never defined`);
        }
      }
      scans++;
      // The libjpeg "scan bomb": each scan of a progressive JPEG makes the decoder walk every coefficient of the image
      // again, so a small file of thousands of tiny scans costs minutes of CPU. Real encoders write at most about a
      // dozen (mozjpeg 10, libjpeg's default progression 10, Photoshop up to 5); refused past MAX_JPEG_SCANS.
      if (scans > MAX_JPEG_SCANS) {
        throw new ImageError("too_many_scans", `This JPEG has more than ${MAX_JPEG_SCANS} scans (ordinary progressive JPEGs have about 10); decoding it would cost far too much. Re-save it as a baseline JPEG or as PNG.`, { limit: MAX_JPEG_SCANS });
      }
      pos = skipEntropyCodedData(bytes, segmentEnd);
      continue;
    }
    // Everything else with a length (APPn, COM, JPGn, DNL, DHP, EXP, DAC) is skipped.
    pos = segmentEnd;
  }
}

function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== DHT && marker !== 0xc8 && marker !== 0xcc;
}

interface JpegFrame {
  width: number;
  height: number;
  componentIds: number[];
  quantizationTableIds: number[];
}

function readJpegFrame(bytes: Uint8Array, marker: number, body: number, segmentEnd: number, maxPixels: number): JpegFrame {
  // Baseline, extended, progressive, and their arithmetic-coded twins are what mozjpeg decodes.
  if (marker === 0xc3 || marker === 0xcb || (marker >= 0xc5 && marker <= 0xc7) || marker >= 0xcd) {
    throw new ImageError(
      "unsupported_format",
      `This JPEG uses the ${marker === 0xc3 || marker === 0xcb ? "lossless" : "hierarchical"} mode (SOF 0x${hex(marker)}), which the decoder does not support. Re-save it as an ordinary (baseline or progressive) JPEG or as PNG.`,
      { format: "jpeg", sof: marker },
    );
  }
  if (segmentEnd - body < 6) throw corruptJpeg("its frame header (SOF) is too short");
  const precision = bytes[body]!;
  const height = (bytes[body + 1]! << 8) | bytes[body + 2]!;
  const width = (bytes[body + 3]! << 8) | bytes[body + 4]!;
  const componentCount = bytes[body + 5]!;
  if (segmentEnd - body !== 6 + 3 * componentCount) {
    throw corruptJpeg(`its frame header (SOF) length does not match its ${componentCount} components`);
  }
  if (precision !== 8) {
    throw new ImageError(
      "unsupported_format",
      `This JPEG has ${precision}-bit samples; only 8-bit JPEGs are supported. Re-save it as an 8-bit JPEG or as PNG.`,
      { format: "jpeg", precision },
    );
  }
  checkDimensions(width, height, maxPixels, "jpeg");
  if (componentCount !== 1 && componentCount !== 3 && componentCount !== 4) {
    throw new ImageError(
      "unsupported_format",
      `This JPEG has ${componentCount} colour components; only grayscale, RGB/YCbCr and CMYK JPEGs are supported.`,
      { format: "jpeg", components: componentCount },
    );
  }
  const componentIds: number[] = [];
  const quantizationTableIds: number[] = [];
  for (let i = 0; i < componentCount; i++) {
    const at = body + 6 + 3 * i;
    const sampling = bytes[at + 1]!;
    const horizontal = sampling >> 4;
    const vertical = sampling & 15;
    if (horizontal < 1 || horizontal > 4 || vertical < 1 || vertical > 4 || bytes[at + 2]! > 3) {
      throw corruptJpeg(`component ${i} of its frame header (SOF) has invalid sampling factors or table number`);
    }
    componentIds.push(bytes[at]!);
    quantizationTableIds.push(bytes[at + 2]!);
  }
  return { width, height, componentIds, quantizationTableIds };
}

function checkHuffmanTables(bytes: Uint8Array, at: number, segmentEnd: number): void {
  while (at < segmentEnd) {
    const classAndId = bytes[at]!;
    if (classAndId >> 4 > 1 || (classAndId & 15) > 3 || at + 17 > segmentEnd) {
      throw corruptJpeg(`its Huffman table segment (DHT) is malformed at byte ${at}`);
    }
    let symbols = 0;
    for (let i = 1; i <= 16; i++) symbols += bytes[at + i]!;
    if (symbols > 256) throw corruptJpeg(`a Huffman table (DHT) declares ${symbols} codes, more than 256`);
    at += 17 + symbols;
  }
  if (at !== segmentEnd) throw corruptJpeg("its Huffman table segment (DHT) length does not match its tables");
}

/** Validates a DQT segment's layout; returns the bit mask of the table numbers it defines. */
function readQuantizationTables(bytes: Uint8Array, at: number, segmentEnd: number): number {
  let defined = 0;
  while (at < segmentEnd) {
    const precisionAndId = bytes[at]!;
    if (precisionAndId >> 4 > 1 || (precisionAndId & 15) > 3) {
      throw corruptJpeg(`its quantization table segment (DQT) is malformed at byte ${at}`);
    }
    defined |= 1 << (precisionAndId & 15);
    at += 1 + 64 * ((precisionAndId >> 4) + 1);
  }
  if (at !== segmentEnd) throw corruptJpeg("its quantization table segment (DQT) length does not match its tables");
  return defined;
}

function checkScanHeader(bytes: Uint8Array, body: number, segmentEnd: number, componentIds: number[]): void {
  const count = bytes[body]!;
  if (count < 1 || count > 4 || segmentEnd - body !== 4 + 2 * count) {
    throw corruptJpeg(`its scan header (SOS) at byte ${body - 4} is malformed`);
  }
  for (let i = 0; i < count; i++) {
    if (!componentIds.includes(bytes[body + 1 + 2 * i]!)) {
      throw corruptJpeg(`its scan header (SOS) at byte ${body - 4} names a component the frame does not have`);
    }
  }
}

/**
 * Returns the position of the 0xFF that starts the first marker after entropy-coded data (0xFF00 is a stuffed
 * data byte, 0xFFD0..0xFFD7 are restart markers that belong to the scan, runs of 0xFF are fill).
 */
function skipEntropyCodedData(bytes: Uint8Array, pos: number): number {
  const end = bytes.length;
  for (;;) {
    const ff = bytes.indexOf(0xff, pos);
    if (ff < 0) throw truncatedJpeg();
    let next = ff + 1;
    while (next < end && bytes[next] === 0xff) next++;
    if (next >= end) throw truncatedJpeg();
    const marker = bytes[next]!;
    if (marker === 0x00 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos = next + 1;
      continue;
    }
    return next - 1;
  }
}

const truncatedJpeg = () =>
  new ImageError(
    "truncated_image",
    "This JPEG is cut short: it ends before its end-of-image marker (an interrupted upload or copy?). Upload the complete file again.",
    { format: "jpeg" },
  );

const corruptJpeg = (what: string) =>
  new ImageError(
    "corrupt_image",
    `This JPEG is damaged: ${what}. Open and re-save it in an image editor, or upload an intact copy.`,
    { format: "jpeg" },
  );
