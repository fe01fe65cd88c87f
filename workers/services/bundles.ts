/**
 * The self-contained model bundle (shared/bundle/manifest.ts): a manifest listing files, each downloaded by its own
 * GET. Nothing here holds a file in memory: the manifest is built from the model row, the backbone's catalog entry
 * or row and R2 `head()` calls (sizes only), and each model or backbone file is R2's body stream handed straight to
 * the response. The runtime files (edgetune.mjs, the decoders' .wasm, the examples) are static assets built by
 * bundle/build.mjs and served at /bundle-runtime/.
 */
import { featureSpecOf, findBuiltinBackbone, preprocessSpecOf } from "../../shared/catalog";
import { ApiError } from "../../shared/errors";
import { BUNDLE_FORMAT, BUNDLE_FORMAT_FINE_TUNED, BUNDLE_RUNTIME_FILES, BUNDLE_RUNTIME_PATH, type BundleFile, type BundleManifest } from "../../shared/bundle/manifest";
import { PREPROCESS_VERSION } from "../../shared/image/preprocess";
import type { bundleManifestSchema } from "../../shared/schemas";
import type { z } from "zod";
import { resolveBackbone, type ResolvedBackbone } from "./backbones";
import type { Db } from "./db";
import { DEFAULT_TOP_K } from "./inference";
import type { ModelRow } from "./models";
import { backboneFileKey, modelArtifactKey } from "./object-keys";

/**
 * The bundle's model files: route name → where it goes in the folder and which stored object it is. The head as a
 * tfjs layers model is optional (listed when the runner stored it); everything else `predict()` needs.
 */
export const BUNDLE_MODEL_FILES = {
  "backbone-model.json": { path: "backbone/model.json", from: "backbone", object: "model.json", optional: false },
  "backbone-weights.bin": { path: "backbone/weights.bin", from: "backbone", object: "weights.bin", optional: false },
  "head.json": { path: "head/head.json", from: "model", object: "head.json", optional: false },
  "head.bin": { path: "head/head.bin", from: "model", object: "head.bin", optional: false },
  "head-model.json": { path: "head/model.json", from: "model", object: "model.json", optional: true },
  "head-weights.bin": { path: "head/weights.bin", from: "model", object: "weights.bin", optional: true },
  // A fine-tuned model's blocks: required for one (fineTuned below), never listed for the others.
  "blocks.bin": { path: "head/blocks.bin", from: "model", object: "blocks.bin", optional: true },
} as const;
export type BundleModelFileName = keyof typeof BUNDLE_MODEL_FILES;
/** Route names of every file the files route serves: the stored ones above and labels.json (from the row). */
export const BUNDLE_FILE_NAMES = [...(Object.keys(BUNDLE_MODEL_FILES) as BundleModelFileName[]), "labels.json"] as const;
export type BundleFileName = (typeof BUNDLE_FILE_NAMES)[number];

const bundleFileUrl = (modelId: string, name: BundleFileName) => `/v1/models/${modelId}/bundle/files/${name}`;

/** The model's backbone, or 409 backbone_deleted (as predict answers) when it was deleted. */
async function bundleBackbone(db: Db, row: ModelRow): Promise<ResolvedBackbone> {
  try {
    return await resolveBackbone(db, row.projectId, row.backbone);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    throw new ApiError("backbone_deleted", `Model '${row.id}' was trained on backbone '${row.backbone}', which has been deleted: its bundle cannot hold the backbone. Train a new model to export one.`, { model_id: row.id, backbone: row.backbone });
  }
}

/** Whether the model kept fine-tuned backbone blocks (its head.json then describes them, and blocks.bin holds them). */
function isFineTuned(row: ModelRow): boolean {
  return (row.metrics as { fine_tune?: { kept?: boolean } } | null)?.fine_tune?.kept === true;
}

/** The R2 key of a stored bundle file; `backbone` is needed for the backbone's two. */
function storedKey(row: ModelRow, backbone: ResolvedBackbone | null, name: BundleModelFileName): string {
  const file = BUNDLE_MODEL_FILES[name];
  return file.from === "backbone" ? backboneFileKey(backbone!.objectPrefix, file.object) : modelArtifactKey(row.objectPrefix, file.object);
}

/**
 * The bundle's manifest (`edgetune.json`). Checks that every stored file is there (one R2 `head()` each, in
 * parallel): a builtin backbone no runner has published yet answers 503 backbone_unavailable, a model whose head
 * files are gone 409 model_artifacts_missing, rather than a download that fails halfway.
 */
export async function describeBundle(db: Db, bucket: R2Bucket, row: ModelRow): Promise<BundleManifest> {
  // A fine-tuned model (its last backbone blocks trained, kept over the frozen ones) brings its blocks.bin: the
  // runtime runs the backbone to the cut, then those blocks, then the head, as the edge does.
  const fineTuned = isFineTuned(row);
  const backbone = await bundleBackbone(db, row);
  const names = (Object.keys(BUNDLE_MODEL_FILES) as BundleModelFileName[]).filter((name) => fineTuned || name !== "blocks.bin");
  const sizes = await Promise.all(names.map(async (name) => (await bucket.head(storedKey(row, backbone, name)))?.size ?? null));
  const missing = names.filter((name, index) => sizes[index] === null && (!BUNDLE_MODEL_FILES[name].optional || (fineTuned && name === "blocks.bin")));
  if (missing.some((name) => BUNDLE_MODEL_FILES[name].from === "backbone")) {
    throw new ApiError(
      "backbone_unavailable",
      backbone.builtin
        ? `The builtin backbone '${backbone.name}' is not in storage yet (npm start and deploy publish the vendored ones; a runner publishes the others the first time it runs a job). Retry once it is.`
        : `The files of backbone '${backbone.id}' are missing from storage. Upload the backbone again (POST /v1/backbones).`,
      { backbone: backbone.id },
    );
  }
  if (missing.length > 0) {
    throw new ApiError("model_artifacts_missing", `Model '${row.id}' lacks ${missing.map((name) => BUNDLE_MODEL_FILES[name].path).join(", ")} in storage; its artifacts were removed. Train it again (POST /v1/jobs).`, { model_id: row.id });
  }
  const builtin = findBuiltinBackbone(backbone.id);
  const files: BundleFile[] = [
    { path: "edgetune.json", url: `/v1/models/${row.id}/bundle/manifest` },
    { path: "labels.json", url: bundleFileUrl(row.id, "labels.json") },
    ...names.flatMap((name, index) => (sizes[index] === null ? [] : [{ path: BUNDLE_MODEL_FILES[name].path, url: bundleFileUrl(row.id, name), bytes: sizes[index]! }])),
    ...BUNDLE_RUNTIME_FILES.map((name) => ({ path: name, url: `${BUNDLE_RUNTIME_PATH}/${name}` })),
  ];
  const manifest = {
    format: fineTuned ? BUNDLE_FORMAT_FINE_TUNED : BUNDLE_FORMAT,
    model_id: row.id,
    labels: row.labels as string[],
    backbone: { id: backbone.id, name: backbone.name, format: backbone.format, ...(builtin ? { source: builtin.source, license: builtin.license } : {}) },
    feature_spec: featureSpecOf(backbone.spec),
    preprocessing: { version: PREPROCESS_VERSION, ...preprocessSpecOf(backbone.spec) },
    top_k: DEFAULT_TOP_K,
    entry: "edgetune.mjs",
    paths: {
      backbone_model: BUNDLE_MODEL_FILES["backbone-model.json"].path,
      backbone_weights: BUNDLE_MODEL_FILES["backbone-weights.bin"].path,
      head_manifest: BUNDLE_MODEL_FILES["head.json"].path,
      head_weights: BUNDLE_MODEL_FILES["head.bin"].path,
      ...(fineTuned ? { head_blocks: BUNDLE_MODEL_FILES["blocks.bin"].path } : {}),
      jpeg_decoder: "mozjpeg_dec.wasm",
      png_decoder: "squoosh_png_bg.wasm",
    },
    files,
  } satisfies BundleManifest & z.infer<typeof bundleManifestSchema>;
  return manifest;
}

/** One file of the bundle, ready to stream: R2's body (never read here) or, for labels.json, the row's labels. */
export interface BundleFileBody {
  body: ReadableStream | string;
  bytes: number;
  contentType: string;
  etag?: string;
}

/** A bundle file by route name, or null when its stored object is missing. */
export async function openBundleFile(db: Db, bucket: R2Bucket, row: ModelRow, name: BundleFileName): Promise<BundleFileBody | null> {
  if (name === "labels.json") {
    const text = JSON.stringify(row.labels);
    return { body: text, bytes: new TextEncoder().encode(text).length, contentType: "application/json" };
  }
  const file = BUNDLE_MODEL_FILES[name];
  const backbone = file.from === "backbone" ? await bundleBackbone(db, row) : null;
  const object = await bucket.get(storedKey(row, backbone, name));
  if (!object) return null;
  return { body: object.body, bytes: object.size, contentType: file.object.endsWith(".json") ? "application/json" : "application/octet-stream", etag: object.httpEtag };
}
