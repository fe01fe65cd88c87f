export declare const WASM_SOURCES: { text: string; binary: string }[];
/** The binary for one `.wat` file's text. */
export declare function assembleWat(name: string, text: string): Promise<Uint8Array>;
