/**
 * The image decoders inside workerd. workerd refuses to compile WebAssembly from bytes, so the decoder binaries are
 * imported as modules (wrangler's CompiledWasm rule for **\/*.wasm) and instantiated on first use, never at global
 * scope (the global scope must start within 1 s). Concurrent first requests share one initialisation.
 */
import jpegDecoderModule from "@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm";
// @ts-expect-error: wasm-bindgen's squoosh_png_bg.wasm.d.ts types the instance exports, but a CompiledWasm import is
// the WebAssembly.Module (workers/declarations.d.ts), which is what this file needs.
import pngDecoderModule from "@jsquash/png/codec/pkg/squoosh_png_bg.wasm";
import { createCodecLoader, type ImageCodecs } from "../../shared/image/codecs";

/** The isolate's decoders, initialised by the first call (a few ms) and shared after. */
export const getWorkerCodecs: () => Promise<ImageCodecs> = createCodecLoader(() => ({
  jpeg: jpegDecoderModule,
  png: pngDecoderModule,
}));
