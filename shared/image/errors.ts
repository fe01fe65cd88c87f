import { DomainError } from "../errors";

/**
 * The one error type of the image pipeline. `code` is stable and machine-readable (it reaches API clients and the
 * ingestion report as `rejected[].code`); `message` says what is wrong with the file and what the user can do.
 * `details` carries the numbers behind the verdict (declared size, the limit) for the API's `error.details`.
 */
export type ImageErrorCode =
  | "empty_file"
  | "not_an_image"
  | "unsupported_format"
  | "truncated_image"
  | "corrupt_image"
  | "too_many_pixels"
  | "too_many_scans";

export class ImageError extends DomainError {
  declare readonly code: ImageErrorCode;
  constructor(code: ImageErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
    this.name = "ImageError";
  }
}

/** True for an `ImageError`, also when two bundles each carry their own copy of the class. */
export function isImageError(error: unknown): error is ImageError {
  return error instanceof ImageError || (error instanceof Error && error.name === "ImageError" && "code" in error);
}
