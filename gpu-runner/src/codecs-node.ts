/**
 * The image decoders for Node: compiles the same `.wasm` files the Worker imports (node_modules/@jsquash), so the
 * runner decodes training images with the very binaries that decode prediction images at the edge.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createCodecLoader, type CodecModules, type ImageCodecs } from "../../shared/image/codecs";

const require = createRequire(import.meta.url);

/** Paths of the decoder binaries, resolved through node_modules like any dependency. */
export const CODEC_WASM_PATHS = {
  jpeg: require.resolve("@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm"),
  png: require.resolve("@jsquash/png/codec/pkg/squoosh_png_bg.wasm"),
} as const;

async function compileCodecModules(): Promise<CodecModules> {
  const [jpeg, png] = await Promise.all([
    readFile(CODEC_WASM_PATHS.jpeg).then((bytes) => WebAssembly.compile(bytes)),
    readFile(CODEC_WASM_PATHS.png).then((bytes) => WebAssembly.compile(bytes)),
  ]);
  return { jpeg, png };
}

/** The process-wide decoders, compiled and initialised on first use (about 20 ms), shared by later calls. */
export const getNodeCodecs: () => Promise<ImageCodecs> = createCodecLoader(compileCodecModules);
