/**
 * The one error model (../shared API.md): every failure leaves as
 * `{"error": {"code": "snake_case_code", "message": "what went wrong and how to fix it", "details": {...}}}`.
 *
 * `ERROR_STATUS` is the catalogue: every code the API can answer, each with the one HTTP status it always has. The
 * OpenAPI document publishes its keys as the `code` enum, `ApiError` takes its status from it, and domain errors
 * (images, zips, heads, inference) carry catalogue codes so the Worker's error handler maps them to HTTP in one place.
 * Runs in workerd and Node.
 *
 * Choices where two statuses could fit, so that one condition has one code and one code one status:
 * - `malformed_json` / `malformed_multipart` (400): a body that cannot be parsed at all, on every route (there used to be
 *   `malformed_request` and `invalid_multipart` for the same conditions).
 * - image content (`unsupported_format`, `too_many_pixels`, `corrupt_image`, ...) is 422 on upload AND on predict: the
 *   request's media type was acceptable (that is what 415 `unsupported_media_type` is for) and its size within limits
 *   (413), but the image inside cannot be used. A 20 kB PNG that declares 100 MP is not a large body.
 */
export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 410 | 411 | 413 | 415 | 422 | 429 | 500 | 502 | 503;

export const ERROR_STATUS = {
  // ---- the request itself (400)
  invalid_request: 400,
  malformed_json: 400,
  malformed_multipart: 400,
  empty_body: 400,
  invalid_content_length: 400,
  part_too_small: 400,
  invalid_label: 400,
  invalid_filename: 400,
  invalid_base64: 400,
  invalid_embedding_records: 400,
  no_images: 400,
  no_parts: 400,
  missing_part: 400,
  invalid_part_size: 400,
  invalid_cursor: 400,
  missing_lease_token: 400,
  // ---- who is asking (401, 403)
  missing_api_key: 401,
  invalid_api_key: 401,
  invalid_runner_token: 401,
  admin_key_required: 403,
  missing_runner_token: 401,
  scope_required: 403,
  quota_exceeded: 403,
  not_leased: 403,
  // ---- what is asked for (404)
  route_not_found: 404,
  dataset_not_found: 404,
  upload_not_found: 404,
  job_not_found: 404,
  key_not_found: 404,
  model_not_found: 404,
  alias_not_found: 404,
  webhook_not_found: 404,
  backbone_not_found: 404,
  backbone_file_not_found: 404,
  image_not_found: 404,
  artifact_not_found: 404,
  runner_not_found: 404,
  project_not_found: 404,
  diagnostics_not_found: 404,
  // ---- the state of a resource (409)
  in_use: 409,
  dataset_in_use: 409,
  dataset_not_trainable: 409,
  duplicate_image: 409,
  upload_not_open: 409,
  path_taken: 409,
  backbone_in_use: 409,
  backbone_name_reserved: 409,
  builtin_backbone: 409,
  backbone_deleted: 409,
  backbone_too_large: 409,
  model_not_ready: 409,
  model_artifacts_missing: 409,
  artifacts_missing: 409,
  lease_lost: 409,
  admin_key_not_deletable: 409,
  builtin_file_mismatch: 409,
  models_not_comparable: 409,
  evaluation_missing: 409,
  evaluation_too_large: 409,
  // ---- sizes (411, 413)
  length_required: 411,
  payload_too_large: 413,
  too_many_images: 413,
  too_many_embeddings: 413,
  model_too_large: 413,
  model_json_too_large: 413,
  // ---- media types (415)
  unsupported_media_type: 415,
  // ---- content that cannot be used (422): images (ImageError codes)
  empty_file: 422,
  not_an_image: 422,
  unsupported_format: 422,
  truncated_image: 422,
  corrupt_image: 422,
  too_many_pixels: 422,
  too_many_scans: 422,
  // ---- content that cannot be used (422): archives (ZipFormatError codes)
  not_a_zip: 422,
  corrupt_zip: 422,
  corrupt_entry: 422,
  too_many_entries: 422,
  encrypted_entry: 422,
  unsupported_compression: 422,
  entry_too_large: 422,
  zip_bomb: 422,
  // ---- content that cannot be used (422): models and embeddings
  model_json_missing: 422,
  model_json_invalid: 422,
  unsupported_model_format: 422,
  unsupported_input_shape: 422,
  input_size_mismatch: 422,
  extra_input_sizes_builtin_only: 422,
  feature_layer_not_found: 422,
  feature_layer_not_spatial: 422,
  weight_file_missing: 422,
  weight_size_mismatch: 422,
  too_many_weight_files: 422,
  model_layer_not_allowed: 422,
  model_op_not_allowed: 422,
  model_control_flow: 422,
  model_function_library: 422,
  model_dynamic_shape: 422,
  model_fetch_failed: 422,
  url_not_allowed: 422,
  url_fetch_failed: 422,
  embedding_dim_mismatch: 422,
  job_too_costly: 422,
  fine_tune_unsupported: 422,
  // ---- too many requests (429)
  rate_limited: 429,
  // ---- our side (500, 503)
  internal_error: 500,
  model_head_invalid: 500,
  model_backbone_mismatch: 500,
  archive_missing: 500,
  inference_unavailable: 503,
  edge_busy: 503,
  backbone_unavailable: 503,
  runners_disabled: 503,
  weak_admin_key: 503,
} as const satisfies Record<string, ErrorStatus>;

export type ErrorCode = keyof typeof ERROR_STATUS;
export const ERROR_CODES = Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]];

export const isErrorCode = (code: unknown): code is ErrorCode => typeof code === "string" && Object.hasOwn(ERROR_STATUS, code);

export class ApiError extends Error {
  readonly status: ErrorStatus;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ApiError";
    this.status = ERROR_STATUS[code];
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/** The resources that have a `<what>_not_found` code. */
export type NotFoundSubject = { [C in ErrorCode]: C extends `${infer What}_not_found` ? What : never }[ErrorCode];

export const notFound = (what: NotFoundSubject, id: string) =>
  new ApiError(`${what}_not_found`, `No ${what.replace(/_/g, " ")} with id '${id}' in this project. List them with GET to see valid ids.`, { id });

/**
 * A failure of a module that knows nothing of HTTP (image pipeline, zip reader, head format, inference engine). Its
 * `code` is a catalogue code; the Worker's error handler answers it with that code's status.
 */
export class DomainError extends Error {
  details?: Record<string, unknown>;
  constructor(
    readonly code: ErrorCode,
    message: string,
    details?: Record<string, unknown>,
  ) {
    super(message);
    this.details = details;
  }
}

/**
 * Says which input a domain error is about (`Image 3 ('a.jpg'): ...` with `{index: 3}` in details) and rethrows it
 * as the same error: the caller knows the context, the error handler knows the status. An `ApiError` passes unchanged.
 */
export function withContext<E>(error: E, where: string, details: Record<string, unknown>): E {
  if (error instanceof Error && !(error instanceof ApiError)) {
    error.message = where ? `${where}: ${error.message}` : error.message;
    const target = error as Error & { details?: Record<string, unknown> };
    target.details = { ...details, ...(target.details ?? {}) };
  }
  return error;
}
