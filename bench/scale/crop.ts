/**
 * The random choices behind generated photo `index` of bench/scale (seeded by `index`, so the set is the same on
 * every run): a crop of 60-100% of each side, a flip half the time, a longer side of 320 to `maxLongSide` px.
 */
import { createRandom } from "../../shared/random";

export interface CropChoice {
  left: number;
  top: number;
  cropW: number;
  cropH: number;
  flip: boolean;
  /** Output size / crop size. */
  scale: number;
  width: number;
  height: number;
}

export function chooseCrop(index: number, sourceWidth: number, sourceHeight: number, maxLongSide: number): CropChoice {
  const random = createRandom(index);
  const cropW = Math.max(16, Math.round(sourceWidth * (0.6 + 0.4 * random.nextFloat())));
  const cropH = Math.max(16, Math.round(sourceHeight * (0.6 + 0.4 * random.nextFloat())));
  const left = random.nextInt(sourceWidth - cropW + 1);
  const top = random.nextInt(sourceHeight - cropH + 1);
  const flip = random.nextFloat() < 0.5;
  const longSide = 320 + random.nextInt(maxLongSide - 320 + 1);
  const scale = longSide / Math.max(cropW, cropH);
  return { left, top, cropW, cropH, flip, scale, width: Math.max(16, Math.round(cropW * scale)), height: Math.max(16, Math.round(cropH * scale)) };
}
