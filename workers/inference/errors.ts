/** Errors of the edge inference engine, in a module of their own so the app's error handler can map them without loading tfjs. */

/** Thrown when the WASM backend cannot be brought up; the error handler (workers/app.ts) answers 503 inference_unavailable. */
export class InferenceUnavailableError extends Error {
  readonly code = "inference_unavailable";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InferenceUnavailableError";
  }
}
