/**
 * The edgetune SDK: `new Edgetune({ url, apiKey })`. Works in Node 20, browsers and Workers; `sdk/node.ts` adds
 * folders and file paths for Node.
 */
export { Edgetune, Datasets, Jobs, Models, Aliases, Keys, Webhooks, Backbones, zipSource, blobSource, bytesSource } from "./client";
export type { UploadSource, UploadOptions, UploadProgress, ResumeStore, WaitOptions, JobEvent, EventsOptions, PredictInput, PredictOptions } from "./client";
export { EdgetuneError, isAbortError } from "./errors";
export { HttpClient, parseRetryAfter, sleep } from "./http";
export type { ClientOptions, RequestOptions, RetryInfo } from "./http";
export { paginate, collect } from "./pagination";
export type { Page } from "./pagination";
export { parseEventStream } from "./sse";
export type { ServerSentEvent } from "./sse";
export { storedZipSize, zipEntries, splitIntoParts, MAX_STREAMED_ZIP_BYTES } from "./zip-stream";
export type { ZipSourceEntry } from "./zip-stream";
export { verifyWebhook, signWebhook, WebhookSignatureError, SIGNATURE_HEADER, DEFAULT_TOLERANCE_S } from "./webhook-signature";
export type * from "./types";
