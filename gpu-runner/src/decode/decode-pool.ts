/**
 * Image decoding on every core: a pool of worker threads (decode-worker.ts), one per core by default, each with
 * its own WASM decoders. Image bytes go in and pixels come out by transfer (no copy of either). A decode that runs
 * past `DECODE_TIMEOUT_MS` (a decoder stuck on a hostile file) fails that image's batch with a clear error and its
 * thread is replaced; a crashed thread is replaced too.
 *
 * Why a pool: decoding a 640x480 JPEG costs 6 to 8 ms in mozjpeg plus ~3 ms of resizing (0.35 to 1.2 ms for a
 * flowers5 photo since the SIMD resampler, shared/image/resample-wasm.ts), about as much as embedding it on
 * onnxruntime here; on one thread, decoding alone capped the runner at about a third of its engine's rate.
 */
import { availableParallelism } from "node:os";
import type { PreprocessSpec } from "../../../shared/image/preprocess";
import { siblingModule } from "../threads/start-worker";
import { ThreadPool } from "../threads/pool";
import type { DecodeRequest, DecodeResult } from "./decode-worker";

/** Generous against ~10 ms per photo and ~1 s for a 50-megapixel PNG, short against a stuck decoder. */
export const DECODE_TIMEOUT_MS = 30_000;

export class DecodePool {
  private readonly pool: ThreadPool<DecodeRequest, DecodeResult>;

  constructor(options: { threads?: number; log?(msg: string): void } = {}) {
    this.pool = new ThreadPool(siblingModule(import.meta.url, "decode-worker"), {
      name: "decode pool",
      size: options.threads ?? availableParallelism(),
      taskTimeoutMs: DECODE_TIMEOUT_MS,
      log: options.log,
    });
  }

  get threads(): number {
    return this.pool.size;
  }

  get ready(): Promise<void> {
    return this.pool.ready;
  }

  /**
   * Decodes and preprocesses one image. `bytes` is transferred to the decoding thread: the caller's buffer is
   * detached afterwards (pass a copy to keep it).
   */
  decode(bytes: Uint8Array, preprocess: PreprocessSpec, maxPixels: number): Promise<DecodeResult> {
    const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
    return this.pool.run({ bytes: own, preprocess, maxPixels }, [own.buffer as ArrayBuffer]);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
