/**
 * The one error model (../shared API.md): every failure leaves as
 * `{"error": {"code": "snake_case_code", "message": "what went wrong and how to fix it", "details": {...}}}`.
 * Runs in workerd and Node: the runner raises the same class for API answers it cannot act on.
 */
export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 410 | 411 | 413 | 415 | 422 | 429 | 500 | 502 | 503;

export class ApiError extends Error {
  constructor(
    readonly status: ErrorStatus,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ApiError";
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

export const notFound = (what: string, id: string) =>
  new ApiError(404, `${what}_not_found`, `No ${what.replace(/_/g, " ")} with id '${id}' in this project. List them with GET to see valid ids.`, { id });
