/**
 * Resource types, inferred from the zod schemas the API validates with (shared/schemas.ts): one definition, so the
 * SDK cannot drift from the server. Type-only imports: no zod code ends up in the SDK bundle.
 */
import type { z } from "zod";
import type {
  aliasSchema, apiKeySchema, backboneSpecSchema, bundleManifestSchema, createJobRequest, datasetSchema, headSpecSchema, hyperparametersSchema, jobSchema, modelSchema, predictionSchema, rejectionSchema, uploadSchema,
} from "../shared/schemas";

export type Dataset = z.infer<typeof datasetSchema>;
export type Rejection = z.infer<typeof rejectionSchema>;
export type Upload = z.infer<typeof uploadSchema>;
export type Job = z.infer<typeof jobSchema>;
export type JobStatus = Job["status"];
export type CreateJobParams = z.input<typeof createJobRequest>;
export type HeadSpec = z.input<typeof headSpecSchema>;
export type Hyperparameters = z.input<typeof hyperparametersSchema>;
export type Model = z.infer<typeof modelSchema>;
/** `edgetune.json`: the self-contained bundle's manifest (labels, backbone, preprocessing, files to download). */
export type BundleManifest = z.infer<typeof bundleManifestSchema>;
export type Prediction = z.infer<typeof predictionSchema>;
export type Alias = z.infer<typeof aliasSchema>;
export type ApiKey = z.infer<typeof apiKeySchema>;
export type BackboneSpec = z.infer<typeof backboneSpecSchema>;

/** `POST /v1/webhooks` answer and list items (../shared API.md, "Webhooks"); `secret` only on creation. */
export interface Webhook {
  id: string;
  url: string;
  events: string[];
  secret?: string;
  created_at: string;
  updated_at?: string;
}
export interface WebhookDelivery {
  id: string;
  webhook_id: string;
  /** The event's id (also `id` in the delivered body): one delivery per webhook and event. */
  event_id: string;
  event: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  updated_at?: string;
  delivered_at?: string | null;
}

/** One page of a list route: `{"<resources>": [...], "next_cursor": "..." | null}`. */
export interface ListParams {
  limit?: number;
  cursor?: string;
  signal?: AbortSignal;
}

export interface CallOptions {
  signal?: AbortSignal;
}
