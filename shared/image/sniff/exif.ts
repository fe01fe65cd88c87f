/** The EXIF orientation tag, from a JPEG APP1 segment or a PNG eXIf chunk. */
import type { ExifOrientation } from "./types";

export function hasExifSignature(bytes: Uint8Array, at: number, end: number): boolean {
  // "Exif\0\0"
  return (
    end - at >= 6 &&
    bytes[at] === 0x45 &&
    bytes[at + 1] === 0x78 &&
    bytes[at + 2] === 0x69 &&
    bytes[at + 3] === 0x66 &&
    bytes[at + 4] === 0 &&
    bytes[at + 5] === 0
  );
}

/**
 * Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block starting at `start`. Lenient: decoders ignore
 * broken EXIF, so a malformed block means "upright", never a rejection.
 */
export function readExifOrientation(bytes: Uint8Array, start: number, end: number): ExifOrientation {
  if (end - start < 8) return 1;
  let little: boolean;
  if (bytes[start] === 0x49 && bytes[start + 1] === 0x49) little = true;
  else if (bytes[start] === 0x4d && bytes[start + 1] === 0x4d) little = false;
  else return 1;
  const u16 = (at: number) => (little ? bytes[at]! | (bytes[at + 1]! << 8) : (bytes[at]! << 8) | bytes[at + 1]!);
  const u32 = (at: number) => (little ? u16(at) + u16(at + 2) * 65536 : u16(at) * 65536 + u16(at + 2));
  if (u16(start + 2) !== 42) return 1;
  const directory = start + u32(start + 4);
  if (directory + 2 > end) return 1;
  const entries = u16(directory);
  for (let i = 0; i < entries; i++) {
    const entry = directory + 2 + 12 * i;
    if (entry + 12 > end) return 1;
    if (u16(entry) !== 0x0112) continue;
    const value = u16(entry + 8);
    return u16(entry + 2) === 3 && value >= 1 && value <= 8 ? (value as ExifOrientation) : 1;
  }
  return 1;
}
