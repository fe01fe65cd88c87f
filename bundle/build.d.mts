/** Types of bundle/build.mjs (the model bundle's runtime build). */
export declare const DECODER_WASM: Record<"mozjpeg_dec.wasm" | "squoosh_png_bg.wasm", string>;
export declare function buildBundleRuntime(options: { outdir: string; quiet?: boolean }): Promise<{ name: string; bytes: number }[]>;
