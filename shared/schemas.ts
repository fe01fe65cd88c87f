/**
 * Request and resource schemas of the public API (../shared API.md), written once and used by the Worker (request
 * validation + the OpenAPI document) and by the runner (it re-validates every job it leases).
 */
import { z } from "zod";

// ---------------------------------------------------------------- names
/** A label: what the user will see in predictions. Also a folder name inside archives. */
export const LABEL_PATTERN = /^[\p{L}\p{N}][\p{L}\p{N} _.\-+()&,']{0,99}$/u;
export const labelSchema = z
  .string()
  .regex(LABEL_PATTERN, "a label is 1 to 100 letters, digits, spaces or _ . - + ( ) & , ' and starts with a letter or digit");
/** A file name inside a label: no path separators, no leading dot, at most 200 characters. */
export const FILENAME_PATTERN = /^[\p{L}\p{N}_\-(][\p{L}\p{N} _.\-+()&,'=@~]{0,199}$/u;
export const filenameSchema = z.string().regex(FILENAME_PATTERN, "a file name is 1 to 200 characters without / or \\ and does not start with a dot");
const nameSchema = z.string().trim().min(1, "must not be empty").max(200, "at most 200 characters");

// ---------------------------------------------------------------- projects and keys
export const createProjectRequest = z.object({ name: nameSchema }).strict().meta({ id: "CreateProjectRequest" });
export const createKeyRequest = z.object({ name: nameSchema.default("key") }).strict().meta({ id: "CreateKeyRequest" });
export const apiKeySchema = z
  .object({ id: z.string(), name: z.string(), prefix: z.string(), created_at: z.string(), updated_at: z.string(), last_used_at: z.string().nullable(), secret: z.string().optional() })
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
export const headSpecSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("linear") }).strict(),
    z.object({
      type: z.literal("mlp"),
      hidden: z.array(z.number().int().min(4).max(4096)).min(1).max(3).default([256]),
      dropout: z.number().min(0).max(0.9).default(0.2),
    }).strict(),
  ])
  .meta({ id: "HeadSpec" });
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

export const createJobRequest = z
  .object({
    dataset_id: z.string().min(1),
    backbone: z.string().min(1).optional().describe("a backbone id or a builtin backbone's name; default: the builtin default"),
    head: headSpecSchema.optional(),
    hyperparameters: hyperparametersSchema.optional(),
    max_attempts: z.number().int().min(1).max(10).optional(),
  })
  .strict()
  .meta({ id: "CreateJobRequest" });
export type CreateJobRequest = z.infer<typeof createJobRequest>;

/** What a runner receives with a lease: everything needed to train, re-validated on the runner. */
export const jobConfigSchema = z
  .object({ head: headSpecSchema, hyperparameters: hyperparametersSchema })
  .meta({ id: "JobConfig" });
export type JobConfig = z.infer<typeof jobConfigSchema>;

export const epochMetricsSchema = z.object({
  epoch: z.number().int(),
  train_loss: z.number(),
  val_loss: z.number(),
  train_accuracy: z.number(),
  val_accuracy: z.number(),
});
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
    val_count: z.number().int().optional(),
  })
  .passthrough();
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
export const predictQuerySchema = z.object({
  top_k: z.coerce.number().int().min(1).max(1000).default(5).describe("labels per image, most probable first"),
});
