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
const nameSchema = z.string().trim().min(1, "must not be empty").max(200, "at most 200 characters").meta({ description: "a name for people (1 to 200 characters, trimmed)", example: "flowers" });

// ---------------------------------------------------------------- projects and keys
export const createProjectRequest = z.object({ name: nameSchema.describe("the project's name") }).strict().meta({ id: "CreateProjectRequest" });
export const keyScopeSchema = z.enum(["full", "predict"]).describe("full: the whole project API; predict: only predict and read models and aliases (for keys shipped inside apps)");
export const createKeyRequest = z
  .object({ name: nameSchema.default("key").describe("a name to tell keys apart (where it is used); default `key`"), scope: keyScopeSchema.default("full") })
  .strict()
  .meta({ id: "CreateKeyRequest" });
export const apiKeySchema = z
  .object({
    id: z.string().describe("the key's id (`key_...`), for DELETE /v1/keys/{id}"),
    name: z.string().describe("the name given at creation"),
    prefix: z.string().describe("the first characters of the secret, to recognise a key without revealing it"),
    scope: keyScopeSchema,
    admin: z.boolean().describe("an admin key of the deployment (EDGETUNE_ADMIN_KEY; rotate it there, not with DELETE)"),
    created_at: z.string().nullable().describe("ISO 8601 UTC; null for admin keys"),
    updated_at: z.string().nullable().describe("ISO 8601 UTC; null for admin keys"),
    last_used_at: z.string().nullable().describe("when the key last authenticated a request, to the minute; null for admin keys"),
    secret: z.string().optional().describe("the key itself (`Authorization: Bearer <secret>`): only in the answer that creates it, never again"),
  })
  .meta({ id: "ApiKey", description: "An API key of a project (its secret only when it is created)" });

// ---------------------------------------------------------------- datasets
export const createDatasetRequest = z.object({ name: nameSchema.describe("the dataset's name") }).strict().meta({ id: "CreateDatasetRequest" });
export const rejectionSchema = z
  .object({
    path: z.string().describe("the file's path in the upload (archive entry or label/file)"),
    code: z.string().describe("why, as a stable code (e.g. `not_an_image`, `corrupt_image`, `too_many_pixels`)"),
    message: z.string().describe("why, for people, with what to fix"),
  })
  .meta({ id: "Rejection", description: "A file that was not taken, and why" });
export const datasetSchema = z
  .object({
    id: z.string().describe("the dataset's id (`ds_...`)"),
    name: z.string().describe("the name given at creation"),
    status: z.enum(["empty", "ingesting", "ready", "failed"]).describe("empty: no images yet; ingesting: an archive is being read; ready: images stored; failed: the last archive could not be read (`error` says why; earlier images stay)"),
    version: z.number().int().describe("increases with every change of its images; a job trains on the version current when it was created"),
    image_count: z.number().int().describe("images in the current version"),
    bytes: z.number().int().describe("bytes of those images as uploaded"),
    labels: z
      .array(
        z.object({
          name: z.string().describe("the label"),
          count: z.number().int().describe("images with this label"),
          train: z.number().int().describe("of them, uploaded under train/ (the dataset's own split)"),
          val: z.number().int().describe("of them, uploaded under val/"),
        }),
      )
      .describe("per label, in name order"),
    rejected_count: z.number().int().describe("files refused over all uploads (may exceed the `rejected` list)"),
    rejected: z.array(rejectionSchema).describe("the most recent refused files with their reasons (at most 1,000)"),
    duplicate_count: z.number().int().describe("files skipped because the same bytes are already in the dataset"),
    trainable: z.boolean().describe("whether POST /v1/jobs accepts it: at least 2 labels with 2 images each"),
    not_trainable_reason: z.string().nullable().describe("why not, when `trainable` is false"),
    ingest: z
      .object({
        done: z.number().int().describe("archive entries handled so far (images and rejected files; folders are not counted)"),
        total: z.number().int().describe("entries to handle; 0 before an archive's directory is read"),
        error: z.string().nullable().optional().describe("why the last ingest stopped, if it failed"),
      })
      .describe("progress of the last archive's ingestion"),
    error: z.string().nullable().describe("why the dataset is `failed`; null otherwise"),
    created_at: z.string().describe("ISO 8601 UTC"),
    updated_at: z.string().describe("ISO 8601 UTC"),
  })
  .meta({ id: "Dataset", description: "A labelled image collection, versioned: uploads and edits make new versions" });
export const imageUploadResponse = z
  .object({
    sha256: z.string().describe("hex SHA-256 of the bytes: the image's id in the dataset"),
    label: z.string().describe("the label it was stored under (NFC)"),
    filename: z.string().describe("its file name (NFC)"),
    width: z.number().int().describe("pixels, after EXIF rotation"),
    height: z.number().int().describe("pixels, after EXIF rotation"),
    format: z.string().describe("`jpeg` or `png`"),
    bytes: z.number().int().describe("size as uploaded"),
    dataset_version: z.number().int().describe("the dataset version that now holds it"),
  })
  .meta({ id: "ImageUploaded", description: "An image stored in a dataset" });

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
export const uploadPartSchema = z
  .object({
    n: z.number().int().describe("the part's number, from 1"),
    etag: z.string().describe("storage's tag of the part's bytes"),
    bytes: z.number().int().describe("the part's size"),
  })
  .meta({ id: "UploadPart", description: "One part of a multipart upload, as stored" });
export const uploadSchema = z
  .object({
    upload_id: z.string().describe("the upload's id (`up_...`)"),
    part_size: z.number().int().describe("bytes per part; every part but the last must have exactly this many"),
    filename: z.string().describe("the archive's file name as the client gave it (used in messages)"),
    status: z.string().describe("open (accepting parts), completed or aborted"),
    max_parts: z.number().int().optional().describe("the most parts an upload may have (10,000)"),
    parts: z.array(uploadPartSchema).optional().describe("parts received so far (GET only): a resumed upload sends the others"),
    received_bytes: z.number().int().optional().describe("bytes of all parts received (GET only)"),
  })
  .meta({ id: "Upload", description: "A multipart upload of a large archive" });

// ---------------------------------------------------------------- backbones
/**
 * How pixels become the backbone's input: each channel value v (0 to 255, RGB, after resize) is fed as
 * `(v / 255 - mean[c]) / std[c]`. `{mean: [0, 0, 0], std: [1, 1, 1]}` gives [0, 1]; 0.5 and 0.5 give [-1, 1].
 */
export const normalizationSchema = z
  .object({
    mean: z.tuple([z.number(), z.number(), z.number()]).describe("per channel (R, G, B), subtracted from v / 255"),
    std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).describe("per channel (R, G, B), divides after the mean is subtracted"),
  })
  .strict()
  .meta({
    description: "What the backbone expects as input: each RGB value v (0 to 255) is fed as `(v / 255 - mean[c]) / std[c]`. mean 0 and std 1 give [0, 1]; mean 0.5 and std 0.5 give [-1, 1] (MobileNet's convention); ImageNet statistics are mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225].",
    example: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  });
export const backboneSpecSchema = z
  .object({
    name: nameSchema.describe("a name for the backbone, unique in the project; builtin names are reserved"),
    feature_layer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(4)]).describe("layer (or layers, concatenated) whose output is pooled into the embedding"),
    input_size: z.tuple([z.number().int().min(32).max(1024), z.number().int().min(32).max(1024)]).describe("[height, width] in pixels the model takes"),
    extra_input_sizes: z
      .array(z.tuple([z.number().int().min(32).max(1024), z.number().int().min(32).max(1024)]))
      .max(2)
      .optional()
      .describe("builtin backbones only: more [height, width] sizes each image is also fed at; the embedding is the mean of every size's (multi-scale features)"),
    normalization: normalizationSchema,
    pooling: z.enum(["avg", "avg+max"]).default("avg").describe("how each feature map becomes a vector: global average, or average and max concatenated (twice the length)"),
    resize: z.enum(["squash", "center_crop"]).default("squash").describe("squash: the whole image scaled to input_size (aspect ratio not kept); center_crop: scaled to cover it, the centre kept"),
  })
  .strict()
  .meta({ id: "BackboneSpec", description: "How to turn an image into an embedding with a frozen model: input size, normalization, feature layer(s), pooling" });
export type BackboneSpec = z.infer<typeof backboneSpecSchema>;

// ---------------------------------------------------------------- jobs
const linearHeadSchema = z.object({ type: z.literal("linear").describe("one dense softmax layer on the embedding (logistic regression)") }).strict();
const mlpHeadSchema = z.object({
  type: z.literal("mlp").describe("hidden dense ReLU layers, then softmax"),
  hidden: z.array(z.number().int().min(4).max(4096)).min(1).max(3).default([256]).describe("units per hidden layer (1 to 3 layers)"),
  dropout: z.number().min(0).max(0.9).default(0.2).describe("dropout rate after each hidden layer while training"),
}).strict();
/** A head that can be trained as given. */
export const headSpecSchema = z.discriminatedUnion("type", [linearHeadSchema, mlpHeadSchema]).meta({ id: "HeadSpec", description: "A trainable head: linear or mlp" });
/**
 * `{"type": "auto"}`: candidate heads and settings compared by stratified k-fold cross-validation on the training
 * images only; the best (by mean CV accuracy, ties to the simpler head) is refit on all of them.
 */
export const autoHeadSchema = z
  .object({
    type: z.literal("auto").describe("choose the head and its settings by cross-validation"),
    folds: z.number().int().min(2).max(10).default(5).describe("cross-validation folds (fewer when the smallest class has fewer training images)"),
  })
  .strict()
  .meta({ id: "AutoHeadSpec", description: "Candidate heads compared by stratified k-fold cross-validation on the training images; the best is refit on all of them" });
export type AutoHeadSpec = z.infer<typeof autoHeadSchema>;
/** A job's `head`: a trainable head, or "auto" (the default). */
export const jobHeadSpecSchema = z
  .discriminatedUnion("type", [linearHeadSchema, mlpHeadSchema, autoHeadSchema])
  .meta({ id: "JobHeadSpec", description: "The head a job trains: linear, mlp, or auto (chosen by cross-validation)" });
export type JobHeadSpec = z.infer<typeof jobHeadSpecSchema>;
export const DEFAULT_JOB_HEAD: JobHeadSpec = { type: "auto", folds: 5 };
export type HeadSpec = z.infer<typeof headSpecSchema>;

export const hyperparametersSchema = z
  .object({
    epochs: z.number().int().min(1).max(1000).default(100).describe("most passes over the training embeddings (early stopping may end sooner)"),
    batch_size: z.number().int().min(1).max(4096).default(32).describe("embeddings per gradient step"),
    learning_rate: z.number().positive().max(10).default(0.001).describe("the optimizer's step size"),
    optimizer: z.enum(["adam", "adamw", "sgd"]).default("adam").describe("adam and sgd take weight_decay as L2 on the gradient; adamw decays weights decoupled from the step"),
    weight_decay: z.number().min(0).max(1).default(0.1).describe("weight decay on the head's kernels (L2 strength; decoupled for adamw); 0 disables"),
    label_smoothing: z.number().min(0).max(0.5).default(0.1).describe("target smoothing: each one-hot target becomes 1 - s on the label and s / (classes - 1) elsewhere"),
    validation_fraction: z.number().gt(0).max(0.5).default(0.2).describe("held out when the dataset has no val/ split"),
    use_dataset_split: z.boolean().default(true).describe("use the dataset's own val/ images as the validation set when it has them"),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(42).describe("seeds the split, the initial weights, shuffling and dropout: the same seed and data train the same head"),
    early_stopping_patience: z.number().int().min(0).max(1000).default(15).describe("epochs without val-loss improvement before stopping; 0 disables"),
    class_weighting: z.enum(["none", "balanced"]).default("balanced").describe("balanced: each class's loss weighted by n / (classes * n_class), so rare classes count as much as common ones"),
  })
  .strict()
  .meta({ id: "Hyperparameters", description: "How the head is trained; every field has a default" });
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
  .meta({ id: "Augmentation", description: "Extra training views of each training image, and test-time flip averaging" });
export type Augmentation = z.infer<typeof augmentationSchema>;
export const NO_AUGMENTATION: Augmentation = { views: 0, tta: "none" };

/**
 * `fine_tune: {"blocks": N}`: also train the backbone's last N blocks (with the head) on activations cached at their
 * input; only for backbones whose blocks edgetune knows (the catalog's `fineTuneBlocks`), else 422 `fine_tune_unsupported`.
 */
export const fineTuneSchema = z
  .object({ blocks: z.number().int().min(1).max(2).describe("how many of the backbone's last blocks to train (1 or 2)") })
  .strict()
  .meta({ id: "FineTune" });
export type FineTune = z.infer<typeof fineTuneSchema>;

export const createJobRequest = z
  .object({
    dataset_id: z.string().min(1).describe("the dataset to train on (its current version is frozen for the job)"),
    backbone: z.string().min(1).optional().describe("a backbone id or a builtin backbone's name; default: the builtin default"),
    head: jobHeadSpecSchema.optional().describe('default {"type": "auto"}: chosen by cross-validation on the training images'),
    hyperparameters: hyperparametersSchema.optional(),
    augmentation: augmentationSchema.optional().describe("default: no views, no test-time averaging"),
    fine_tune: fineTuneSchema.optional().describe("also train the backbone's last 1 or 2 blocks; with `auto` the fine-tuned blocks are kept only when they beat head-only on held-out training images"),
    max_attempts: z.number().int().min(1).max(10).optional().describe("runs before the job fails for good when runners crash or lose their lease; default 3"),
  })
  .strict()
  .meta({ id: "CreateJobRequest", description: "What to train: a dataset, a backbone, a head and its hyperparameters" });
export type CreateJobRequest = z.infer<typeof createJobRequest>;

/** What a runner receives with a lease: everything needed to train, re-validated on the runner. */
export const jobConfigSchema = z
  .object({
    /** "train" makes a model; "diagnostics" (POST /v1/datasets/:id/diagnostics) makes a dataset report. */
    kind: z.enum(["train", "diagnostics"]).default("train").describe("train makes a model; diagnostics (POST /v1/datasets/{id}/diagnostics) makes a dataset report"),
    head: jobHeadSpecSchema,
    hyperparameters: hyperparametersSchema,
    augmentation: augmentationSchema.default(NO_AUGMENTATION).describe("training views and test-time averaging (none by default)"),
    fine_tune: fineTuneSchema.optional().describe("the backbone's last blocks to train with the head (absent: head only)"),
  })
  .meta({ id: "JobConfig", description: "The job's settings with every default filled in" });
export type JobConfig = z.infer<typeof jobConfigSchema>;

/**
 * One epoch's numbers, Keras conventions: `train_*` are running means over the epoch's mini-batches as trained
 * (dropout on, class weights applied); `val_*` on the validation rows after the epoch (dropout off, no class weights).
 * `epoch` is 1-based.
 */
export const epochMetricsSchema = z
  .object({
    epoch: z.number().int().describe("1-based epoch number"),
    train_loss: z.number().describe("mean cross-entropy over the epoch's mini-batches, as trained (dropout on, class weights applied)"),
    val_loss: z.number().describe("cross-entropy on the validation rows after the epoch (dropout off, no class weights)"),
    train_accuracy: z.number().describe("fraction of training rows classified right during the epoch (0 to 1)"),
    val_accuracy: z.number().describe("fraction of validation rows classified right after the epoch (0 to 1)"),
  })
  .meta({ description: "One epoch's numbers (Keras conventions)" });
export type EpochMetrics = z.infer<typeof epochMetricsSchema>;

/** Where a running job is: a phase name and how far into it (images embedded, epochs trained, ...). */
export const progressSchema = z.object({
  phase: z.string().max(64).describe("what the runner is doing: starting, embedding (images), selecting (cross-validation folds), training (epochs), uploading (artifacts)"),
  done: z.number().int().min(0).describe("units of the phase done"),
  total: z.number().int().min(0).describe("units of the phase in all"),
});
export type Progress = z.infer<typeof progressSchema>;
export const jobSchema = z
  .object({
    id: z.string().describe("the job's id (`job_...`)"),
    dataset_id: z.string().describe("the dataset it trains on"),
    dataset_version: z.number().int().describe("the dataset version frozen for it when it was created"),
    backbone: z.string().describe("the backbone's id (a builtin's name for builtin backbones)"),
    config: jobConfigSchema,
    status: z.enum(["queued", "running", "succeeded", "failed", "canceled"]).describe("queued: waiting for a runner; running: leased; then succeeded (model_id set), failed (error set) or canceled"),
    attempt: z.number().int().describe("runs started so far (a lost lease starts another, up to max_attempts)"),
    max_attempts: z.number().int().describe("runs allowed before the job fails for good"),
    progress: z
      .object({
        phase: z.string().nullable().describe("starting, embedding, selecting, training, uploading, then done; null before a runner reports"),
        done: z.number().int().describe("units of the phase done (images, folds, epochs)"),
        total: z.number().int().describe("units of the phase in all"),
      })
      .describe("where a running job is, from the runner's last heartbeat"),
    metrics: z.object({ epochs: z.array(epochMetricsSchema).describe("per epoch, in order") }).passthrough().describe("training curves as they come in; the final metrics are on the model"),
    skipped: z.array(rejectionSchema).describe("images the runner could not use (e.g. unreadable), with reasons"),
    model_id: z.string().nullable().describe("the model it made, once succeeded"),
    error: z.string().nullable().describe("why it failed; null otherwise"),
    created_at: z.string().describe("ISO 8601 UTC"),
    updated_at: z.string().describe("ISO 8601 UTC"),
    started_at: z.string().nullable().describe("when a runner first leased it"),
    finished_at: z.string().nullable().describe("when it reached succeeded, failed or canceled"),
  })
  .meta({ id: "Job", description: "A fine-tune (or diagnostics) job: a head trained on a frozen backbone's embeddings of a dataset version" });

// ---------------------------------------------------------------- models, aliases, predictions
export const perClassMetricsSchema = z.object({
  label: z.string().describe("the class"),
  precision: z.number().describe("of the validation images predicted as this class, the fraction that are (0 to 1)"),
  recall: z.number().describe("of the validation images of this class, the fraction predicted as it (0 to 1)"),
  f1: z.number().describe("harmonic mean of precision and recall"),
  support: z.number().int().describe("validation images of this class"),
});
const candidateSchema = z.object({
  head: z.record(z.string(), z.unknown()).describe("the candidate head (HeadSpec)"),
  hyperparameters: z.record(z.string(), z.unknown()).describe("the hyperparameters it was tried with"),
  features: z
    .object({
      layers: z.array(z.string()).describe("the feature layers this candidate's head reads, by name"),
      ranges: z.array(z.tuple([z.number().int(), z.number().int()])).describe("each layer's [start, end) column range in the whole embedding"),
    })
    .optional()
    .describe("only these feature layers (column ranges of the embedding); absent: all of them"),
  cv_accuracy_mean: z.number().describe("mean validation accuracy over the folds"),
  cv_accuracy_std: z.number().describe("standard deviation of that accuracy over the folds"),
});
export const modelMetricsSchema = z
  .object({
    accuracy: z.number().describe("top-1 accuracy on the validation images (0 to 1)"),
    per_class: z.array(perClassMetricsSchema).describe("per class, in `labels` order"),
    confusion_matrix: z.array(z.array(z.number().int())).describe("rows: true class, columns: predicted class, both in `labels` order; cells count validation images"),
    expected_calibration_error: z.number().optional().describe("the same as `ece` (older name)"),
    ece: z.number().optional().describe("expected calibration error over 15 equal-width bins of top-1 confidence"),
    calibration: z
      .array(
        z.object({
          lower: z.number().describe("bin's lower confidence bound (exclusive)"),
          upper: z.number().describe("bin's upper confidence bound (inclusive)"),
          count: z.number().int().describe("validation images in the bin"),
          accuracy: z.number().describe("fraction of them predicted right"),
          confidence: z.number().describe("their mean top-1 probability"),
        }),
      )
      .optional()
      .describe("reliability bins (non-empty ones): examples whose top-1 confidence is in (lower, upper]"),
    misclassified: z
      .array(
        z.object({
          sha256: z.string().describe("the image (GET /v1/datasets/{id}/images/{sha256})"),
          path: z.string().describe("its path as uploaded"),
          label: z.string().describe("its true label"),
          predicted: z.string().describe("the label the model gave it"),
          probability: z.number().describe("the model's probability for that wrong label"),
        }),
      )
      .optional()
      .describe("validation images the model got wrong, most confident first (at most 1,000 here; all of them in files/evaluation.json)"),
    misclassified_count: z.number().int().optional().describe("validation images the model got wrong, in all"),
    selection: z
      .object({
        strategy: z.literal("cv").describe("cross-validation on the training images"),
        folds: z.number().int().describe("folds used"),
        candidates: z.array(candidateSchema).describe("every candidate tried"),
        chosen: candidateSchema.describe("the candidate refit on all training images"),
      })
      .passthrough()
      .optional()
      .describe('how `head: {"type": "auto"}` chose: every candidate\'s cross-validation accuracy on the training images'),
    val_count: z.number().int().optional().describe("validation images the metrics are computed on"),
    fine_tune: z
      .object({
        blocks: z.number().int().describe("blocks asked"),
        cut_layer: z.string().describe("the backbone layer the frozen trunk runs to"),
        kept: z.boolean().describe("whether the model carries the fine-tuned blocks (with auto: only when they beat head-only on held-out training images)"),
        holdout_accuracy_head_only: z.number().describe("a head alone on the pretrained blocks, on the held-out training images"),
        holdout_accuracy_fine_tuned: z.number().describe("the fine-tuned blocks and head (best epoch), same images"),
      })
      .passthrough()
      .optional()
      .describe("`fine_tune` jobs: what training the last blocks did (also best_epoch, epochs, fit/holdout counts, train_ms, cut activations cached/computed)"),
  })
  .passthrough()
  .meta({ description: "Validation metrics of a model (computed by the runner on held-out images)" });
export const modelComparisonSchema = z
  .object({
    a: z.string().describe("model a's id"),
    b: z.string().describe("model b's id"),
    n: z.number().int().describe("validation images both models were evaluated on (same image, same label)"),
    accuracy_a: z.number().describe("model a's accuracy on those n images"),
    accuracy_b: z.number().describe("model b's accuracy on those n images"),
    only_a_right: z.number().int().describe("images a got right and b wrong"),
    only_b_right: z.number().int().describe("images b got right and a wrong"),
    both_right: z.number().int().describe("images both got right"),
    both_wrong: z.number().int().describe("images both got wrong"),
    p_value: z.number().describe("two-sided exact McNemar test: the chance of a split at least this lopsided if both models were equally good"),
  })
  .meta({ id: "ModelComparison", description: "Two models of one dataset compared image by image on their shared validation images" });
export const modelSchema = z
  .object({
    id: z.string().describe("the model's id (`mdl_...`)"),
    job_id: z.string().describe("the job that trained it"),
    dataset_id: z.string().describe("the dataset it was trained on"),
    dataset_version: z.number().int().describe("the dataset version it was trained on"),
    backbone: z.string().describe("the frozen backbone under its head (id, or a builtin's name)"),
    labels: z.array(z.string()).describe("the classes it predicts, in output order"),
    metrics: modelMetricsSchema,
    created_at: z.string().describe("ISO 8601 UTC"),
    updated_at: z.string().describe("ISO 8601 UTC"),
  })
  .meta({ id: "Model", description: "A trained head on a frozen backbone, with its validation metrics" });
export const aliasNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "an alias is 1 to 63 lowercase letters, digits, _ or -, starting with a letter or digit")
  .meta({ description: "an alias name: 1 to 63 lowercase letters, digits, _ or -", example: "prod" });
export const putAliasRequest = z
  .object({ model_id: z.string().min(1).describe("the model the alias should name (succeeded, of this project)") })
  .strict()
  .meta({ id: "PutAliasRequest", description: "Where an alias should point" });
export const predictJsonRequest = z
  .union([
    z.object({ images: z.array(z.string().min(1)).min(1).describe("images as base64 (JPEG or PNG bytes; a `data:` URL prefix is allowed)") }).strict(),
    z.object({ embeddings: z.array(z.array(z.number())).min(1).describe("precomputed embeddings of the model's backbone, one vector per image (skips decoding and the backbone)") }).strict(),
  ])
  .meta({ id: "PredictJsonRequest", description: "A JSON predict body: base64 images, or precomputed embeddings" });
export const predictionSchema = z
  .object({
    model_id: z.string().describe("the model that answered"),
    predictions: z
      .array(
        z.array(
          z.object({ label: z.string().describe("a class of the model"), probability: z.number().describe("softmax probability (0 to 1)") }),
        ),
      )
      .describe("per input image, in request order: the top_k labels, most probable first"),
    timings_ms: z.record(z.string(), z.number()).describe("milliseconds spent: head_load, backbone_load (when loaded now), decode, preprocess, embed, head, total"),
  })
  .meta({ id: "Prediction", description: "Class probabilities per image" });
export const aliasHistoryEntrySchema = z
  .object({
    model_id: z.string().describe("the model the alias switched to"),
    previous_model_id: z.string().nullable().describe("the model it named before (null when the alias was created)"),
    switched_at: z.string().describe("ISO 8601 UTC"),
  })
  .meta({ id: "AliasHistoryEntry", description: "One switch of an alias" });
export const aliasSchema = z
  .object({
    name: z.string().describe("the alias name"),
    model_id: z.string().describe("the model it names now"),
    created_at: z.string().describe("ISO 8601 UTC"),
    updated_at: z.string().describe("ISO 8601 UTC: the last switch"),
    previous_model_id: z.string().nullable().optional().describe("the model the alias named before its last switch: PUT it back to roll back"),
    history: z.array(aliasHistoryEntrySchema).optional().describe("switches, newest first"),
  })
  .meta({ id: "Alias", description: "A stable name for a model (e.g. prod): apps predict through it while models change behind it" });
/**
 * `GET /v1/models/:id/bundle/manifest`: the self-contained bundle as a list of files to download one by one (each
 * streamed by its own GET), written beside them as `edgetune.json`. Mirrors shared/bundle/manifest.ts, which the
 * bundle's runtime reads without zod.
 */
export const bundleManifestSchema = z
  .object({
    format: z.enum(["edgetune-bundle/2", "edgetune-bundle/3"]).describe("the manifest format and its version: /3 for a fine-tuned model (head/blocks.bin beside the head)"),
    model_id: z.string().describe("the model the bundle holds"),
    labels: z.array(z.string()).describe("class labels in the head's output order"),
    backbone: z
      .object({
        id: z.string().describe("the backbone's id"),
        name: z.string().describe("its name"),
        format: z.enum(["layers-model", "graph-model"]).describe("tfjs format of backbone/model.json; both load with plain @tensorflow/tfjs"),
        source: z.string().optional().describe("where the weights come from (builtins)"),
        license: z.string().optional().describe("the weights' license (builtins)"),
      })
      .describe("the frozen backbone under the head"),
    feature_spec: z
      .object({
        feature_layers: z.array(z.string()).describe("the layers (or graph nodes) whose outputs are pooled and concatenated"),
        pooling: z.enum(["avg", "avg+max"]).describe("global average, or average and max concatenated"),
        flip_average: z.boolean().optional().describe("the embedding is the mean of the image's and its mirror image's"),
        input_size: z.tuple([z.number().int(), z.number().int()]).optional().describe("[height, width] the backbone runs at, when not the preprocessing's"),
      })
      .describe("which inner activations of the backbone are globally pooled into the embedding the head reads"),
    preprocessing: z
      .object({
        version: z.string().describe("the image pipeline's code version (decoders, EXIF, alpha on white, resampling)"),
        input_size: z.tuple([z.number().int(), z.number().int()]).describe("[height, width] the image is resized to"),
        mean: z.tuple([z.number(), z.number(), z.number()]).describe("per RGB channel, subtracted from x / 255"),
        std: z.tuple([z.number(), z.number(), z.number()]).describe("per RGB channel, divides after the mean"),
        resize: z.enum(["squash", "center_crop"]).describe("squash: the whole image to input_size; center_crop: scaled to cover it, the centre kept"),
      })
      .describe("normalisation is (x / 255 - mean) / std per RGB channel after a Pillow-style bilinear resize to input_size ([height, width])"),
    top_k: z.number().int().describe("labels per image predict() returns by default (the API's default top_k)"),
    entry: z.literal("edgetune.mjs").describe("the ES module with `predict(imageBytes)`"),
    paths: z
      .object({
        backbone_model: z.string().describe("the backbone's model.json in the folder"),
        backbone_weights: z.string().describe("its weights"),
        head_manifest: z.string().describe("the head's head.json"),
        head_weights: z.string().describe("the head's head.bin"),
        head_blocks: z.string().optional().describe("a fine-tuned model's blocks.bin: the backbone's last blocks as trained (format /3)"),
        jpeg_decoder: z.string().describe("the JPEG decoder's .wasm"),
        png_decoder: z.string().describe("the PNG decoder's .wasm"),
      })
      .describe("where the runtime finds each file, relative to the folder"),
    files: z
      .array(
        z.object({
          path: z.string().describe("where the file goes in the bundle folder"),
          url: z.string().describe("download path on the API's origin (/v1/... with the API key; /bundle-runtime/... is public)"),
          bytes: z.number().int().optional().describe("its size, when known"),
        }),
      )
      .describe("every file of the bundle, edgetune.json (this document) included"),
  })
  .meta({ id: "BundleManifest", description: "A self-contained bundle as a list of files to download, with what its runtime needs to predict as the API does" });
export const predictQuerySchema = z.object({
  top_k: z.coerce.number().int().min(1).max(1000).default(5).describe("labels per image, most probable first"),
});

// ---------------------------------------------------------------- the runner protocol (/v1/runner)
// One schema per message, used three times: the Worker validates requests with it and publishes it in the OpenAPI
// document (workers/routes/runner.ts), and the runner parses every answer with it (gpu-runner/src/api-client.ts).

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/).meta({ description: "hex SHA-256 of an image's bytes (its id)" });
/** Long polls wait at most this long: under Cloudflare's 30 s of a held request without bytes. */
export const MAX_LEASE_WAIT_S = 25;

export const leaseRequestSchema = z
  .object({
    runner_id: z.string().min(1).max(200).optional().describe("ignored: a runner is identified by its token (POST /v1/runners)"),
    wait_s: z.number().min(0).max(MAX_LEASE_WAIT_S).default(20).describe("seconds to hold the request open for a job (long poll); 0 answers at once"),
    engines: z.array(z.string()).optional().describe("the embedding engines the runner has (informational)"),
  })
  .strict()
  .meta({ id: "LeaseRequest", description: "A runner asking for work" });

/** What `POST /v1/runner/lease` hands out: everything needed to run the job, re-validated by the runner. */
export const leasedJobSchema = z
  .object({
    job: z
      .object({
        id: z.string().describe("the job's id"),
        project_id: z.string().describe("the project it belongs to"),
        dataset_id: z.string().describe("the dataset it trains on"),
        dataset_version: z.number().int().describe("the frozen dataset version"),
        attempt: z.number().int().describe("this run's number, from 1"),
        max_attempts: z.number().int().describe("runs allowed"),
        config: jobConfigSchema,
        model_id: z.string().describe("the id the model will have (artifacts are uploaded under it)"),
      })
      .describe("the job"),
    lease: z
      .object({
        token: z.string().describe("the lease token: every report on the job carries it (body lease_token or X-Lease-Token)"),
        expires_at: z.string().describe("ISO 8601 UTC; a heartbeat renews it"),
        lease_ms: z.number().describe("how long a lease lasts without a heartbeat"),
        heartbeat_ms: z.number().describe("how often to send heartbeats"),
      })
      .describe("the runner's hold on the job"),
    backbone: z
      .object({
        id: z.string().describe("the backbone's id (a builtin's id for builtins)"),
        name: z.string().describe("its name"),
        builtin: z.boolean().describe("a builtin (weights published from the catalog) or a project's own"),
        spec: backboneSpecSchema,
        weights_version: z.string().describe("changes whenever the weights do: a key for caches of the weights and of embeddings"),
        format: z.enum(["layers-model", "graph-model"]).describe("the tfjs model format of model.json"),
      })
      .describe("the frozen backbone; files at GET /v1/runner/jobs/{id}/backbone/{file}"),
    images: z
      .array(
        z.object({
          sha256: sha256Schema,
          label: z.string().describe("its label"),
          split: z.enum(["auto", "train", "val"]).describe("the dataset's own split, or auto (validation_fraction decides)"),
          path: z.string().describe("its path as uploaded (for messages)"),
        }),
      )
      .describe("the dataset snapshot's images; bytes from POST /v1/runner/jobs/{id}/images"),
  })
  .meta({ id: "LeasedJob", description: "A leased job with everything needed to run it (re-validated by the runner)" });
export type LeasedJob = z.infer<typeof leasedJobSchema>;

const leaseTokenSchema = z.string().meta({ description: "the job's lease token (from the lease)" });
export const heartbeatRequestSchema = z
  .object({ lease_token: leaseTokenSchema, progress: progressSchema.optional().describe("where the runner is, shown to users") })
  .strict()
  .meta({ id: "HeartbeatRequest", description: "Renew the lease and report progress" });
export const heartbeatResponseSchema = z
  .object({
    cancel_requested: z.boolean().describe("the user canceled: stop, then report with /fail and canceled: true"),
    lease_expires_at: z.string().describe("ISO 8601 UTC: the renewed expiry"),
  })
  .meta({ id: "HeartbeatResponse", description: "The renewed lease" });

export const epochsRequestSchema = z
  .object({ lease_token: leaseTokenSchema, epochs: z.array(epochMetricsSchema.passthrough()).max(1000).describe("epochs since the last report, in order") })
  .strict()
  .meta({ id: "EpochsRequest", description: "Training curves as they come in" });
export const okResponseSchema = z.object({ ok: z.literal(true).describe("always true") });

/** Artifacts a model consists of; anything else is refused. */
export const MODEL_ARTIFACTS = ["head.json", "head.bin", "model.json", "weights.bin", "card.json", "evaluation.json", "blocks.bin"] as const;
export const artifactResponseSchema = z.object({ name: z.enum(MODEL_ARTIFACTS).describe("the artifact stored"), bytes: z.number().int().describe("its size") });

export const completeRequestSchema = z
  .object({
    lease_token: leaseTokenSchema,
    labels: z.array(z.string()).min(2).describe("the model's classes in output order"),
    // Validated as the model and the job will show them (GET /v1/models/{id}, GET /v1/jobs/{id}).
    metrics: modelMetricsSchema.describe("validation metrics (the model's `metrics`)"),
    epochs: z.array(epochMetricsSchema.passthrough()).describe("every epoch's numbers, in order"),
    skipped: z.array(rejectionSchema).default([]).describe("images the runner could not use"),
    head_bytes: z.number().int().min(1).describe("size of the uploaded head.bin"),
    extra: z.record(z.string(), z.unknown()).optional().describe("more figures kept on the job's metrics (timings, engine)"),
  })
  .strict()
  .meta({ id: "CompleteRequest", description: "A finished training run: register the model (its artifacts are uploaded first)" });
export const completeResponseSchema = z.object({ model_id: z.string().describe("the registered model") }).meta({ id: "CompleteResponse", description: "The model the job made" });

export const failRequestSchema = z
  .object({
    lease_token: leaseTokenSchema,
    error: z.string().max(4000).describe("what went wrong (shown to the user with runner details stripped)"),
    retryable: z.boolean().default(true).describe("true: back to the queue while attempts remain; false: fail the job now"),
    canceled: z.boolean().default(false).describe("the runner stopped because cancel_requested was set: the job ends canceled"),
    release: z.boolean().default(false).describe("the runner is shutting down and gives the job back: queued at once, the attempt not counted"),
    skipped: z.array(rejectionSchema).optional().describe("images the runner could not use"),
  })
  .strict()
  .meta({ id: "FailRequest", description: "A run that ended without a model" });
export const failResponseSchema = z
  .object({ status: z.enum(["queued", "running", "succeeded", "failed", "canceled"]).describe("the job's status after the report") })
  .meta({ id: "FailResponse", description: "The job's new status" });

export const imageBatchRequestSchema = z.object({ sha256: z.array(sha256Schema).min(1).max(64).describe("images to download (1 to 64)") }).strict();
export const embeddingLookupRequestSchema = z
  .object({
    sha256: z.array(sha256Schema).max(1000).describe("images whose cached embeddings are wanted"),
    pack: sha256Schema.optional().describe("the job's pack id (sha256 of its sorted image hashes): answer the pack (one shard of it) in one read when it is stored"),
    shard: z.number().int().min(0).max(9_999).optional().describe("which shard of the pack, from 0 (default 0); the answer's X-Embedding-Pack-Shards says how many there are"),
  })
  .strict();
export const embeddingsStoredResponseSchema = z.object({ stored: z.number().int().describe("records stored") });
