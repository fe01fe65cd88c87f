/**
 * The runner's SIMD resampler (shared/image/resample.wat → resample.wasm, used through ResampleKernels) must give
 * exactly the floats of preprocess.ts's TypeScript passes, which the Worker runs: training and serving compute the
 * same tensor from the same bytes. Checked over random images and specs (down- and upscaling, both resize modes,
 * sizes that are not multiples of 4, one-pixel images, transparency, augmentation views), and through the codecs
 * the runner's decode threads use. The committed binary must be what its text assembles to.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import fc from "fast-check";
import { describe, it } from "vitest";
import { createRandom } from "../../shared/random";
import type { RgbaImage } from "../../shared/image/codecs";
import { imageToTensorInput, preprocessImage, type PreprocessSpec } from "../../shared/image/preprocess";
import { MAX_PIXEL_BYTES, createResampleKernels } from "../../shared/image/resample-wasm";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { assembleWat } from "../../scripts/build-wasm.mjs";
import { makeJpeg, makePng } from "../fixtures/images";

const root = new URL("../../", import.meta.url);
const wasmBytes = await readFile(new URL("shared/image/resample.wasm", root));
const kernels = createResampleKernels(await WebAssembly.compile(wasmBytes));

function randomImage(width: number, height: number, seed: number, alpha: boolean): RgbaImage {
  const random = createRandom(seed);
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < data.length; i++) data[i] = i % 4 === 3 && !alpha ? 255 : random.nextInt(256);
  return { data, width, height };
}

const sameFloats = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe("resample.wasm", () => {
  it("is what resample.wat assembles to (npm run build:wasm rewrites it after an edit)", async () => {
    const assembled = await assembleWat("resample.wat", await readFile(new URL("shared/image/resample.wat", root), "utf8"));
    assert.ok(Buffer.from(assembled).equals(wasmBytes), "shared/image/resample.wasm is stale: run npm run build:wasm");
  });

  it("gives exactly the TypeScript passes' floats for any image, size, resize mode, view and transparency", () => {
    fc.assert(
      fc.property(
        fc.record({
          width: fc.integer({ min: 1, max: 90 }),
          height: fc.integer({ min: 1, max: 90 }),
          sizes: fc.array(fc.tuple(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 70 })), { minLength: 1, maxLength: 3 }),
          resize: fc.constantFrom("squash" as const, "center_crop" as const),
          view: fc.integer({ min: 0, max: 6 }),
          alpha: fc.boolean(),
          seed: fc.integer({ min: 1, max: 1_000_000 }),
        }),
        ({ width, height, sizes, resize, view, alpha, seed }) => {
          const image = randomImage(width, height, seed, alpha);
          const spec: PreprocessSpec = { input_size: sizes[0]!, extra_input_sizes: sizes.slice(1), mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], resize, view };
          assert.ok(sameFloats(preprocessImage(image, spec, undefined, kernels), preprocessImage(image, spec)), JSON.stringify({ width, height, sizes, resize, view, alpha, seed }));
        },
      ),
      { numRuns: 300, seed: 12 },
    );
  });

  it("matches on a photo-sized image at the default backbone's 288 + 352, and after a larger image grew its memory", () => {
    const spec: PreprocessSpec = { input_size: [288, 288], extra_input_sizes: [[352, 352]], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: "squash" };
    for (const [width, height] of [[500, 375], [1600, 1200], [333, 500]] as const) {
      const image = randomImage(width, height, width, false);
      assert.ok(sameFloats(preprocessImage(image, spec, undefined, kernels), preprocessImage(image, spec)), `${width}x${height}`);
    }
  });

  it("declines an image above MAX_PIXEL_BYTES, which the TypeScript passes then resample", () => {
    assert.equal(kernels.load(new Uint8Array(MAX_PIXEL_BYTES + 4)), false);
    assert.equal(kernels.load(new Uint8Array(16)), true);
  });

  it("is what the runner's codecs resample with, from bytes to the very tensor the edge computes", async () => {
    const codecs = await getNodeCodecs();
    assert.ok(codecs.resample, "getNodeCodecs() must carry the SIMD resampler");
    const spec: PreprocessSpec = { input_size: [30, 26], extra_input_sizes: [[17, 17]], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: "center_crop" };
    const { resample: _, ...withoutKernels } = codecs;
    for (const bytes of [makeJpeg("small"), makeJpeg("other"), makePng(37, 23, 5)]) {
      assert.ok(sameFloats(await imageToTensorInput(bytes, spec, codecs), await imageToTensorInput(bytes, spec, withoutKernels)));
    }
  });
});
