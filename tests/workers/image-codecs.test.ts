/**
 * The image pipeline inside workerd: the decoders load from `.wasm` module imports (workers/inference/codecs.ts) and
 * turn the same bytes into bit-identical pixels and model inputs as the runner does in Node.
 *
 * How parity is checked: the two fixture files (tests/fixtures/parity-images.ts) are fixed bytes (made once in Node by the recipe in
 * tests/node/image-pipeline.test.ts, which also checks that it still reproduces them), and the expected values are
 * SHA-256 digests of the decoded RGBA and of the Float32 outputs, computed in Node. tests/node/image-pipeline.test.ts
 * asserts the very same constants, so if either runtime drifts, one of the two suites fails.
 *
 * Isolation: the codecs are an isolate-wide singleton; nothing here depends on test order.
 */
import { describe, expect, it } from "vitest";
import { decodeImage } from "../../shared/image/decode";
import { isImageError } from "../../shared/image/errors";
import { PREPROCESS_VERSION, preprocessImage } from "../../shared/image/preprocess";
import { getWorkerCodecs } from "../../workers/inference/codecs";
import { EXPECTED, EXPECTED_VIEWS, FIXTURE_JPEG_BASE64, FIXTURE_PNG_BASE64, SPECS } from "../fixtures/parity-images";
import { AUGMENT_VERSION } from "../../shared/image/augment";


function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function sha256(view: ArrayBufferView): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

describe("image pipeline in workerd", () => {
  it("keys outputs with the preprocessing version the digests were made for", () => {
    expect(PREPROCESS_VERSION).toBe("img-1");
  });

  for (const format of ["jpeg", "png"] as const) {
    it(`decodes the ${format} fixture to the same upright RGBA as Node`, async () => {
      const bytes = fromBase64(format === "jpeg" ? FIXTURE_JPEG_BASE64 : FIXTURE_PNG_BASE64);
      const image = await decodeImage(bytes, await getWorkerCodecs());
      expect([image.width, image.height]).toEqual([EXPECTED[format].width, EXPECTED[format].height]);
      expect(await sha256(image.data)).toBe(EXPECTED[format].pixels);
    });

    it(`preprocesses the ${format} fixture to bit-identical Float32 output as Node, for center_crop and squash`, async () => {
      const bytes = fromBase64(format === "jpeg" ? FIXTURE_JPEG_BASE64 : FIXTURE_PNG_BASE64);
      const image = await decodeImage(bytes, await getWorkerCodecs());
      expect(await sha256(preprocessImage(image, SPECS.crop!))).toBe(EXPECTED[format].crop);
      expect(await sha256(preprocessImage(image, SPECS.squash!))).toBe(EXPECTED[format].squash);
    });
  }

  for (const format of ["jpeg", "png"] as const) {
    it(`makes the same augmentation views (1 to 3) of the ${format} fixture as Node, bit for bit`, async () => {
      expect(AUGMENT_VERSION).toBe("aug-1");
      const image = await decodeImage(fromBase64(format === "jpeg" ? FIXTURE_JPEG_BASE64 : FIXTURE_PNG_BASE64), await getWorkerCodecs());
      for (const spec of ["crop", "squash"] as const) {
        const digests = await Promise.all([1, 2, 3].map((view) => sha256(preprocessImage(image, { ...SPECS[spec]!, view }))));
        expect(digests).toEqual(EXPECTED_VIEWS[format][spec]);
      }
    });
  }

  it("initialises the codecs once for concurrent first callers", async () => {
    const [a, b] = await Promise.all([getWorkerCodecs(), getWorkerCodecs()]);
    expect(a).toBe(b);
  });

  it("rejects undecodable data as corrupt_image and keeps decoding afterwards", async () => {
    const codecs = await getWorkerCodecs();
    const jpeg = fromBase64(FIXTURE_JPEG_BASE64);
    // A structurally valid JPEG whose scan parameters libjpeg refuses: Se (spectral end) 63 -> 70 in the SOS header.
    const broken = jpeg.slice();
    const sos = findMarker(broken, 0xda);
    const componentCount = broken[sos + 4]!;
    broken[sos + 4 + 1 + 2 * componentCount + 1] = 70;
    for (let i = 0; i < 20; i++) {
      const error = await decodeImage(broken, codecs).catch((e: unknown) => e);
      expect(isImageError(error) && error.code).toBe("corrupt_image");
    }
    const image = await decodeImage(jpeg, codecs);
    expect(await sha256(image.data)).toBe(EXPECTED.jpeg.pixels);
  });
});

/** Offset of the first 0xFF marker byte pair with this marker code (headers only: call before the first scan). */
function findMarker(bytes: Uint8Array, marker: number): number {
  let pos = 2;
  while (bytes[pos + 1] !== marker) pos += 2 + ((bytes[pos + 2]! << 8) | bytes[pos + 3]!);
  return pos;
}
