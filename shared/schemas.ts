/**
 * Request and resource schemas of the public API (../shared API.md), written once and used by the Worker (request
 * validation + the OpenAPI document) and by the runner (it re-validates every job it leases).
 */
import { z } from "zod";

// ---------------------------------------------------------------- names
/**
 * A label: what the user will see in predictions. Also a folder name inside archives. Labels are stored in Unicode
 * NFC, so "café" typed on a Mac (which writes the accent as a combining mark, NFD) and on Windows is one label, not
 * two that look the same; combining marks (accents, Devanagari vowel signs, ...) are allowed after the first character.
 */
export const LABEL_PATTERN = /^[\p{L}\p{N}][\p{L}\p{M}\p{N} _.\-+()&,']{0,99}$/u;
export const normalizeName = (text: string) => text.normalize("NFC");
export const labelSchema = z
  .string()
  .overwrite(normalizeName)
  .regex(LABEL_PATTERN, "a label is 1 to 100 letters, digits, spaces or _ . - + ( ) & , ' and starts with a letter or digit")
  // The pattern as JSON Schema has it (ECMA-262 with Unicode classes), without the JavaScript `/.../u` around it.
  .meta({ pattern: LABEL_PATTERN.source, description: "a class label, as predictions name it (stored in Unicode NFC)", example: "daisy" });
/** A file name inside a label: no path separators, no leading dot, at most 200 characters (NFC, like labels). */
export const FILENAME_PATTERN = /^[\p{L}\p{N}_\-(][\p{L}\p{M}\p{N} _.\-+()&,'=@~]{0,199}$/u;
export const filenameSchema = z
  .string()
  .overwrite(normalizeName)
  .regex(FILENAME_PATTERN, "a file name is 1 to 200 characters without / or \\ and does not start with a dot")
  .meta({ pattern: FILENAME_PATTERN.source, description: "a file name without folders (stored in Unicode NFC)", example: "photo_001.jpg" });
const nameSchema = z.string().trim().min(1, "must not be empty").max(200, "at most 200 characters");

// ---------------------------------------------------------------- projects and keys
export const createProjectRequest = z.object({ name: nameSchema }).strict().meta({ id: "CreateProjectRequest" });
export const keyScopeSchema = z.enum(["full", "predict"]).describe("full: the whole project API; predict: only predict and read models and aliases (for keys shipped inside apps)");
export const createKeyRequest = z.object({ name: nameSchema.default("key"), scope: keyScopeSchema.default("full") }).strict().meta({ id: "CreateKeyRequest" });
export const apiKeySchema = z
  .object({
    id: z.string(), name: z.string(), prefix: z.string(), scope: keyScopeSchema,
    admin: z.boolean().describe("an admin key of the deployment (EDGETUNE_ADMIN_KEY; rotate it there, not with DELETE)"),
    created_at: z.string().nullable(), updated_at: z.string().nullable(),
    last_used_at: z.string().nullable().describe("when the key last authenticated a request, to the minute; null for admin keys"),
    secret: z.string().optional(),
  })
  .meta({ id: "ApiKey" });

// ---------------------------------------------------------------- datasets
export const createDatasetRequest = z.object({ name: nameSchema }).strict().meta({ id: "CreateDatasetRequest" });
export const rejectionSchema = z.object({ path: z.string(), code: z.string(), message: z.string() }).meta({ id: "Rejection" });
export const datasetSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.enum(["empty", "ingesting", "ready", "failed"]),
    version: z.number().int(),
    image_count: z.number().int(),
    bytes: z.number().int(),
    labels: z.array(z.object({ name: z.string(), count: z.number().int(), train: z.number().int(), val: z.number().int() })),
    rejected_count: z.number().int(),
    rejected: z.array(rejectionSchema),
    duplicate_count: z.number().int(),
    trainable: z.boolean(),
    not_trainable_reason: z.string().nullable(),
    ingest: z.object({ done: z.number().int(), total: z.number().int(), error: z.string().nullable().optional() }),
    error: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: "Dataset" });
export const imageUploadResponse = z
  .object({ sha256: z.string(), label: z.string(), filename: z.string(), width: z.number().int(), height: z.number().int(), format: z.string(), bytes: z.number().int(), dataset_version: z.number().int() })
  .meta({ id: "ImageUploaded" });

/** R2 multipart parts are 5 MiB to 5 GiB; Cloudflare accepts request bodies up to 100 MB on Free/Pro plans. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PART_BYTES = 100 * 1000 * 1000;
export const DEFAULT_PART_BYTES = 64 * 1024 * 1024;
export const MAX_ARCHIVE_BODY_BYTES = 100 * 1000 * 1000;
export const createUploadRequest = z
  .object({
    filename: filenameSchema,
    part_size: z.number().int().min(MIN_PART_BYTES).max(MAX_PART_BYTES).optional().describe("bytes per part (all parts but the last); default 64 MiB"),
  })
  .strict()
  .meta({ id: "CreateUploadRequest" });
export const uploadSchema = z
  .object({
    upload_id: z.string(),
    part_size: z.number().int().describe("bytes per part; every part but the last must have exactly this many"),
    filename: z.string().describe("the archive's file name as the client gave it (used in messages)"),
    status: z.string().describe("open (accepting parts), completed or aborted"),
    max_parts: z.number().int().optional(),
    parts: z.array(z.object({ n: z.number().int(), etag: z.string(), bytes: z.number().int() })).optional().describe("parts received so far (GET only): a resumed upload sends the others"),
    received_bytes: z.number().int().optional(),
  })
  .meta({ id: "Upload" });

// ---------------------------------------------------------------- backbones
export const normalizationSchema = z
  .object({ mean: z.tuple([z.number(), z.number(), z.number()]), std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]) })
  .strict();
export const backboneSpecSchema = z
  .object({
    name: nameSchema,
    feature_layer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(4)]).describe("layer (or layers, concatenated) whose output is pooled into the embedding"),
    input_size: z.tuple([z.number().int().min(32).max(1024), z.number().int().min(32).max(1024)]),
    normalization: normalizationSchema,
    pooling: z.enum(["avg", "avg+max"]).default("avg"),
    resize: z.enum(["squash", "center_crop"]).default("squash"),
  })
  .strict()
  .meta({ id: "BackboneSpec" });
export type BackboneSpec = z.infer<typeof backboneSpecSchema>;

// ---------------------------------------------------------------- jobs
const linearHeadSchema = z.object({ type: z.literal("linear") }).strict();
const mlpHeadSchema = z.object({
  type: z.literal("mlp"),
  hidden: z.array(z.number().int().min(4).max(4096)).min(1).max(3).default([256]),
  dropout: z.number().min(0).max(0.9).default(0.2),
}).strict();
/** A head that can be trained as given. */
export const headSpecSchema = z.discriminatedUnion("type", [linearHeadSchema, mlpHeadSchema]).meta({ id: "HeadSpec" });
/**
 * `{"type": "auto"}`: candidate heads and settings compared by stratified k-fold cross-validation on the training
 * images only; the best (by mean CV accuracy, ties to the simpler head) is refit on all of them.
 */
export const autoHeadSchema = z
  .object({
    type: z.literal("auto"),
    folds: z.number().int().min(2).max(10).default(5).describe("cross-validation folds (fewer when the smallest class has fewer training images)"),
  })
  .strict()
  .meta({ id: "AutoHeadSpec" });
export type AutoHeadSpec = z.infer<typeof autoHeadSchema>;
/** A job's `head`: a trainable head, or "auto" (the default). */
export const jobHeadSpecSchema = z.discriminatedUnion("type", [linearHeadSchema, mlpHeadSchema, autoHeadSchema]).meta({ id: "JobHeadSpec" });
export type JobHeadSpec = z.infer<typeof jobHeadSpecSchema>;
export const DEFAULT_JOB_HEAD: JobHeadSpec = { type: "auto", folds: 5 };
export type HeadSpec = z.infer<typeof headSpecSchema>;

export const hyperparametersSchema = z
  .object({
    epochs: z.number().int().min(1).max(1000).default(100),
    batch_size: z.number().int().min(1).max(4096).default(32),
    learning_rate: z.number().positive().max(10).default(0.001),
    optimizer: z.enum(["adam", "adamw", "sgd"]).default("adam"),
    weight_decay: z.number().min(0).max(1).default(0.1),
    label_smoothing: z.number().min(0).max(0.5).default(0.1),
    validation_fraction: z.number().gt(0).max(0.5).default(0.2).describe("held out when the dataset has no val/ split"),
    use_dataset_split: z.boolean().default(true).describe("use the dataset's own val/ images as the validation set when it has them"),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
    early_stopping_patience: z.number().int().min(0).max(1000).default(15).describe("epochs without val-loss improvement before stopping; 0 disables"),
    class_weighting: z.enum(["none", "balanced"]).default("balanced"),
  })
  .strict()
  .meta({ id: "Hyperparameters" });
export type Hyperparameters = z.infer<typeof hyperparametersSchema>;

/**
 * `augmentation`: `views` deterministic transformed views of each TRAINING image (shared/image/augment.ts: its
 * mirror, then crops with small colour changes) are embedded once, cached like every embedding, and train the head
 * beside the originals (never the validation images); `tta: "flip"` makes the model average each image's embedding
 * with its mirror's at prediction time (validation, the edge and exported bundles alike: the head says so in its
 * `tta` field).
 */
export const augmentationSchema = z
  .object({
    views: z.number().int().min(0).max(16).default(0).describe("transformed views per training image (0 to 16)"),
    tta: z.enum(["none", "flip"]).default("none").describe('"flip": predictions average the embeddings of the image and its mirror'),
  })
  .strict()
  .meta({ id: "Augmentation" });
export type Augmentation = z.infer<typeof augmentationSchema>;
export const NO_AUGMENTATION: Augmentation = { views: 0, tta: "none" };

export const createJobRequest = z
  .object({
    dataset_id: z.string().min(1),
    backbone: z.string().min(1).optional().describe("a backbone id or a builtin backbone's name; default: the builtin default"),
    head: jobHeadSpecSchema.optional().describe('default {"type": "auto"}: chosen by cross-validation on the training images'),
    hyperparameters: hyperparametersSchema.optional(),
    augmentation: augmentationSchema.optional().describe("default: no views, no test-time averaging"),
    max_attempts: z.number().int().min(1).max(10).optional(),
  })
  .strict()
  .meta({ id: "CreateJobRequest" });
export type CreateJobRequest = z.infer<typeof createJobRequest>;

/** What a runner receives with a lease: everything needed to train, re-validated on the runner. */
export const jobConfigSchema = z
  .object({
    /** "train" makes a model; "diagnostics" (POST /v1/datasets/:id/diagnostics) makes a dataset report. */
    kind: z.enum(["train", "diagnostics"]).default("train"),
    head: jobHeadSpecSchema,
    hyperparameters: hyperparametersSchema,
    augmentation: augmentationSchema.default(NO_AUGMENTATION),
  })
  .meta({ id: "JobConfig" });
export type JobConfig = z.infer<typeof jobConfigSchema>;

/**
 * One epoch's numbers, Keras conventions: `train_*` are running means over the epoch's mini-batches as trained
 * (dropout on, class weights applied); `val_*` on the validation rows after the epoch (dropout off, no class weights).
 * `epoch` is 1-based.
 */
export const epochMetricsSchema = z.object({
  epoch: z.number().int(),
  train_loss: z.number(),
  val_loss: z.number(),
  train_accuracy: z.number(),
  val_accuracy: z.number(),
});
export type EpochMetrics = z.infer<typeof epochMetricsSchema>;

/** Where a running job is: a phase name and how far into it (images embedded, epochs trained, ...). */
export const progressSchema = z.object({ phase: z.string().max(64), done: z.number().int().min(0), total: z.number().int().min(0) });
export type Progress = z.infer<typeof progressSchema>;
export const jobSchema = z
  .object({
    id: z.string(),
    dataset_id: z.string(),
    dataset_version: z.number().int(),
    backbone: z.string(),
    config: jobConfigSchema,
    status: z.enum(["queued", "running", "succeeded", "failed", "canceled"]),
    attempt: z.number().int(),
    max_attempts: z.number().int(),
    progress: z.object({ phase: z.string().nullable(), done: z.number().int(), total: z.number().int() }),
    metrics: z.object({ epochs: z.array(epochMetricsSchema) }).passthrough(),
    skipped: z.array(rejectionSchema),
    model_id: z.string().nullable(),
    error: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
  })
  .meta({ id: "Job" });

// ---------------------------------------------------------------- models, aliases, predictions
export const perClassMetricsSchema = z.object({ label: z.string(), precision: z.number(), recall: z.number(), f1: z.number(), support: z.number().int() });
export const modelMetricsSchema = z
  .object({
    accuracy: z.number(),
    per_class: z.array(perClassMetricsSchema),
    confusion_matrix: z.array(z.array(z.number().int())),
    expected_calibration_error: z.number().optional(),
    ece: z.number().optional().describe("expected calibration error over 15 equal-width bins of top-1 confidence"),
    calibration: z
      .array(z.object({ lower: z.number(), upper: z.number(), count: z.number().int(), accuracy: z.number(), confidence: z.number() }))
      .optional()
      .describe("reliability bins (non-empty ones): examples whose top-1 confidence is in (lower, upper]"),
    misclassified: z
      .array(z.object({ sha256: z.string(), path: z.string(), label: z.string(), predicted: z.string(), probability: z.number() }))
      .optional()
      .describe("validation images the model got wrong, most confident first (at most 1,000 here; all of them in files/evaluation.json)"),
    misclassified_count: z.number().int().optional(),
    selection: z
      .object({
        strategy: z.literal("cv"),
        folds: z.number().int(),
        candidates: z.array(z.object({ head: z.record(z.string(), z.unknown()), hyperparameters: z.record(z.string(), z.unknown()), cv_accuracy_mean: z.number(), cv_accuracy_std: z.number() })),
        chosen: z.object({ head: z.record(z.string(), z.unknown()), hyperparameters: z.record(z.string(), z.unknown()), cv_accuracy_mean: z.number(), cv_accuracy_std: z.number() }),
      })
      .passthrough()
      .optional()
      .describe('how `head: {"type": "auto"}` chose: every candidate\'s cross-validation accuracy on the training images'),
    val_count: z.number().int().optional(),
  })
  .passthrough();
export const modelComparisonSchema = z
  .object({
    a: z.string(),
    b: z.string(),
    n: z.number().int().describe("validation images both models were evaluated on (same image, same label)"),
    accuracy_a: z.number(),
    accuracy_b: z.number(),
    only_a_right: z.number().int(),
    only_b_right: z.number().int(),
    both_right: z.number().int(),
    both_wrong: z.number().int(),
    p_value: z.number().describe("two-sided exact McNemar test: the chance of a split at least this lopsided if both models were equally good"),
  })
  .meta({ id: "ModelComparison" });
export const modelSchema = z
  .object({
    id: z.string(),
    job_id: z.string(),
    dataset_id: z.string(),
    dataset_version: z.number().int(),
    backbone: z.string(),
    labels: z.array(z.string()),
    metrics: modelMetricsSchema,
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: "Model" });
export const aliasNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "an alias is 1 to 63 lowercase letters, digits, _ or -, starting with a letter or digit");
export const putAliasRequest = z.object({ model_id: z.string().min(1) }).strict().meta({ id: "PutAliasRequest" });
export const predictJsonRequest = z
  .union([
    z.object({ images: z.array(z.string().min(1)).min(1) }).strict(),
    z.object({ embeddings: z.array(z.array(z.number())).min(1) }).strict(),
  ])
  .meta({ id: "PredictJsonRequest" });
export const predictionSchema = z
  .object({
    model_id: z.string(),
    predictions: z.array(z.array(z.object({ label: z.string(), probability: z.number() }))),
    timings_ms: z.record(z.string(), z.number()),
  })
  .meta({ id: "Prediction" });
export const aliasHistoryEntrySchema = z
  .object({ model_id: z.string(), previous_model_id: z.string().nullable(), switched_at: z.string() })
  .meta({ id: "AliasHistoryEntry" });
export const aliasSchema = z
  .object({
    name: z.string(),
    model_id: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
    previous_model_id: z.string().nullable().optional().describe("the model the alias named before its last switch: PUT it back to roll back"),
    history: z.array(aliasHistoryEntrySchema).optional().describe("switches, newest first"),
  })
  .meta({ id: "Alias" });
/**
 * `GET /v1/models/:id/bundle/manifest`: the self-contained bundle as a list of files to download one by one (each
 * streamed by its own GET), written beside them as `edgetune.json`. Mirrors shared/bundle/manifest.ts, which the
 * bundle's runtime reads without zod.
 */
export const bundleManifestSchema = z
  .object({
    format: z.literal("edgetune-bundle/2"),
    model_id: z.string(),
    labels: z.array(z.string()).describe("class labels in the head's output order"),
    backbone: z.object({
      id: z.string(),
      name: z.string(),
      format: z.enum(["layers-model", "graph-model"]).describe("tfjs format of backbone/model.json; both load with plain @tensorflow/tfjs"),
      source: z.string().optional(),
      license: z.string().optional(),
    }),
    feature_spec: z
      .object({
        feature_layers: z.array(z.string()),
        pooling: z.enum(["avg", "avg+max"]),
        flip_average: z.boolean().optional(),
        input_size: z.tuple([z.number().int(), z.number().int()]).optional(),
      })
      .describe("which inner activations of the backbone are globally pooled into the embedding the head reads"),
    preprocessing: z
      .object({
        version: z.string().describe("the image pipeline's code version (decoders, EXIF, alpha on white, resampling)"),
        input_size: z.tuple([z.number().int(), z.number().int()]),
        mean: z.tuple([z.number(), z.number(), z.number()]),
        std: z.tuple([z.number(), z.number(), z.number()]),
        resize: z.enum(["squash", "center_crop"]),
      })
      .describe("normalisation is (x / 255 - mean) / std per RGB channel after a Pillow-style bilinear resize to input_size ([height, width])"),
    top_k: z.number().int().describe("labels per image predict() returns by default (the API's default top_k)"),
    entry: z.literal("edgetune.mjs"),
    paths: z.object({ backbone_model: z.string(), backbone_weights: z.string(), head_manifest: z.string(), head_weights: z.string(), jpeg_decoder: z.string(), png_decoder: z.string() }),
    files: z
      .array(
        z.object({
          path: z.string().describe("where the file goes in the bundle folder"),
          url: z.string().describe("download path on the API's origin (/v1/... with the API key; /bundle-runtime/... is public)"),
          bytes: z.number().int().optional(),
        }),
      )
      .describe("every file of the bundle, edgetune.json (this document) included"),
  })
  .meta({ id: "BundleManifest" });
export const predictQuerySchema = z.object({
  top_k: z.coerce.number().int().min(1).max(1000).default(5).describe("labels per image, most probable first"),
});

// ---------------------------------------------------------------- the runner protocol (/v1/runner)
// One schema per message, used three times: the Worker validates requests with it and publishes it in the OpenAPI
// document (workers/routes/runner.ts), and the runner parses every answer with it (gpu-runner/src/api-client.ts).

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/);
/** Long polls wait at most this long: under Cloudflare's 30 s of a held request without bytes. */
export const MAX_LEASE_WAIT_S = 25;

export const leaseRequestSchema = z
  .object({
    runner_id: z.string().min(1).max(200).optional().describe("ignored: a runner is identified by its token (POST /v1/runners)"),
    wait_s: z.number().min(0).max(MAX_LEASE_WAIT_S).default(20),
    engines: z.array(z.string()).optional(),
  })
  .strict()
  .meta({ id: "LeaseRequest" });

/** What `POST /v1/runner/lease` hands out: everything needed to run the job, re-validated by the runner. */
export const leasedJobSchema = z
  .object({
    job: z.object({
      id: z.string(),
      project_id: z.string(),
      dataset_id: z.string(),
      dataset_version: z.number().int(),
      attempt: z.number().int(),
      max_attempts: z.number().int(),
      config: jobConfigSchema,
      model_id: z.string(),
    }),
    lease: z.object({ token: z.string(), expires_at: z.string(), lease_ms: z.number(), heartbeat_ms: z.number() }),
    backbone: z.object({
      id: z.string(),
      name: z.string(),
      builtin: z.boolean(),
      spec: backboneSpecSchema,
      weights_version: z.string(),
      format: z.enum(["layers-model", "graph-model"]),
    }),
    images: z.array(z.object({ sha256: sha256Schema, label: z.string(), split: z.enum(["auto", "train", "val"]), path: z.string() })),
  })
  .meta({ id: "LeasedJob" });
export type LeasedJob = z.infer<typeof leasedJobSchema>;

export const heartbeatRequestSchema = z.object({ lease_token: z.string(), progress: progressSchema.optional() }).strict().meta({ id: "HeartbeatRequest" });
export const heartbeatResponseSchema = z.object({ cancel_requested: z.boolean(), lease_expires_at: z.string() }).meta({ id: "HeartbeatResponse" });

export const epochsRequestSchema = z.object({ lease_token: z.string(), epochs: z.array(epochMetricsSchema.passthrough()).max(1000) }).strict().meta({ id: "EpochsRequest" });
export const okResponseSchema = z.object({ ok: z.literal(true) });

/** Artifacts a model consists of; anything else is refused. */
export const MODEL_ARTIFACTS = ["head.json", "head.bin", "model.json", "weights.bin", "card.json", "evaluation.json"] as const;
export const artifactResponseSchema = z.object({ name: z.enum(MODEL_ARTIFACTS), bytes: z.number().int() });

export const completeRequestSchema = z
  .object({
    lease_token: z.string(),
    labels: z.array(z.string()).min(2),
    metrics: z.record(z.string(), z.unknown()),
    epochs: z.array(z.record(z.string(), z.unknown())),
    skipped: z.array(rejectionSchema).default([]),
    head_bytes: z.number().int().min(1),
    extra: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .meta({ id: "CompleteRequest" });
export const completeResponseSchema = z.object({ model_id: z.string() }).meta({ id: "CompleteResponse" });

export const failRequestSchema = z
  .object({
    lease_token: z.string(),
    error: z.string().max(4000),
    retryable: z.boolean().default(true),
    canceled: z.boolean().default(false),
    release: z.boolean().default(false),
    skipped: z.array(rejectionSchema).optional(),
  })
  .strict()
  .meta({ id: "FailRequest" });
export const failResponseSchema = z.object({ status: z.enum(["queued", "running", "succeeded", "failed", "canceled"]) }).meta({ id: "FailResponse" });

export const imageBatchRequestSchema = z.object({ sha256: z.array(sha256Schema).min(1).max(64) }).strict();
export const embeddingLookupRequestSchema = z.object({ sha256: z.array(sha256Schema).max(1000), pack: sha256Schema.optional(), shard: z.number().int().min(0).max(9_999).optional() }).strict();
export const embeddingsStoredResponseSchema = z.object({ stored: z.number().int() });
