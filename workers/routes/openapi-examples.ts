/**
 * Examples of the resources for the OpenAPI documents, typed with the schemas they illustrate (so a schema change that
 * leaves an example behind fails the typecheck) and validated against the served documents by
 * tests/workers/openapi-document.test.ts. One coherent story: the flowers dataset, a job on it, its model, an alias.
 */
import type { z } from "zod";
import type {
  aliasSchema, apiKeySchema, datasetSchema, imageUploadResponse, jobSchema, leasedJobSchema, modelComparisonSchema, modelSchema, predictionSchema,
  uploadSchema,
} from "../../shared/schemas";

export const EXAMPLE_IDS = {
  project: "prj_5f3k8q2m9x4v7b1n6c0d2e8h4j",
  key: "key_7c2d9e4f1a8b3g6h0j5k2m9n4p",
  dataset: "ds_4n8p2q6r0s3t7v1w5x9y2z6a0b",
  upload: "up_3b7c1d5e9f2g6h0j4k8m1n5p9q",
  job: "job_8r2s6t0v4w7x1y5z9a3b6c0d4e",
  model: "mdl_2e6f0g3h7j1k5m8n2p6q0r4s7t",
  otherModel: "mdl_9v3w7x1y4z8a2b6c0d3e7f1g5h",
  runner: "rnr_6j0k4m8n1p5q9r3s7t0v4w8x2y",
  webhook: "wh_1z5a9b2c6d0e4f8g1h5j9k3m6n",
  sha256: "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
  otherSha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
};
const at = "2026-12-01T09:30:00.000Z";
const later = "2026-12-01T09:34:12.000Z";

export const exampleKey: z.output<typeof apiKeySchema> = {
  id: EXAMPLE_IDS.key, name: "ci", prefix: "et_live_Qx4", scope: "full", admin: false, created_at: at, updated_at: at, last_used_at: null,
  secret: "et_live_Qx4mZ8pL2vN6rT0wY3aC7eG1iK5oS9uW",
};

export const exampleDataset: z.output<typeof datasetSchema> = {
  id: EXAMPLE_IDS.dataset, name: "flowers", status: "ready", version: 3, image_count: 400, bytes: 58_213_774,
  labels: [
    { name: "daisy", count: 80, train: 0, val: 0 },
    { name: "dandelion", count: 80, train: 0, val: 0 },
    { name: "roses", count: 80, train: 0, val: 0 },
    { name: "sunflowers", count: 80, train: 0, val: 0 },
    { name: "tulips", count: 80, train: 0, val: 0 },
  ],
  rejected_count: 1, rejected: [{ path: "roses/notes.txt", code: "not_an_image", message: "roses/notes.txt is not a JPEG or PNG image." }],
  duplicate_count: 0, trainable: true, not_trainable_reason: null, ingest: { done: 401, total: 401, error: null }, error: null, created_at: at, updated_at: later,
};

export const exampleImageUploaded: z.output<typeof imageUploadResponse> = {
  sha256: EXAMPLE_IDS.sha256, label: "daisy", filename: "daisy_001.jpg", width: 320, height: 240, format: "jpeg", bytes: 48_213, dataset_version: 4,
};

export const exampleUpload: z.output<typeof uploadSchema> = {
  upload_id: EXAMPLE_IDS.upload, part_size: 67_108_864, filename: "flowers.zip", status: "open", max_parts: 10_000,
  parts: [{ n: 1, etag: "2f1e0b7d6c5a4938b7a6f5e4d3c2b1a0", bytes: 67_108_864 }], received_bytes: 67_108_864,
};

const exampleConfig: z.output<typeof jobSchema>["config"] = {
  kind: "train",
  head: { type: "auto", folds: 5 },
  hyperparameters: {
    epochs: 100, batch_size: 32, learning_rate: 0.001, optimizer: "adam", weight_decay: 0.1, label_smoothing: 0.1, validation_fraction: 0.2,
    use_dataset_split: true, seed: 42, early_stopping_patience: 15, class_weighting: "balanced",
  },
  augmentation: { views: 0, tta: "none" },
};

export const exampleJob: z.output<typeof jobSchema> = {
  id: EXAMPLE_IDS.job, dataset_id: EXAMPLE_IDS.dataset, dataset_version: 3, backbone: "mobilenet_v2", config: exampleConfig, status: "running",
  attempt: 1, max_attempts: 3, progress: { phase: "training", done: 2, total: 100 },
  metrics: { epochs: [
    { epoch: 1, train_loss: 1.21, val_loss: 0.94, train_accuracy: 0.61, val_accuracy: 0.74 },
    { epoch: 2, train_loss: 0.83, val_loss: 0.71, train_accuracy: 0.79, val_accuracy: 0.81 },
  ] },
  skipped: [], model_id: null, error: null, created_at: at, updated_at: later, started_at: at, finished_at: null,
};

export const exampleModel: z.output<typeof modelSchema> = {
  id: EXAMPLE_IDS.model, job_id: EXAMPLE_IDS.job, dataset_id: EXAMPLE_IDS.dataset, dataset_version: 3, backbone: "mobilenet_v2",
  labels: ["daisy", "dandelion"],
  metrics: {
    accuracy: 0.9375,
    per_class: [
      { label: "daisy", precision: 0.9412, recall: 0.9412, f1: 0.9412, support: 17 },
      { label: "dandelion", precision: 0.9333, recall: 0.9333, f1: 0.9333, support: 15 },
    ],
    confusion_matrix: [[16, 1], [1, 14]],
    ece: 0.041,
    misclassified: [{ sha256: EXAMPLE_IDS.otherSha256, path: "daisy/daisy_017.jpg", label: "daisy", predicted: "dandelion", probability: 0.71 }],
    misclassified_count: 2,
    val_count: 32,
  },
  created_at: later, updated_at: later,
};

export const exampleComparison: z.output<typeof modelComparisonSchema> = {
  a: EXAMPLE_IDS.model, b: EXAMPLE_IDS.otherModel, n: 80, accuracy_a: 0.9, accuracy_b: 0.85, only_a_right: 7, only_b_right: 3, both_right: 65, both_wrong: 5, p_value: 0.3438,
};

export const examplePrediction: z.output<typeof predictionSchema> = {
  model_id: EXAMPLE_IDS.model,
  predictions: [[{ label: "daisy", probability: 0.962 }, { label: "dandelion", probability: 0.038 }]],
  timings_ms: { head_load: 0, decode: 7, preprocess: 3, embed: 78, head: 1, total: 90 },
};

export const exampleAlias: z.output<typeof aliasSchema> = {
  name: "prod", model_id: EXAMPLE_IDS.model, created_at: at, updated_at: later, previous_model_id: EXAMPLE_IDS.otherModel,
  history: [{ model_id: EXAMPLE_IDS.model, previous_model_id: EXAMPLE_IDS.otherModel, switched_at: later }, { model_id: EXAMPLE_IDS.otherModel, previous_model_id: null, switched_at: at }],
};

export const exampleLease: z.output<typeof leasedJobSchema> = {
  job: { id: EXAMPLE_IDS.job, project_id: EXAMPLE_IDS.project, dataset_id: EXAMPLE_IDS.dataset, dataset_version: 3, attempt: 1, max_attempts: 3, config: exampleConfig, model_id: EXAMPLE_IDS.model },
  lease: { token: "lse_4k8m2n6p0q3r7s1t5v9w2x6y0z", expires_at: later, lease_ms: 120_000, heartbeat_ms: 20_000 },
  backbone: {
    id: "mobilenet_v2", name: "mobilenet_v2", builtin: true, weights_version: "nsfwjs-4.4.0-mobilenet_v2", format: "layers-model",
    spec: { name: "mobilenet_v2", feature_layer: "block_13_expand_relu", input_size: [224, 224], normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, pooling: "avg", resize: "squash" },
  },
  images: [{ sha256: EXAMPLE_IDS.sha256, label: "daisy", split: "auto", path: "daisy/daisy_001.jpg" }],
};

/** `{<items>: [example], next_cursor}`: a page of a list. */
export const page = <K extends string, T>(key: K, item: T) => ({ [key]: [item], next_cursor: "eyJ0IjoiMjAyNi0xMi0wMSJ9" }) as { [P in K]: T[] } & { next_cursor: string | null };
