/**
 * The self-contained bundle's manifest (`edgetune.json`): what `GET /v1/models/:id/bundle/manifest` answers, what
 * `edgetune export` writes beside the files it lists, and what the bundle's own `edgetune.mjs` reads to load the
 * model. Plain types (no zod) so that the runtime module stays small; the API's zod schema
 * (shared/schemas.ts `bundleManifestSchema`) is checked against them.
 */
import type { PooledFeatureSpec } from "../backbone/types";
import type { PreprocessSpec } from "../image/preprocess";

export const BUNDLE_FORMAT = "edgetune-bundle/2";
/**
 * A fine-tuned model's bundle: the same files plus `head/blocks.bin` (`paths.head_blocks`), the backbone's last blocks
 * as trained. Its own format, so that an edgetune.mjs from before fine-tuned bundles refuses it ("export the model
 * again") instead of running the backbone's original blocks under the head.
 */
export const BUNDLE_FORMAT_FINE_TUNED = "edgetune-bundle/3";

/** Where the Worker serves the prebuilt runtime files (dashboard/build.mjs writes them among the static assets). */
export const BUNDLE_RUNTIME_PATH = "/bundle-runtime";

/** The runtime's files: the predict module, the two image decoders it compiles, and the examples. */
export const BUNDLE_RUNTIME_FILES = ["edgetune.mjs", "mozjpeg_dec.wasm", "squoosh_png_bg.wasm", "example.mjs", "browser.html", "package.json", "README.md"] as const;

/** One file of the bundle: where it goes in the folder and where to download it (a path on the API's origin). */
export interface BundleFile {
  /** Relative path inside the bundle folder, `/`-separated. */
  path: string;
  /** Download path on the API's origin: `/v1/...` needs the API key, `/bundle-runtime/...` is public. */
  url: string;
  /** Size in bytes when the API knows it (model files); absent for the runtime's static files. */
  bytes?: number;
}

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT | typeof BUNDLE_FORMAT_FINE_TUNED;
  model_id: string;
  /** Class labels, in the head's output order. */
  labels: string[];
  backbone: {
    id: string;
    name: string;
    /** tfjs format of `backbone/model.json`: both load with plain `@tensorflow/tfjs`. */
    format: "layers-model" | "graph-model";
    source?: string;
    license?: string;
  };
  /** Which inner activations become the embedding and how they are pooled (shared/backbone/types.ts). */
  feature_spec: PooledFeatureSpec;
  /** The image pipeline's parameters; `version` names the code (shared/image/preprocess.ts PREPROCESS_VERSION). */
  preprocessing: PreprocessSpec & { version: string };
  /** How many labels `predict` returns by default: the API's default `top_k`. */
  top_k: number;
  /** The file a program imports: exports `loadBundle(tf, source)`. */
  entry: "edgetune.mjs";
  /** Paths of the files the runtime reads. */
  paths: {
    backbone_model: string;
    backbone_weights: string;
    head_manifest: string;
    head_weights: string;
    /** A fine-tuned model's blocks (format edgetune-bundle/3 only). */
    head_blocks?: string;
    jpeg_decoder: string;
    png_decoder: string;
  };
  files: BundleFile[];
}
