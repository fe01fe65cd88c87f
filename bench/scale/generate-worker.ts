/**
 * Worker of bench/scale/generate.ts: photo `index` of the generated set = flowers5 original `index % 400`, randomly
 * cropped (60-100% of each side), maybe flipped, resized so its longer side is 320-480 px (bilinear; the originals are ~320 px, and mozjpeg costs ~0.3 s per 640x480 photo on this loaded box) and re-encoded
 * with mozjpeg at quality 80-95; all choices seeded by `index`, so the set is the same on every run.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import encode, { init as initEncoder } from "@jsquash/jpeg/encode.js";
import { createRandom } from "../../shared/random";
import { chooseCrop } from "./crop";
import type { ImageCodecs, RgbaImage } from "../../shared/image/codecs";
import { getNodeCodecs } from "../../gpu-runner/src/codecs-node";
import { serveTasks } from "../../gpu-runner/src/threads/pool";

interface State {
  codecs: ImageCodecs;
  originals: string[];
  decoded: Map<number, RgbaImage>;
}

const require = createRequire(import.meta.url);

function cropFlipResize(source: RgbaImage, index: number): { data: Uint8ClampedArray; width: number; height: number } {
  const { left: x0, top: y0, cropW, cropH, flip, scale, width, height } = chooseCrop(index, source.width, source.height, 480);
  const data = new Uint8ClampedArray(width * height * 4);
  const src = source.data;
  for (let y = 0; y < height; y++) {
    const sy = Math.min(cropH - 1, Math.max(0, (y + 0.5) / scale - 0.5));
    const y1 = Math.floor(sy), y2 = Math.min(cropH - 1, y1 + 1), fy = sy - y1;
    for (let x = 0; x < width; x++) {
      let sx = Math.min(cropW - 1, Math.max(0, (x + 0.5) / scale - 0.5));
      if (flip) sx = cropW - 1 - sx;
      const x1 = Math.floor(sx), x2 = Math.min(cropW - 1, x1 + 1), fx = sx - x1;
      for (let c = 0; c < 3; c++) {
        const at = (yy: number, xx: number) => src[((y0 + yy) * source.width + x0 + xx) * 4 + c]!;
        const top = at(y1, x1) * (1 - fx) + at(y1, x2) * fx;
        const bottom = at(y2, x1) * (1 - fx) + at(y2, x2) * fx;
        data[(y * width + x) * 4 + c] = top * (1 - fy) + bottom * fy;
      }
      data[(y * width + x) * 4 + 3] = 255;
    }
  }
  return { data, width, height };
}

await serveTasks<State, { index: number }, Uint8Array>(
  async (workerData) => {
    const wasm = await WebAssembly.compile(readFileSync(require.resolve("@jsquash/jpeg/codec/enc/mozjpeg_enc.wasm")));
    await (initEncoder as unknown as (module: WebAssembly.Module) => Promise<void>)(wasm);
    return { codecs: await getNodeCodecs(), originals: (workerData as { originals: string[] }).originals, decoded: new Map() };
  },
  async ({ index }, state) => {
    const which = index % state.originals.length;
    let source = state.decoded.get(which);
    if (!source) {
      source = await state.codecs.decodeJpeg(new Uint8Array(readFileSync(state.originals[which]!)));
      state.decoded.set(which, source);
    }
    const image = cropFlipResize(source, index);
    const quality = 80 + createRandom(index + 1_000_003).nextInt(16);
    const jpeg = new Uint8Array(await encode({ data: image.data, width: image.width, height: image.height, colorSpace: "srgb" } as ImageData, { quality, progressive: false, optimize_coding: false }));
    return { result: jpeg, transfer: [jpeg.buffer] };
  },
);
