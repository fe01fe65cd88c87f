/**
 * The classification head: what training produces, what the Worker keeps resident and applies at the edge.
 *
 * On the wire a head is two objects:
 * - a JSON manifest (`HeadManifest`, format "edgetune-head/1") with the labels, the standardisation statistics and
 *   the layer list, each layer pointing into
 * - one little-endian float32 binary holding every layer's weights then bias, back to back, no padding.
 *
 * In memory (`Head`) the layers are `Float32Array`s, viewed straight onto the fetched binary when it is aligned, so a
 * resident head costs its weight bytes and little more: a linear head over D = 1280 features and 20 classes is
 * 1280·20·4 B ≈ 100 KiB, so 1,000 such heads fit in the Worker's 128 MB. Applying a head needs no tfjs: `applyHead`
 * is plain TypeScript, and the runner evaluates with the same function, which is why the probabilities a user sees
 * at the edge are bit-identical to the ones behind the reported metrics.
 *
 * For the browser, `headToTfjsModel` writes the same head as a tfjs layers model (`model.json` + `weights.bin`).
 */
export * from "./head/format";
export * from "./head/apply";
export * from "./head/tfjs-export";
export * from "./head/blocks-format";
