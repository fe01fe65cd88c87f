/**
 * The entry of a self-contained bundle's `edgetune.mjs`: load the exported folder with plain `@tensorflow/tfjs` and
 * predict from image bytes exactly as `POST /v1/models/:id/predict` does. dashboard/build.mjs bundles this file
 * with esbuild (scripts/build-bundle-runtime.mjs) into the static asset `/bundle-runtime/edgetune.mjs`; tfjs is
 * not in it: the caller passes its own `tf` (Node's `import * as tf`, or the browser's `window.tf`).
 *
 * What is shared with the API, line for line (these are the very modules the Worker runs):
 * - decoding: shared/image/decode.ts (header checks, @jsquash/jpeg's mozjpeg and @jsquash/png's decoder compiled
 *   from the bundle's two `.wasm` files, the same binaries the Worker imports, then the EXIF orientation);
 * - preprocessing: shared/image/preprocess.ts (alpha flattened onto white, Pillow-style bilinear resize in integers,
 *   `(x / 255 - mean) / std` through a float32 table): a plain canvas resize differs by tens of levels per pixel;
 * - the embedding: shared/backbone (the backbone cut at the feature layers, global pooling, flip averaging when the
 *   spec asks for it), as the Worker runs a backbone its fused compiler does not handle;
 * - a fine-tuned model (format edgetune-bundle/3): the backbone to the cut, unpooled, then the model's own blocks
 *   (head/blocks.bin) with shared/backbone/separable-blocks.ts's fused ops and average pooling, as at the edge;
 * - the head: shared/head (standardisation, dense layers and softmax in float64, top-k with ties to the lower index);
 *   a head trained with `tta: "flip"` gets the mean of the image's and its mirror's embedding (shared/image/augment.ts),
 *   as at the edge.
 * The Worker runs layers backbones through its fused executor (batch norm folded) on the WASM backend; the bundle
 * runs tfjs-layers on whatever backend `tf` has: probabilities agree to about 1e-6 (tests/e2e/bundle.test.ts asks
 * for 1e-4).
 */
import type * as tfjs from "@tensorflow/tfjs";
import { buildAnyFeatureExtractor, type AnyFeatureExtractor } from "../backbone/any-feature-extractor";
import type { Tf } from "../backbone/feature-extractor";
import type { LayersModelJson } from "../backbone/types";
import { applyHead, topK, type LabelProbability } from "../head/apply";
import { parseHead, type Head } from "../head/format";
import { averageEmbeddings, mirrorInputSizes } from "../image/augment";
import { initCodecs, type ImageCodecs } from "../image/codecs";
import { decodeImage, DEFAULT_MAX_PIXELS } from "../image/decode";
import { inputSizes, PREPROCESS_VERSION, preprocessImage } from "../image/preprocess";
import { inspectImage } from "../image/sniff";
import { blockTensors, disposeBlockTensors, runBlocks, stackOutputDim, type BlockTensors } from "../backbone/separable-blocks";
import { parseBlocks } from "../head/blocks-format";
import { BUNDLE_FORMAT, BUNDLE_FORMAT_FINE_TUNED, type BundleManifest } from "./manifest";

export { BUNDLE_FORMAT, BUNDLE_FORMAT_FINE_TUNED, PREPROCESS_VERSION };
export type { BundleManifest, LabelProbability };

/**
 * Where the bundle's files are: a folder URL (`"./model/"`, `new URL("./", import.meta.url)` in a browser, any
 * `http(s):` URL), or a function returning a file's bytes by its path in the folder (Node:
 * `(path) => readFile(new URL(path, folderUrl))`).
 */
export type BundleSource = string | URL | ((path: string) => Promise<ArrayBuffer | ArrayBufferView>);

/** Image bytes as a file holds them: JPEG or PNG. */
export type ImageBytes = Uint8Array | ArrayBuffer | Blob;

/** What `POST /v1/models/:id/predict` answers, less its timings: one list per image, most probable label first. */
export interface PredictResult {
  model_id: string;
  predictions: LabelProbability[][];
}

export interface EdgetuneBundle {
  readonly manifest: BundleManifest;
  readonly labels: string[];
  /** Embedding length (the head's input). */
  readonly dim: number;
  /**
   * Top labels and probabilities of one image (or of several, in order), as the API's predict answers for the same
   * bytes. Every image's header is checked before any is decoded, as in the API.
   * @param options.topK how many labels per image (default: the manifest's `top_k`, the API's default).
   */
  predict(images: ImageBytes | ImageBytes[], options?: { topK?: number }): Promise<PredictResult>;
  /** The embedding of one image, shape [dim]: what the API's predict feeds its head. */
  embed(image: ImageBytes): Promise<Float32Array>;
  /** Frees the backbone's tensors (and a fine-tuned model's blocks). */
  dispose(): void;
}

export interface LoadOptions {
  /** Largest accepted `width * height` (default 40,000,000; the API uses its PREDICT_MAX_PIXELS). */
  maxPixels?: number;
}

function toFileReader(source: BundleSource): (path: string) => Promise<ArrayBuffer | ArrayBufferView> {
  if (typeof source === "function") return source;
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const folder = new URL(String(source).endsWith("/") ? String(source) : `${String(source)}/`, base);
  return async (path) => {
    const url = new URL(path, folder);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`edgetune bundle: ${url.href} answered HTTP ${response.status}`);
    return response.arrayBuffer();
  };
}

function toBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** An ArrayBuffer holding exactly these bytes (tfjs and the head parser want whole buffers). */
function toArrayBuffer(data: ArrayBuffer | ArrayBufferView): ArrayBuffer {
  if (data instanceof ArrayBuffer) return data;
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
}

async function imageBytes(image: ImageBytes): Promise<Uint8Array> {
  if (image instanceof Uint8Array) return image;
  if (image instanceof ArrayBuffer) return new Uint8Array(image);
  if (typeof Blob !== "undefined" && image instanceof Blob) return new Uint8Array(await image.arrayBuffer());
  throw new TypeError("predict takes image bytes: a Uint8Array (a Node Buffer is one), an ArrayBuffer or a Blob");
}

const text = (data: ArrayBuffer | ArrayBufferView) => new TextDecoder().decode(toBytes(data));

/**
 * Loads a bundle written by `edgetune export` (or downloaded from the dashboard): reads `edgetune.json`, compiles
 * the two image decoders, builds the backbone's feature extractor with `tf` and parses the head.
 *
 * @param tf the `@tensorflow/tfjs` module (any backend; set it before loading, e.g. `await tf.setBackend("cpu")`)
 * @example
 *   import * as tf from "@tensorflow/tfjs";
 *   import { loadBundle } from "./edgetune.mjs";
 *   const model = await loadBundle(tf, (path) => readFile(new URL(path, import.meta.url)));
 *   const { predictions } = await model.predict(await readFile("photo.jpg"));
 */
export async function loadBundle(tf: unknown, source: BundleSource, options: LoadOptions = {}): Promise<EdgetuneBundle> {
  const read = toFileReader(source);
  const manifest = JSON.parse(text(await read("edgetune.json"))) as BundleManifest;
  if (manifest.format !== BUNDLE_FORMAT && manifest.format !== BUNDLE_FORMAT_FINE_TUNED) {
    throw new Error(`edgetune bundle: edgetune.json has format ${JSON.stringify(manifest.format)}; this edgetune.mjs reads ${BUNDLE_FORMAT} and ${BUNDLE_FORMAT_FINE_TUNED}. Export the model again.`);
  }
  if (manifest.preprocessing.version !== PREPROCESS_VERSION) {
    throw new Error(`edgetune bundle: the model was exported for image pipeline ${manifest.preprocessing.version}, this edgetune.mjs runs ${PREPROCESS_VERSION}. Export the model again so both come from one release.`);
  }
  const paths = manifest.paths;
  const [modelJsonBytes, weightBytes, headJsonBytes, headWeightBytes, jpegWasm, pngWasm] = await Promise.all(
    [paths.backbone_model, paths.backbone_weights, paths.head_manifest, paths.head_weights, paths.jpeg_decoder, paths.png_decoder].map(read),
  );
  // Asynchronous compilation: browsers refuse to compile modules over 4 KB synchronously on the main thread.
  // (workers-types leave compile() out: workerd forbids it; this file never runs there.)
  const { compile } = WebAssembly as unknown as { compile(bytes: BufferSource): Promise<WebAssembly.Module> };
  const [jpeg, png] = await Promise.all([compile(toBytes(jpegWasm!) as BufferSource), compile(toBytes(pngWasm!) as BufferSource)]);
  const codecs: ImageCodecs = await initCodecs({ jpeg, png });
  const head: Head = parseHead(JSON.parse(text(headJsonBytes!)), toArrayBuffer(headWeightBytes!));
  const fineTuned = manifest.format === BUNDLE_FORMAT_FINE_TUNED;
  if (fineTuned !== Boolean(head.blocks) || (fineTuned && !paths.head_blocks)) {
    throw new Error(`edgetune bundle: edgetune.json (format ${manifest.format}${paths.head_blocks ? ", with head_blocks" : ""}) and head.json (${head.blocks ? "with" : "without"} fine-tuned blocks) disagree. Export the model again.`);
  }
  const t = tf as Tf;
  const bundle = { name: manifest.backbone.id, modelJson: JSON.parse(text(modelJsonBytes!)) as LayersModelJson, weightData: toArrayBuffer(weightBytes!), inputRange: [0, 1] as [number, number] };
  // A fine-tuned model, as the edge serves it: the backbone to the cut, unpooled, at its main input size only; then
  // the model's own blocks (blocks.bin) and average pooling; then the head.
  const stack = head.blocks ? parseBlocks(head.blocks, toArrayBuffer(await read(paths.head_blocks!))) : null;
  const preprocessing = stack ? { ...manifest.preprocessing, extra_input_sizes: undefined } : manifest.preprocessing;
  // One extractor per input size (a builtin fed at several sizes averages their embeddings, as the edge does).
  const sizes = stack
    ? inputSizes(preprocessing)
    : inputSizes({ input_size: manifest.feature_spec.input_size ?? manifest.preprocessing.input_size, extra_input_sizes: manifest.feature_spec.extra_input_sizes });
  const extractors: AnyFeatureExtractor[] = [];
  let blocks: BlockTensors[] = [];
  const disposeAll = () => {
    extractors.forEach((extractor) => extractor.dispose());
    disposeBlockTensors(blocks);
  };
  try {
    if (stack) {
      extractors.push(await buildAnyFeatureExtractor(t, bundle, { feature_layers: [stack.cutLayer], pooling: "none", input_size: sizes[0] }));
      blocks = blockTensors(t, stack);
    } else {
      for (const input_size of sizes) extractors.push(await buildAnyFeatureExtractor(t, bundle, { ...manifest.feature_spec, input_size, extra_input_sizes: undefined }));
    }
  } catch (error) {
    disposeAll();
    throw error;
  }
  const dim = stack ? stackOutputDim(stack) : extractors[0]!.dim;
  if (dim !== head.inputDim) {
    disposeAll();
    throw new Error(`edgetune bundle: the backbone gives ${dim}-value embeddings but the head expects ${head.inputDim}. Export the model again.`);
  }
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;

  /** One image's normalised tensor (each input size's [h, w, 3] in turn) through the backbone: [dim]. */
  async function embedPixels(pixels: Float32Array): Promise<Float32Array> {
    const parts: Float32Array[] = [];
    let offset = 0;
    for (const extractor of extractors) {
      const [h, w, c] = extractor.inputShape;
      const input = t.tensor4d(pixels.subarray(offset, offset + h * w * c), [1, h, w, c]);
      offset += h * w * c;
      try {
        let embedding = (await extractor.embedAsync(input)) as tfjs.Tensor2D;
        if (stack) {
          // The cut map, flattened [1, h * w * c], through the fine-tuned blocks: [1, k].
          const cut = t.reshape(embedding, [1, ...stack.blocks[0]!.inputShape]) as tfjs.Tensor4D;
          embedding.dispose();
          embedding = runBlocks(t, blocks, cut);
          cut.dispose();
        }
        parts.push(new Float32Array(embedding.dataSync() as Float32Array));
        embedding.dispose();
      } finally {
        input.dispose();
      }
    }
    return averageEmbeddings(...parts);
  }

  async function embedChecked(bytes: Uint8Array): Promise<Float32Array> {
    const pixels = preprocessImage(await decodeImage(bytes, codecs, { maxPixels }), preprocessing);
    const embedding = await embedPixels(pixels);
    return head.tta === "flip" ? averageEmbeddings(embedding, await embedPixels(mirrorInputSizes(pixels, sizes))) : embedding;
  }

  return {
    manifest,
    labels: head.labels,
    dim: head.inputDim,
    async predict(images, predictOptions = {}) {
      const all = await Promise.all((Array.isArray(images) ? images : [images]).map(imageBytes));
      for (const bytes of all) inspectImage(bytes, { maxPixels });
      const embeddings = new Float32Array(all.length * head.inputDim);
      for (let i = 0; i < all.length; i++) embeddings.set(await embedChecked(all[i]!), i * head.inputDim);
      const probabilities = applyHead(head, embeddings, all.length);
      const classes = head.labels.length;
      const k = predictOptions.topK ?? manifest.top_k;
      const predictions = all.map((_, row) => topK(probabilities.subarray(row * classes, (row + 1) * classes), k, head.labels));
      return { model_id: manifest.model_id, predictions };
    },
    async embed(image) {
      return embedChecked(await imageBytes(image));
    },
    dispose: disposeAll,
  };
}
