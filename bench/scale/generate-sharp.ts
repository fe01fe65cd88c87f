/**
 * The "sharp" variation of bench/scale/generate.ts: the same recipe as generate-worker.ts (seeded random crop of
 * 60-100% of each side, a flip half the time, resize so the longer side is 320-640 px, re-encode at JPEG quality
 * 80-95), done by libvips through `sharp` instead of mozjpeg in WASM: ~50 ms per photo on this loaded box against
 * ~700 ms (mozjpeg's encoder always runs trellis quantisation), which is what makes 20,000 photos feasible here.
 *
 * `sharp` is not a dependency of edgetune: it arrives with miniflare (a dev dependency). `loadSharp` answers null when
 * it is not installed, and generate.ts then falls back to the WASM worker.
 */
import { readFileSync } from "node:fs";
import { createRandom } from "../../shared/random";
import { chooseCrop } from "./crop";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Sharp = any;

export async function loadSharp(): Promise<Sharp | null> {
  const name = "sharp";
  try {
    const module = await import(name);
    return module.default ?? module;
  } catch {
    return null;
  }
}

/** Photo `index`: original `index % originals.length`, transformed with choices seeded by `index`. */
export function makeSharpPhoto(sharp: Sharp, originals: string[], sizes: Map<number, { width: number; height: number }>, cache: Map<number, Buffer>) {
  return async (index: number): Promise<Uint8Array> => {
    const which = index % originals.length;
    let bytes = cache.get(which);
    if (!bytes) cache.set(which, (bytes = readFileSync(originals[which]!)));
    let size = sizes.get(which);
    if (!size) {
      const meta = await sharp(bytes).metadata();
      sizes.set(which, (size = { width: meta.width, height: meta.height }));
    }
    const { left, top, cropW, cropH, flip, width, height } = chooseCrop(index, size.width, size.height, 640);
    const quality = 80 + createRandom(index + 1_000_003).nextInt(16);
    let pipeline = sharp(bytes).extract({ left, top, width: cropW, height: cropH });
    if (flip) pipeline = pipeline.flop();
    const out: Buffer = await pipeline
      .resize({ width, height, fit: "fill" })
      .jpeg({ quality })
      .toBuffer();
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  };
}
