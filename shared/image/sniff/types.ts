/** The image sniffer's types (shared/image/sniff.ts re-exports them). */

export type ImageFormat = "jpeg" | "png";

/** EXIF orientation 1..8 (1 = stored upright); 5..8 swap width and height for display. */
export type ExifOrientation = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;

export interface ImageInfo {
  format: ImageFormat;
  /** Stored (header) dimensions, before the EXIF orientation is applied. */
  width: number;
  height: number;
  orientation: ExifOrientation;
  /** Dimensions as displayed, after the EXIF orientation: what `decodeImage` returns. */
  uprightWidth: number;
  uprightHeight: number;
}

export interface InspectOptions {
  /** Largest accepted `width * height` declared in the header (the decompression-bomb guard). */
  maxPixels: number;
}
