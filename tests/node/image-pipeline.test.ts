/**
 * The image pipeline in Node: header validation (inspectImage), decoding with the WASM codecs (decodeImage), and the
 * model input (preprocessImage), built on images made inside the tests (mozjpeg's encoder from @jsquash/jpeg, PNGs
 * assembled chunk by chunk with node:zlib) so that every byte that matters is known.
 *
 * The parity section holds the fixture bytes and digests that tests/workers/image-codecs.test.ts checks inside
 * workerd: both suites assert the same constants. Print fresh ones with `PRINT_IMAGE_FIXTURES=1` after a deliberate
 * change (and bump PREPROCESS_VERSION).
 *
 * Isolation: the codecs are a process-wide singleton, initialised in `before`; no test depends on another's order.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { beforeAll, describe, it } from "vitest";
import { crc32 as zlibCrc32, deflateSync } from "node:zlib";
import encodeWithMozjpeg, { init as initMozjpegEncoder } from "@jsquash/jpeg/encode.js";
import type { ImageCodecs, RgbaImage } from "../../shared/image/codecs";
import { applyExifOrientation, decodeImage } from "../../shared/image/decode";
import { ImageError, type ImageErrorCode } from "../../shared/image/errors";
import { PREPROCESS_VERSION, imageToTensorInput, preprocessImage, type PreprocessSpec } from "../../shared/image/preprocess";
import { crc32 } from "../../shared/bytes";
import { inspectImage, type ExifOrientation } from "../../shared/image/sniff";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { EXPECTED, FIXTURE_JPEG_BASE64, FIXTURE_PNG_BASE64, SPECS } from "../fixtures/parity-images";

const require = createRequire(import.meta.url);
const LIMIT = { maxPixels: 40_000_000 };
const HALF: PreprocessSpec = { input_size: [24, 24], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: "squash" };
const IMAGENET: { mean: [number, number, number]; std: [number, number, number] } = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

let codecs: ImageCodecs;

beforeAll(async () => {
  codecs = await getNodeCodecs();
  const encoderPath = require.resolve("@jsquash/jpeg/codec/enc/mozjpeg_enc.wasm");
  const encoder = await WebAssembly.compile(await readFile(encoderPath));
  await (initMozjpegEncoder as unknown as (module: WebAssembly.Module) => Promise<void>)(encoder);
});

// ---- factories ----------------------------------------------------------------------------------------------

/** An RGBA image whose pixel (x, y) is `colour(x, y)`. */
function makeImage(width: number, height: number, colour: (x: number, y: number) => [number, number, number, number?]): RgbaImage {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b, a = 255] = colour(x, y);
      data.set([r, g, b, a], (y * width + x) * 4);
    }
  }
  return { data, width, height };
}

/** A deterministic, busy pattern (edges in every direction), optionally with varying alpha. */
function pattern(width: number, height: number, alpha = false): RgbaImage {
  return makeImage(width, height, (x, y) => [
    (x * 5 + y * 3) & 255,
    (x * y) & 255,
    ((x ^ y) * 9) & 255,
    alpha ? ((x + y) % 3 === 0 ? 255 : (x * 17 + y * 7) & 255) : 255,
  ]);
}

async function encodeJpeg(image: RgbaImage, options: Record<string, unknown> = {}): Promise<Uint8Array> {
  const encode = encodeWithMozjpeg as unknown as (image: RgbaImage, options: object) => Promise<ArrayBuffer>;
  return new Uint8Array(await encode(image, options));
}

/** Inserts an APP1 EXIF segment holding only IFD0's Orientation tag right after SOI. */
function withExifOrientation(jpeg: Uint8Array, orientation: number, byteOrder: "MM" | "II" = "MM"): Uint8Array {
  const big = byteOrder === "MM";
  const u16 = (v: number) => (big ? [v >> 8, v & 255] : [v & 255, v >> 8]);
  const u32 = (v: number) => (big ? [0, 0, ...u16(v)] : [...u16(v), 0, 0]);
  const tiff = [...(big ? [0x4d, 0x4d] : [0x49, 0x49]), ...u16(42), ...u32(8), ...u16(1), ...u16(0x0112), ...u16(3), ...u32(1), ...u16(orientation), 0, 0, ...u32(0)];
  const payload = [0x45, 0x78, 0x69, 0x66, 0, 0, ...tiff];
  const length = payload.length + 2;
  return new Uint8Array([0xff, 0xd8, 0xff, 0xe1, length >> 8, length & 255, ...payload, ...jpeg.subarray(2)]);
}

/** Offset of the 0xFF of the first segment with this marker (headers only). */
function findMarker(bytes: Uint8Array, marker: number): number {
  let pos = 2;
  while (bytes[pos + 1] !== marker) {
    if (pos >= bytes.length) throw new Error(`marker ${marker.toString(16)} not found`);
    pos += 2 + ((bytes[pos + 2]! << 8) | bytes[pos + 3]!);
  }
  return pos;
}

function pngChunk(type: string, data: Uint8Array | number[]): Uint8Array {
  const body = Uint8Array.from(data);
  const chunk = new Uint8Array(12 + body.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, body.length);
  chunk.set(Buffer.from(type, "latin1"), 4);
  chunk.set(body, 8);
  view.setUint32(8 + body.length, zlibCrc32(chunk.subarray(4, 8 + body.length)));
  return chunk;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

interface PngOptions {
  colorType?: 0 | 2 | 3 | 4 | 6;
  bitDepth?: number;
  /** Chunks placed between IHDR and IDAT (PLTE, eXIf, ...). */
  before?: Uint8Array[];
  /** IDAT payload; by default the deflated scanlines of `rows`. */
  idat?: Uint8Array;
}

/** A PNG from packed scanlines (without filter bytes): filter type 0 on every row, zlib by node:zlib. */
function buildPng(width: number, height: number, rows: Uint8Array[], options: PngOptions = {}): Uint8Array {
  const { colorType = 6, bitDepth = 8 } = options;
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([bitDepth, colorType, 0, 0, 0], 8);
  const raw = Buffer.concat(rows.map((row) => Buffer.concat([Buffer.from([0]), row])));
  const idat = options.idat ?? new Uint8Array(deflateSync(raw));
  return new Uint8Array(
    Buffer.concat([Buffer.from(PNG_SIGNATURE), pngChunk("IHDR", ihdr), ...(options.before ?? []), pngChunk("IDAT", idat), pngChunk("IEND", [])]),
  );
}

/** An 8-bit RGBA PNG of an image. */
function encodePng(image: RgbaImage): Uint8Array {
  const rows = [];
  for (let y = 0; y < image.height; y++) rows.push(new Uint8Array(image.data.subarray(y * image.width * 4, (y + 1) * image.width * 4)));
  return buildPng(image.width, image.height, rows);
}

function expectImageError(run: () => unknown, code: ImageErrorCode): ImageError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ImageError, `expected an ImageError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.ok(error.message.length > 20);
    return error;
  }
  assert.fail(`expected ImageError ${code}, nothing was thrown`);
}

async function expectImageErrorAsync(run: () => Promise<unknown>, code: ImageErrorCode): Promise<ImageError> {
  const error = await run().then(
    () => assert.fail(`expected ImageError ${code}, nothing was thrown`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ImageError, `expected an ImageError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  return error;
}

const sha256 = (view: ArrayBufferView) =>
  createHash("sha256").update(new Uint8Array(view.buffer, view.byteOffset, view.byteLength)).digest("hex");

/** The pixel of an RGBA image at (x, y) as [r, g, b, a]. */
const pixelAt = (image: RgbaImage, x: number, y: number) => [...image.data.subarray((y * image.width + x) * 4, (y * image.width + x) * 4 + 4)];

// ---- inspectImage -------------------------------------------------------------------------------------------

describe("inspectImage", () => {
  it("reads format, size and orientation 1 from baseline and progressive JPEGs", async () => {
    for (const options of [{ progressive: false, baseline: true }, { progressive: true }]) {
      const jpeg = await encodeJpeg(pattern(37, 23), options);
      assert.deepEqual(inspectImage(jpeg, LIMIT), { format: "jpeg", width: 37, height: 23, orientation: 1, uprightWidth: 37, uprightHeight: 23 });
    }
  });

  it("reads format and size from PNGs of every colour type and bit depth", () => {
    const cases: Array<[PngOptions["colorType"], number, number]> = [
      [0, 1, 1], [0, 8, 1], [0, 16, 2], [2, 8, 3], [2, 16, 6], [3, 4, 1], [4, 8, 2], [6, 8, 4], [6, 16, 8],
    ];
    for (const [colorType, bitDepth, bytesPerPixel] of cases) {
      const width = 9;
      const rowBytes = Math.ceil((width * bytesPerPixel * (bitDepth < 8 ? bitDepth : 8)) / 8);
      const rows = Array.from({ length: 5 }, () => new Uint8Array(rowBytes));
      const before = colorType === 3 ? [pngChunk("PLTE", [0, 0, 0, 255, 255, 255])] : [];
      const png = buildPng(width, 5, rows, { colorType, bitDepth, before });
      assert.deepEqual(inspectImage(png, LIMIT), { format: "png", width: 9, height: 5, orientation: 1, uprightWidth: 9, uprightHeight: 5 });
    }
  });

  it("reads the EXIF orientation of a JPEG in either byte order and swaps the upright size for 5..8", async () => {
    const jpeg = await encodeJpeg(pattern(20, 10));
    for (const orientation of [1, 2, 3, 4, 5, 6, 7, 8]) {
      for (const order of ["MM", "II"] as const) {
        const info = inspectImage(withExifOrientation(jpeg, orientation, order), LIMIT);
        assert.equal(info.orientation, orientation);
        assert.deepEqual([info.uprightWidth, info.uprightHeight], orientation >= 5 ? [10, 20] : [20, 10]);
      }
    }
  });

  it("treats a missing or out-of-range orientation as upright instead of rejecting the file", async () => {
    const jpeg = await encodeJpeg(pattern(20, 10));
    assert.equal(inspectImage(withExifOrientation(jpeg, 0), LIMIT).orientation, 1);
    assert.equal(inspectImage(withExifOrientation(jpeg, 9), LIMIT).orientation, 1);
  });

  it("reads the orientation of a PNG from its eXIf chunk", () => {
    const exif = [0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0];
    const png = buildPng(4, 2, [new Uint8Array(16), new Uint8Array(16)], { before: [pngChunk("eXIf", exif)] });
    assert.deepEqual(inspectImage(png, LIMIT), { format: "png", width: 4, height: 2, orientation: 6, uprightWidth: 2, uprightHeight: 4 });
  });

  it("walks stuffed bytes, fill bytes and restart markers inside entropy-coded data", () => {
    const jpeg = syntheticJpeg([0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0xff, 0xd1, 0x00, 0x78]);
    assert.equal(inspectImage(jpeg, LIMIT).width, 8);
    // The same stream cut inside its data, or right after a 0xFF, never reached EOI.
    expectImageError(() => inspectImage(jpeg.subarray(0, jpeg.length - 5), LIMIT), "truncated_image");
    expectImageError(() => inspectImage(syntheticJpeg([0x12, 0xff], false), LIMIT), "truncated_image");
  });

  it("accepts bytes after the end-of-image marker (camera trailers)", async () => {
    const jpeg = await encodeJpeg(pattern(16, 16));
    const trailer = new Uint8Array([...jpeg, ...Buffer.from("trailing maker notes")]);
    assert.equal(inspectImage(trailer, LIMIT).width, 16);
  });

  it("rejects a JPEG cut at any byte before its end-of-image marker as truncated_image", async () => {
    for (const options of [{ progressive: false, baseline: true }, { progressive: true }]) {
      const jpeg = await encodeJpeg(pattern(30, 20), options);
      for (let cut = 1; cut < jpeg.length; cut++) expectImageError(() => inspectImage(jpeg.subarray(0, cut), LIMIT), "truncated_image");
    }
  });

  it("rejects a PNG cut at any byte as truncated_image", () => {
    const png = encodePng(pattern(12, 7, true));
    for (let cut = 1; cut < png.length; cut++) expectImageError(() => inspectImage(png.subarray(0, cut), LIMIT), "truncated_image");
  });

  it("rejects a flipped byte in any PNG chunk's type, data or CRC as corrupt_image", () => {
    const png = encodePng(pattern(12, 7, true));
    // Every byte after the signature except the 4-byte length fields (a changed length is a different structure).
    const lengthFields = new Set<number>();
    for (let pos = 8; pos < png.length; pos += 12 + new DataView(png.buffer).getUint32(pos)) for (let i = 0; i < 4; i++) lengthFields.add(pos + i);
    for (let at = 8; at < png.length; at++) {
      if (lengthFields.has(at)) continue;
      const damaged = png.slice();
      damaged[at]! ^= 0x01;
      expectImageError(() => inspectImage(damaged, LIMIT), "corrupt_image");
    }
  });

  it("rejects a PNG whose signature lost its line endings (text-mode transfer) as corrupt_image", () => {
    const png = encodePng(pattern(4, 4));
    const damaged = new Uint8Array([...png.subarray(0, 4), 0x0a, ...png.subarray(6)]); // \r\n -> \n
    expectImageError(() => inspectImage(damaged, LIMIT), "corrupt_image");
  });

  it("rejects broken PNG structure as corrupt_image: IHDR not first, bad bit depth, palette without PLTE, no IDAT", () => {
    const row = [new Uint8Array(4)];
    const ihdr = (bitDepth: number, colorType: number) => pngChunk("IHDR", [0, 0, 0, 1, 0, 0, 0, 1, bitDepth, colorType, 0, 0, 0]);
    const idat = pngChunk("IDAT", deflateSync(Buffer.from([0, 0, 0, 0, 0])));
    const iend = pngChunk("IEND", []);
    const file = (...chunks: Uint8Array[]) => new Uint8Array(Buffer.concat([Buffer.from(PNG_SIGNATURE), ...chunks]));
    expectImageError(() => inspectImage(file(pngChunk("tEXt", [0x61, 0]), ihdr(8, 6), idat, iend), LIMIT), "corrupt_image");
    expectImageError(() => inspectImage(file(ihdr(3, 2), idat, iend), LIMIT), "corrupt_image");
    expectImageError(() => inspectImage(file(ihdr(8, 5), idat, iend), LIMIT), "corrupt_image");
    expectImageError(() => inspectImage(file(ihdr(8, 3), idat, iend), LIMIT), "corrupt_image");
    expectImageError(() => inspectImage(file(ihdr(8, 6), iend), LIMIT), "corrupt_image");
    assert.equal(inspectImage(buildPng(1, 1, row), LIMIT).format, "png");
  });

  it("rejects garbage inside the JPEG segment structure as corrupt_image", async () => {
    const jpeg = await encodeJpeg(pattern(30, 20), { progressive: false, baseline: true });
    const damage = (edit: (bytes: Uint8Array) => void) => {
      const copy = jpeg.slice();
      edit(copy);
      return copy;
    };
    const dqt = findMarker(jpeg, 0xdb);
    const dht = findMarker(jpeg, 0xc4);
    const sos = findMarker(jpeg, 0xda);
    const sof = findMarker(jpeg, 0xc0);
    expectImageError(() => inspectImage(damage((b) => (b[dqt] = 0x00)), LIMIT), "corrupt_image"); // not a marker
    expectImageError(() => inspectImage(damage((b) => (b[dqt + 1] = 0x05)), LIMIT), "corrupt_image"); // reserved marker
    expectImageError(() => inspectImage(damage((b) => (b[dqt + 4] = 0x27)), LIMIT), "corrupt_image"); // DQT precision 2
    expectImageError(() => inspectImage(damage((b) => (b[dht + 4] = 0x35)), LIMIT), "corrupt_image"); // DHT class 3
    expectImageError(() => inspectImage(damage((b) => (b[sos + 4] = 5)), LIMIT), "corrupt_image"); // 5 scan components
    expectImageError(() => inspectImage(damage((b) => (b[sos + 5] = 0x77)), LIMIT), "corrupt_image"); // unknown component
    expectImageError(() => inspectImage(damage((b) => (b[sof + 11] = 0x50)), LIMIT), "corrupt_image"); // sampling 5x0
    expectImageError(() => inspectImage(damage((b) => (b[sof + 1] = 0xd8)), LIMIT), "corrupt_image"); // second SOI
  });

  it("rejects a JPEG whose quantization table is never defined as corrupt_image (libjpeg would refuse it)", async () => {
    const jpeg = await encodeJpeg(pattern(30, 20), { progressive: false, baseline: true });
    const dqt = findMarker(jpeg, 0xdb);
    const length = (jpeg[dqt + 2]! << 8) | jpeg[dqt + 3]!;
    const withoutDqt = new Uint8Array([...jpeg.subarray(0, dqt), ...jpeg.subarray(dqt + 2 + length)]);
    expectImageError(() => inspectImage(withoutDqt, LIMIT), "corrupt_image");
  });

  it("rejects an empty file as empty_file", () => {
    expectImageError(() => inspectImage(new Uint8Array(0), LIMIT), "empty_file");
  });

  it("rejects text and unknown binary as not_an_image", () => {
    expectImageError(() => inspectImage(new TextEncoder().encode("label,filename\ndaisy,1.jpg\n"), LIMIT), "not_an_image");
    expectImageError(() => inspectImage(new Uint8Array([0x50, 0x4b, 0x03, 0x04, 1, 2, 3]), LIMIT), "not_an_image"); // a zip
    expectImageError(() => inspectImage(new TextEncoder().encode("BM is not a bitmap here, just text"), LIMIT), "not_an_image");
  });

  it("rejects GIF, WebP, BMP, TIFF, HEIC, AVIF, JPEG XL and SVG as unsupported_format, saying JPEG and PNG are accepted", () => {
    const ascii = (text: string) => [...Buffer.from(text, "latin1")];
    const bmpHeader = [...ascii("BM"), 0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 40, 0, 0, 0, 1, 0];
    const samples: Record<string, number[]> = {
      GIF: ascii("GIF89a\x01\x00\x01\x00\x80\x00\x00"),
      WebP: [...ascii("RIFF"), 0x24, 0, 0, 0, ...ascii("WEBPVP8 ")],
      BMP: bmpHeader,
      TIFF: [...ascii("II*\0"), 8, 0, 0, 0],
      HEIC: [0, 0, 0, 0x18, ...ascii("ftypheic"), 0, 0, 0, 0],
      AVIF: [0, 0, 0, 0x1c, ...ascii("ftypavif"), 0, 0, 0, 0],
      "JPEG XL": [0xff, 0x0a, 0xfa, 0x7f],
      SVG: ascii('\n  <svg xmlns="http://www.w3.org/2000/svg"></svg>'),
    };
    for (const [name, bytes] of Object.entries(samples)) {
      const error = expectImageError(() => inspectImage(Uint8Array.from(bytes), LIMIT), "unsupported_format");
      assert.match(error.message, new RegExp(name, "i"));
      assert.match(error.message, /only JPEG and PNG/);
    }
  });

  it("rejects lossless, hierarchical and 12-bit JPEGs as unsupported_format", async () => {
    const jpeg = await encodeJpeg(pattern(30, 20), { progressive: false, baseline: true });
    const sof = findMarker(jpeg, 0xc0);
    for (const marker of [0xc3, 0xc5, 0xcf]) {
      const copy = jpeg.slice();
      copy[sof + 1] = marker;
      expectImageError(() => inspectImage(copy, LIMIT), "unsupported_format");
    }
    const twelveBit = jpeg.slice();
    twelveBit[sof + 4] = 12;
    expectImageError(() => inspectImage(twelveBit, LIMIT), "unsupported_format");
  });

  it("rejects a tiny PNG whose IHDR declares 30000x30000 as too_many_pixels, without decoding it", async () => {
    const bomb = buildPng(30000, 30000, [], { idat: new Uint8Array(deflateSync(Buffer.alloc(1000))) });
    assert.ok(bomb.length < 100);
    const error = expectImageError(() => inspectImage(bomb, LIMIT), "too_many_pixels");
    assert.deepEqual(error.details, { format: "png", width: 30000, height: 30000, max_pixels: LIMIT.maxPixels });
    const refusingCodecs: ImageCodecs = {
      decodeJpeg: () => assert.fail("must not decode"),
      decodePng: () => assert.fail("must not decode"),
    };
    await expectImageErrorAsync(() => decodeImage(bomb, refusingCodecs), "too_many_pixels");
  });

  it("rejects a JPEG whose frame header declares 60000x60000 as too_many_pixels", async () => {
    const jpeg = await encodeJpeg(pattern(30, 20));
    const sof = findMarker(jpeg, 0xc2);
    jpeg.set([0xea, 0x60, 0xea, 0x60], sof + 5); // height, width = 60000
    expectImageError(() => inspectImage(jpeg, LIMIT), "too_many_pixels");
  });

  it("accepts exactly maxPixels and rejects one more", () => {
    const png = buildPng(10, 10, Array.from({ length: 10 }, () => new Uint8Array(40)));
    assert.equal(inspectImage(png, { maxPixels: 100 }).width, 10);
    expectImageError(() => inspectImage(png, { maxPixels: 99 }), "too_many_pixels");
  });

  it("rejects a zero width or height as corrupt_image", async () => {
    const png = buildPng(0, 5, []);
    expectImageError(() => inspectImage(png, LIMIT), "corrupt_image");
    const jpeg = await encodeJpeg(pattern(30, 20), { progressive: false, baseline: true });
    jpeg.set([0, 0], findMarker(jpeg, 0xc0) + 7); // width 0
    expectImageError(() => inspectImage(jpeg, LIMIT), "corrupt_image");
  });

  it("computes the same CRC-32 as zlib", () => {
    const bytes = new Uint8Array(100_003).map((_, i) => (i * 2654435761) >>> 24);
    for (const [start, end] of [[0, 0], [0, 1], [3, 17], [0, bytes.length], [5, 99_999]] as const) {
      assert.equal(crc32(bytes, start, end), zlibCrc32(bytes.subarray(start, end)));
    }
  });
});

/** A structurally complete baseline JPEG (8x8 grey) around the given entropy-coded bytes; not decodable. */
function syntheticJpeg(scanData: number[], withEnd = true): Uint8Array {
  const dqt = [0xff, 0xdb, 0, 67, 0x00, ...new Array(64).fill(1)];
  const sof = [0xff, 0xc0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0];
  const dht = [0xff, 0xc4, 0, 20, 0x00, 1, ...new Array(15).fill(0), 0];
  const sos = [0xff, 0xda, 0, 8, 1, 1, 0x00, 0, 63, 0];
  return Uint8Array.from([0xff, 0xd8, ...dqt, ...sof, ...dht, ...sos, ...scanData, ...(withEnd ? [0xff, 0xd9] : [])]);
}

// ---- decodeImage --------------------------------------------------------------------------------------------

describe("decodeImage", () => {
  it("decodes a JPEG to RGBA of its declared size, within JPEG's error of the encoded colours", async () => {
    const jpeg = await encodeJpeg(makeImage(24, 16, () => [200, 40, 90]), { quality: 95 });
    const image = await decodeImage(jpeg, codecs);
    assert.deepEqual([image.width, image.height, image.data.length], [24, 16, 24 * 16 * 4]);
    const [r, g, b, a] = pixelAt(image, 12, 8);
    assert.ok(Math.abs(r! - 200) <= 3 && Math.abs(g! - 40) <= 3 && Math.abs(b! - 90) <= 3, `${[r, g, b]}`);
    assert.equal(a, 255);
    assert.deepEqual(image.info, inspectImage(jpeg, LIMIT));
  });

  it("marks a JPEG opaque (every alpha byte 255, so preprocessImage skips its scan) and a PNG not", async () => {
    const jpeg = await decodeImage(await encodeJpeg(makeImage(24, 16, (x, y) => [x * 10, y * 15, 90]), { quality: 80 }), codecs);
    assert.equal(jpeg.opaque, true);
    for (let i = 3; i < jpeg.data.length; i += 4) assert.equal(jpeg.data[i], 255);
    const png = await decodeImage(encodePng(makeImage(2, 1, () => [0, 0, 0, 255])), codecs);
    assert.equal(png.opaque, false);
  });

  it("decodes PNGs losslessly: RGBA, grey, palette, and 16-bit samples reduced to their high byte", async () => {
    const source = pattern(7, 5, true);
    assert.deepEqual((await decodeImage(encodePng(source), codecs)).data, source.data);

    const grey = await decodeImage(buildPng(3, 1, [Uint8Array.from([0, 128, 255])], { colorType: 0 }), codecs);
    assert.deepEqual([...grey.data], [0, 0, 0, 255, 128, 128, 128, 255, 255, 255, 255, 255]);

    const palette = [pngChunk("PLTE", [10, 20, 30, 200, 100, 50])];
    const indexed = await decodeImage(buildPng(2, 1, [Uint8Array.from([0x10])], { colorType: 3, bitDepth: 4, before: palette }), codecs);
    assert.deepEqual([...indexed.data], [200, 100, 50, 255, 10, 20, 30, 255]);

    const deep = await decodeImage(buildPng(1, 1, [Uint8Array.from([0x12, 0x34, 0xab, 0xcd, 0xff, 0x00])], { colorType: 2, bitDepth: 16 }), codecs);
    assert.deepEqual([...deep.data], [0x12, 0xab, 0xff, 255]);
  });

  it("applies every EXIF orientation to a PNG like the EXIF definitions (flips, transpose, rotations)", async () => {
    const source = pattern(5, 3);
    const grid = (image: RgbaImage) => Array.from({ length: image.height }, (_, y) => Array.from({ length: image.width }, (_, x) => pixelAt(image, x, y).join()));
    const flipH = (g: string[][]) => g.map((row) => [...row].reverse());
    const flipV = (g: string[][]) => [...g].reverse();
    const transpose = (g: string[][]) => g[0]!.map((_, x) => g.map((row) => row[x]!));
    const expected: Record<number, (g: string[][]) => string[][]> = {
      1: (g) => g,
      2: flipH,
      3: (g) => flipV(flipH(g)),
      4: flipV,
      5: transpose,
      6: (g) => flipH(transpose(g)), // 90° clockwise
      7: (g) => flipV(flipH(transpose(g))),
      8: (g) => flipV(transpose(g)), // 90° counter-clockwise
    };
    const exif = (o: number) => pngChunk("eXIf", [0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, o, 0, 0, 0, 0, 0, 0, 0]);
    const rows = Array.from({ length: 3 }, (_, y) => new Uint8Array(source.data.subarray(y * 20, (y + 1) * 20)));
    for (let orientation = 1; orientation <= 8; orientation++) {
      const image = await decodeImage(buildPng(5, 3, rows, { before: [exif(orientation)] }), codecs);
      assert.deepEqual(grid(image), expected[orientation]!(grid(source)), `orientation ${orientation}`);
      assert.deepEqual([image.width, image.height], orientation >= 5 ? [3, 5] : [5, 3]);
    }
  });

  it("turns a phone photo with EXIF orientation 6 upright: the stored top-left corner ends top-right", async () => {
    const stored = makeImage(32, 16, (x, y) => (x < 8 && y < 8 ? [255, 0, 0] : [0, 0, 255]));
    const jpeg = withExifOrientation(await encodeJpeg(stored, { quality: 95 }), 6);
    const image = await decodeImage(jpeg, codecs);
    assert.deepEqual([image.width, image.height], [16, 32]);
    const [r, , b] = pixelAt(image, 12, 3);
    assert.ok(r! > 200 && b! < 60, `top-right should be red, got ${pixelAt(image, 12, 3)}`);
    const [r2, , b2] = pixelAt(image, 3, 3);
    assert.ok(r2! < 60 && b2! > 200, `top-left should be blue, got ${pixelAt(image, 3, 3)}`);
  });

  it("reports undecodable data that passed the header checks as corrupt_image, and keeps decoding after a hundred of them", async () => {
    const jpeg = await encodeJpeg(pattern(30, 20), { progressive: true });
    const brokenJpeg = jpeg.slice();
    const sos = findMarker(brokenJpeg, 0xda);
    brokenJpeg[sos + 4 + 1 + 2 * brokenJpeg[sos + 4]! + 1] = 70; // progressive spectral end 70 > 63: libjpeg exits
    const png = encodePng(pattern(30, 20));
    const brokenPng = buildPng(30, 20, [], { idat: Uint8Array.from({ length: 200 }, (_, i) => (i * 37) & 255) }); // not zlib
    assert.equal(inspectImage(brokenJpeg, LIMIT).format, "jpeg");
    assert.equal(inspectImage(brokenPng, LIMIT).format, "png");
    // Measured before the decoders were re-instantiated after a failure: a few thousand failures in, the PNG decoder
    // read out of bounds on every later file and the JPEG decoder as well.
    for (let i = 0; i < 100; i++) {
      await expectImageErrorAsync(() => decodeImage(brokenJpeg, codecs), "corrupt_image");
      await expectImageErrorAsync(() => decodeImage(brokenPng, codecs), "corrupt_image");
    }
    assert.equal((await decodeImage(jpeg, codecs)).width, 30);
    assert.deepEqual((await decodeImage(png, codecs)).data, pattern(30, 20).data);
  });

  it("turns orientations 2..4 in place and 5..8 into a new buffer", () => {
    const image = pattern(4, 3);
    const copy = { ...image, data: image.data.slice() };
    assert.equal(applyExifOrientation(copy, 3).data, copy.data);
    assert.notEqual(applyExifOrientation(image, 6).data, image.data);
  });
});

// ---- preprocessImage ----------------------------------------------------------------------------------------

describe("preprocessImage", () => {
  it("returns height*width*3 floats, within [-1, 1] for mean = std = 0.5, reaching both ends for black and white", () => {
    const image = makeImage(50, 37, (x, y) => ((x + y) % 2 === 0 ? [0, 0, 0] : (x * y) % 5 === 0 ? [255, 255, 255] : [x * 5, y * 6, 128]));
    for (const resize of ["squash", "center_crop"] as const) {
      const output = preprocessImage(image, { ...HALF, input_size: [40, 60], resize });
      assert.equal(output.length, 40 * 60 * 3);
      assert.ok(output.every((v) => v >= -1 && v <= 1));
    }
    const blackAndWhite = makeImage(8, 8, (x) => (x < 4 ? [0, 0, 0] : [255, 255, 255]));
    const output = preprocessImage(blackAndWhite, { ...HALF, input_size: [8, 8] });
    assert.equal(Math.min(...output), -1);
    assert.equal(Math.max(...output), 1);
  });

  it("turns a solid colour into exactly float32((v / 255 - mean) / std) per channel, whatever the resize", () => {
    const colour = [200, 17, 94] as const;
    const spec = { ...IMAGENET, input_size: [24, 32] as [number, number] };
    const expected = colour.map((v, c) => Math.fround((v / 255 - IMAGENET.mean[c]!) / IMAGENET.std[c]!));
    for (const [width, height] of [[500, 375], [7, 5], [24, 32], [1, 1], [4000, 30]]) {
      for (const resize of ["squash", "center_crop"] as const) {
        const output = preprocessImage(makeImage(width!, height!, () => [...colour]), { ...spec, resize });
        for (let i = 0; i < output.length; i++) assert.equal(output[i], expected[i % 3], `${width}x${height} ${resize} at ${i}`);
      }
    }
  });

  it("averages a one-pixel checkerboard when downscaling 8x instead of aliasing it to black or white", () => {
    const board = makeImage(256, 256, (x, y) => ((x + y) % 2 === 0 ? [0, 0, 0] : [255, 255, 255]));
    const output = preprocessImage(board, { ...HALF, input_size: [32, 32] });
    const mid = Math.fround((128 / 255 - 0.5) / 0.5);
    assert.ok(output.every((v) => Math.abs(v - mid) <= 2 / 127.5), `range ${Math.min(...output)}..${Math.max(...output)}`);
  });

  it("interpolates bilinearly with half-pixel centres when upscaling", () => {
    const output = preprocessImage(makeImage(2, 1, (x) => (x === 0 ? [0, 0, 0] : [255, 255, 255])), { ...HALF, input_size: [1, 4], mean: [0, 0, 0], std: [1, 1, 1] });
    assert.deepEqual([...output.filter((_, i) => i % 3 === 0)].map((v) => Math.round(v * 255)), [0, 64, 191, 255]);
  });

  it("returns the pixels themselves when the size does not change", () => {
    const image = pattern(16, 12);
    const output = preprocessImage(image, { input_size: [12, 16], mean: [0, 0, 0], std: [1, 1, 1], resize: "squash" });
    for (let p = 0; p < 16 * 12; p++) {
      for (let c = 0; c < 3; c++) assert.equal(output[p * 3 + c], Math.fround(image.data[p * 4 + c]! / 255));
    }
  });

  it("center_crop keeps the middle of a wide image, squash keeps all of it", () => {
    const stripes = makeImage(300, 100, (x) => (x < 100 ? [255, 0, 0] : x < 200 ? [0, 255, 0] : [0, 0, 255]));
    const spec = { ...HALF, input_size: [50, 50] as [number, number], mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] };
    const rgbAt = (output: Float32Array, x: number, y: number) => [...output.subarray((y * 50 + x) * 3, (y * 50 + x) * 3 + 3)].map((v) => Math.round(v * 255));
    const cropped = preprocessImage(stripes, { ...spec, resize: "center_crop" });
    for (const x of [2, 25, 47]) assert.deepEqual(rgbAt(cropped, x, 25), [0, 255, 0]);
    const squashed = preprocessImage(stripes, { ...spec, resize: "squash" });
    assert.deepEqual(rgbAt(squashed, 2, 25), [255, 0, 0]);
    assert.deepEqual(rgbAt(squashed, 25, 25), [0, 255, 0]);
    assert.deepEqual(rgbAt(squashed, 47, 25), [0, 0, 255]);
  });

  it("flattens transparent pixels onto white, unless the image says it is opaque", () => {
    const image = makeImage(2, 1, (x) => (x === 0 ? [0, 0, 0, 0] : [0, 0, 0, 128]));
    const spec: PreprocessSpec = { input_size: [1, 2], mean: [0, 0, 0], std: [1, 1, 1], resize: "squash" };
    assert.deepEqual([...preprocessImage(image, spec)].map((v) => Math.round(v * 255)), [255, 255, 255, 127, 127, 127]);
    assert.deepEqual([...preprocessImage({ ...image, opaque: true }, spec)].map((v) => Math.round(v * 255)), [0, 0, 0, 0, 0, 0]);
  });

  it("writes into a given view of a batch tensor", () => {
    const batch = new Float32Array(3 * 24 * 24 * 3);
    const view = batch.subarray(24 * 24 * 3, 2 * 24 * 24 * 3);
    assert.equal(preprocessImage(pattern(30, 30), HALF, view), view);
    assert.deepEqual(view, preprocessImage(pattern(30, 30), HALF));
    assert.ok(batch.subarray(0, 24 * 24 * 3).every((v) => v === 0));
  });

  it("rejects a spec with a non-integer size, a zero std or an unknown resize mode", () => {
    const image = pattern(4, 4);
    assert.throws(() => preprocessImage(image, { ...HALF, input_size: [0, 4] }), RangeError);
    assert.throws(() => preprocessImage(image, { ...HALF, input_size: [2.5, 4] }), RangeError);
    assert.throws(() => preprocessImage(image, { ...HALF, std: [0.5, 0, 0.5] }), RangeError);
    assert.throws(() => preprocessImage(image, { ...HALF, resize: "stretch" as "squash" }), RangeError);
  });

  it("goes from bytes to the tensor input in one call", async () => {
    const jpeg = await encodeJpeg(pattern(60, 40));
    const direct = preprocessImage(await decodeImage(jpeg, codecs), HALF);
    assert.deepEqual(await imageToTensorInput(jpeg, HALF, codecs), direct);
  });
});

// ---- parity with workerd ------------------------------------------------------------------------------------
// Fixture bytes and the digests of what Node computes from them live in tests/fixtures/parity-images.ts, shared with
// tests/workers/image-codecs.test.ts, which asserts that the Worker computes the same.

/** How the fixtures were made (mozjpeg and the Rust PNG encoder, both pinned by package-lock.json). */
async function makeFixtures(): Promise<{ jpeg: Uint8Array; png: Uint8Array }> {
  const { default: encodeWithRustPng, init: initRustPngEncoder } = await import("@jsquash/png/encode.js");
  await initRustPngEncoder(await WebAssembly.compile(await readFile(require.resolve("@jsquash/png/codec/pkg/squoosh_png_bg.wasm"))));
  const jpeg = withExifOrientation(await encodeJpeg(pattern(40, 30), { quality: 90 }), 6);
  const png = new Uint8Array(await encodeWithRustPng(pattern(21, 15, true) as ImageData));
  return { jpeg, png };
}

describe("parity fixtures shared with the workerd suite", () => {
  const fixtures = {
    jpeg: new Uint8Array(Buffer.from(FIXTURE_JPEG_BASE64, "base64")),
    png: new Uint8Array(Buffer.from(FIXTURE_PNG_BASE64, "base64")),
  };

  it("are reproduced by their recipe", async () => {
    const made = await makeFixtures();
    if (process.env.PRINT_IMAGE_FIXTURES) {
      for (const format of ["jpeg", "png"] as const) {
        const image = await decodeImage(made[format], codecs);
        console.log(format, Buffer.from(made[format]).toString("base64"));
        console.log({ pixels: sha256(image.data), crop: sha256(preprocessImage(image, SPECS.crop!)), squash: sha256(preprocessImage(image, SPECS.squash!)) });
      }
    }
    assert.deepEqual(made, fixtures);
  });

  it("were made for the current preprocessing version", () => {
    assert.equal(PREPROCESS_VERSION, "img-1");
  });

  for (const format of ["jpeg", "png"] as const) {
    it(`decode and preprocess (${format}) to the digests that workerd must match`, async () => {
      const image = await decodeImage(fixtures[format], codecs);
      assert.deepEqual([image.width, image.height], [EXPECTED[format].width, EXPECTED[format].height]);
      assert.equal(sha256(image.data), EXPECTED[format].pixels);
      assert.equal(sha256(preprocessImage(image, SPECS.crop!)), EXPECTED[format].crop);
      assert.equal(sha256(preprocessImage(image, SPECS.squash!)), EXPECTED[format].squash);
    });
  }
});
