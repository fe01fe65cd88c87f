/**
 * One decoding thread of the decode pool: JPEG/PNG bytes → preprocessed `[h, w, 3]` float32, with the very code and
 * WASM decoders the Worker uses at the edge (shared/image + codecs-node), so the pixels are bit-identical to it.
 */
import type { PreprocessSpec } from "../../../shared/image/preprocess";
import { imageToTensorInput } from "../../../shared/image/preprocess";
import { isImageError } from "../../../shared/image/errors";
import type { ImageCodecs } from "../../../shared/image/codecs";
import { getNodeCodecs } from "../codecs-node";
import { serveTasks } from "../threads/pool";

export interface DecodeRequest {
  bytes: Uint8Array;
  preprocess: PreprocessSpec;
  maxPixels: number;
}

/** Either the pixels or the image's rejection (bad data is an answer, not a failure). */
export type DecodeResult = { pixels: Float32Array } | { rejected: { code: string; message: string } };

await serveTasks<ImageCodecs, DecodeRequest, DecodeResult>(
  () => getNodeCodecs(),
  async ({ bytes, preprocess, maxPixels }, codecs) => {
    try {
      const pixels = await imageToTensorInput(bytes, preprocess, codecs, { maxPixels });
      return { result: { pixels }, transfer: [pixels.buffer as ArrayBuffer] };
    } catch (error) {
      if (isImageError(error)) return { result: { rejected: { code: error.code, message: error.message } } };
      throw error;
    }
  },
);
