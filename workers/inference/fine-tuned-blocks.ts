/**
 * Serving fine-tuned models (`fine_tune`) at the edge: the frozen trunk up to the cut is one compiled backbone shared
 * by every model fine-tuned from that cut (services/inference.ts keeps it in the backbone cache), and each model's own
 * blocks live here, as tfjs tensors in the WASM backend, in an LRU bounded by bytes.
 *
 * Memory per model (float32, the default builtin MobileNet v1 0.75 at 224x224):
 *   1 block  (block 13: conv_dw_13 3x3x768 + 768, conv_pw_13 768x768 + 768)  598,272 floats = 2.39 MB;
 *   2 blocks (+ block 12: conv_dw_12 3x3x384 + 384, conv_pw_12 384x768 + 768) 897,792 floats = 3.59 MB.
 * XNNPACK packs a copy of each pointwise kernel on first use (about as many bytes again). The default bound,
 * 24 MiB, holds 10 one-block models (5 when counting the packed copies).
 * Activations per image: the cut map 7x7x768 (150 KB) and the block outputs of the same size, freed after each image.
 *
 * Per image: trunk to the cut (fused executor, pooling "none") → `runBlocks` (the fused depthwise and pointwise convs
 * with relu6, then average pooling: the very calls the runner evaluated the model with) → the head (`applyHead`).
 */
import { parseBlocks, type Head } from "../../shared/head";
import { blockTensors, disposeBlockTensors, runBlocks, type BlockTensors } from "../../shared/backbone/separable-blocks";
import { ApiError, withContext } from "../../shared/errors";
import { HeldCache } from "./bounded-cache";
import type { Tfjs } from "./tfjs-wasm";

export const DEFAULT_BLOCK_CACHE_MAX_BYTES = 24 * 1024 * 1024;
export const BLOCK_CACHE_MAX_ENTRIES = 64;

/** One model's blocks in the backend; disposed once evicted and no request uses them. */
export interface ResidentBlocks {
  tensors: BlockTensors[];
  bytes: number;
  users: number;
  evicted: boolean;
  disposed: boolean;
}

const heldBlocks = new HeldCache<ResidentBlocks>({
  maxEntries: BLOCK_CACHE_MAX_ENTRIES,
  maxBytes: DEFAULT_BLOCK_CACHE_MAX_BYTES,
  sizeOf: (resident) => resident.bytes,
  dispose: (resident) => disposeBlockTensors(resident.tensors),
});
export const blockCache = heldBlocks.cache;

/**
 * Loads a model's blocks: `fetchBytes` reads its blocks.bin, checked against the head manifest's `blocks`, then
 * uploaded to the backend (the JS copy is dropped).
 */
export async function loadBlocks(tf: Tfjs, head: Head, modelId: string, fetchBytes: () => Promise<ArrayBuffer | null>): Promise<ResidentBlocks> {
  if (!head.blocks) throw new Error(`model ${modelId} has no fine-tuned blocks`);
  const bytes = await fetchBytes();
  if (!bytes) throw new ApiError("model_artifacts_missing", `Model '${modelId}' has no stored blocks.bin (its fine-tuned blocks); its artifacts were removed. Train it again (POST /v1/jobs).`, { model_id: modelId });
  try {
    const stack = parseBlocks(head.blocks, bytes);
    return { tensors: blockTensors(tf, stack), bytes: bytes.byteLength, users: 0, evicted: false, disposed: false };
  } catch (error) {
    throw withContext(error, `Model '${modelId}'`, { model_id: modelId });
  }
}

/** Runs `use` with the model's blocks held (an eviction meanwhile does not free them under us). */
export function withBlocks<T>(key: string, load: () => Promise<ResidentBlocks>, use: (tensors: BlockTensors[]) => Promise<T>): Promise<T> {
  return heldBlocks.use(key, load, (resident) => use(resident.tensors));
}

/** One image's cut map `[h * w * c]` (NHWC) through the blocks and average pooling → its embedding `[k]`. */
export function embedCutMap(tf: Tfjs, tensors: BlockTensors[], cutMap: Float32Array): Float32Array {
  const [h, w, c] = tensors[0]!.block.inputShape;
  if (cutMap.length !== h * w * c) throw new RangeError(`cut map: expected ${h}x${w}x${c} = ${h * w * c} floats, got ${cutMap.length}`);
  const input = tf.tensor4d(cutMap, [1, h, w, c]);
  try {
    const pooled = runBlocks(tf, tensors, input);
    const values = new Float32Array(pooled.dataSync() as Float32Array);
    pooled.dispose();
    return values;
  } finally {
    input.dispose();
  }
}
