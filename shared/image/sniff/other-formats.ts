/** Recognises the image formats we do not decode (GIF, WebP, HEIC, ...), so the error can name them. */

/** Names a recognised image format other than JPEG and PNG, or returns null. */
export function recogniseOtherFormat(b: Uint8Array): string | null {
  const ascii = (at: number, text: string) => {
    if (b.length < at + text.length) return false;
    for (let i = 0; i < text.length; i++) if (b[at + i] !== text.charCodeAt(i)) return false;
    return true;
  };
  if (ascii(0, "GIF87a") || ascii(0, "GIF89a")) return "a GIF";
  if (ascii(0, "RIFF") && ascii(8, "WEBP")) return "a WebP image";
  if (ascii(0, "II*\0") || ascii(0, "MM\0*")) return "a TIFF image";
  if (ascii(0, "8BPS")) return "a Photoshop document";
  if (ascii(4, "ftyp")) {
    if (ascii(8, "avif") || ascii(8, "avis")) return "an AVIF image";
    for (const brand of ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"]) {
      if (ascii(8, brand)) return "a HEIC/HEIF image (the iPhone default: set Camera > Formats > Most Compatible)";
    }
  }
  if ((b[0] === 0xff && b[1] === 0x0a) || ascii(4, "JXL \r\n\x87\n")) return "a JPEG XL image";
  if (ascii(4, "jP  \r\n\x87\n") || (b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51)) {
    return "a JPEG 2000 image";
  }
  if (ascii(0, "BM") && b.length >= 18) {
    // The DIB header size distinguishes a real BMP from text that happens to start with "BM".
    const dibHeaderSize = b[14]! | (b[15]! << 8) | (b[16]! << 16) | (b[17]! << 24);
    if ([12, 40, 52, 56, 64, 108, 124].includes(dibHeaderSize)) return "a BMP image";
  }
  if (looksLikeSvg(b)) return "an SVG drawing (a vector format)";
  return null;
}

function looksLikeSvg(b: Uint8Array): boolean {
  let start = 0;
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) start = 3; // UTF-8 byte order mark
  while (start < b.length && (b[start] === 0x20 || b[start] === 0x0a || b[start] === 0x0d || b[start] === 0x09)) start++;
  if (b[start] !== 0x3c) return false; // "<"
  const head = String.fromCharCode(...b.subarray(start, Math.min(b.length, start + 1024)));
  return /<svg[\s>]/i.test(head);
}
