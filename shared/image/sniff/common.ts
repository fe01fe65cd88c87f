/** Checks and helpers every format's sniffer shares. */
import { ImageError } from "../errors";
import type { ExifOrientation, ImageFormat, ImageInfo } from "./types";

export function checkDimensions(width: number, height: number, maxPixels: number, format: ImageFormat): void {
  if (width === 0 || height === 0) {
    throw new ImageError(
      "corrupt_image",
      `This ${format.toUpperCase()} declares a size of ${width}x${height} pixels; an image needs at least 1x1. Re-save it or upload an intact copy.`,
      { format, width, height },
    );
  }
  if (width * height > maxPixels) {
    throw new ImageError(
      "too_many_pixels",
      `This image declares ${width}x${height} = ${width * height} pixels, more than the limit of ${maxPixels}. Downscale it (the models only see about 224x224 pixels) and upload it again.`,
      { format, width, height, max_pixels: maxPixels },
    );
  }
}

export function imageInfo(format: ImageFormat, width: number, height: number, orientation: ExifOrientation): ImageInfo {
  const swapped = orientation >= 5;
  return {
    format,
    width,
    height,
    orientation,
    uprightWidth: swapped ? height : width,
    uprightHeight: swapped ? width : height,
  };
}

export function hex(byte: number): string {
  return byte.toString(16).toUpperCase().padStart(2, "0");
}
