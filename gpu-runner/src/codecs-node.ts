/**
 * The image decoders for Node: compiles the same `.wasm` files the Worker imports (node_modules/@jsquash), so the
 * runner decodes training images with the very binaries that decode prediction images at the edge; and the SIMD
 * resampler (shared/image/resample.wasm), which gives the edge's TypeScript resampling's floats faster.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { createCodecLoader, type CodecModules, type ImageCodecs } from "../../shared/image/codecs";

const require = createRequire(import.meta.url);

/** Paths of the decoder binaries, resolved through node_modules like any dependency; and our own resampler's. */
export const CODEC_WASM_PATHS = {
  jpeg: require.resolve("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm"),
  png: require.resolve("@jsquash/png/codec/pkg/squoosh_png_bg.wasm"),
  resample: fileURLToPath(new URL("../../shared/image/resample.wasm", import.meta.url)),
} as const;

async function compileCodecModules(): Promise<CodecModules> {
  const [jpeg, png, resample] = await Promise.all(
    [CODEC_WASM_PATHS.jpeg, CODEC_WASM_PATHS.png, CODEC_WASM_PATHS.resample].map((path) => readFile(path).then((bytes) => WebAssembly.compile(bytes))),
  );
  return { jpeg: jpeg!, png: png!, resample };
}

/** The process-wide decoders, compiled and initialised on first use (about 20 ms), shared by later calls. */
export const getNodeCodecs: () => Promise<ImageCodecs> = createCodecLoader(compileCodecModules);
