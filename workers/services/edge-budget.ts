/**
 * Which user backbones the edge serves: the budget that keeps a 128 MB isolate alive with the builtin backbone
 * resident, checked against each backbone's cost estimated at import (shared/backbone/cost.ts, stored on its row).
 *
 * Memory of a serving isolate (bench/predict/README.md, FACTS.md): the JS heap with tfjs' code about 18 MiB, the
 * builtin fused MobileNetV2 about 19 MiB of WASM heap, heads up to 32 MiB (DEFAULT_HEAD_CACHE_MAX_BYTES), the image
 * decoders and one decoded image a few MiB more (PREDICT_MAX_PIXELS, 2 MP, bounds it: at most about 12 MB for a
 * progressive JPEG, workers/config.ts): 128 - 18 - 19 - 32 - 8 leaves about 51 MiB. A user backbone gets 40 MB of it for its float32 weights plus its
 * peak activations (the WASM heap grows to their sum and never shrinks), keeping ~10 MB of slack. FLOPs bound the
 * CPU time: workerd's single WASM thread ran MobileNetV2 (0.6 GFLOP) in 75 to 81 ms, about 7.5 GFLOP/s, so 4 GFLOP
 * (ResNet18 is 3.6) is about 0.5 s per image and 8 s for the 16 images a request may carry, well inside the 30 s CPU
 * limit. Inputs above 512x512 are refused outright: their activations alone grow with the square of the side.
 */
import type { BackboneSpec } from "../../shared/schemas";

export const EDGE_MAX_MEMORY_BYTES = 40_000_000;
export const EDGE_MAX_FLOPS = 4_000_000_000;
export const EDGE_MAX_INPUT_SIDE = 512;

/** A user backbone's cost as stored on its row (null for rows imported before costs were estimated). */
export interface BackboneCost {
  flops: number | null;
  /** Float32 bytes of every weight (param_count x 4). */
  floatWeightBytes: number;
  peakActivationBytes: number | null;
}

export interface EdgeRefusal {
  reason: "input_size" | "memory" | "flops";
  message: string;
  limit: number;
  estimate: number;
}

/** Why the edge refuses to serve this backbone, or null when it fits the budget (builtin backbones always do). */
export function edgeRefusal(spec: BackboneSpec, cost: BackboneCost | null): EdgeRefusal | null {
  if (!cost) return null;
  // A row's spec was validated at import; an unreadable one (hand-written rows) is judged on its cost alone.
  const side = Array.isArray(spec?.input_size) ? Math.max(spec.input_size[0], spec.input_size[1]) : 0;
  if (side > EDGE_MAX_INPUT_SIDE) {
    return { reason: "input_size", limit: EDGE_MAX_INPUT_SIDE, estimate: side, message: `its input_size ${spec.input_size.join("x")} is above the edge's ${EDGE_MAX_INPUT_SIDE}x${EDGE_MAX_INPUT_SIDE}` };
  }
  if (cost.peakActivationBytes !== null) {
    const memory = cost.floatWeightBytes + cost.peakActivationBytes;
    if (memory > EDGE_MAX_MEMORY_BYTES) {
      return { reason: "memory", limit: EDGE_MAX_MEMORY_BYTES, estimate: memory, message: `it needs about ${memory} bytes (float32 weights ${cost.floatWeightBytes} + peak activations ${cost.peakActivationBytes}) and the edge gives a user backbone ${EDGE_MAX_MEMORY_BYTES} beside the builtin one in a 128 MB isolate` };
    }
  }
  if (cost.flops !== null && cost.flops > EDGE_MAX_FLOPS) {
    return { reason: "flops", limit: EDGE_MAX_FLOPS, estimate: cost.flops, message: `it takes about ${cost.flops} FLOPs per image and the edge serves up to ${EDGE_MAX_FLOPS}` };
  }
  return null;
}
