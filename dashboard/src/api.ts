/**
 * The dashboard's only way to the platform: the edgetune SDK (sdk/) against the public /v1 API of the same origin,
 * with the API key the user signed in with (kept in sessionStorage: this tab only, gone when it closes).
 * Routes the SDK has no method for yet (dataset images, diagnostics, alias rollback, backbone import) go through the
 * SDK's own HTTP client, so every call shares its error type and retry policy.
 */
import { Edgetune, EdgetuneError, blobSource, paginate, zipSource, type JobEvent, type ResumeStore, type UploadProgress } from "../../sdk/index";
import { readBlob, zipEntries } from "../../sdk/zip-stream";

export { EdgetuneError as ApiError, paginate };
export type { JobEvent, UploadProgress };

const KEY_ITEM = "edgetune.api_key";

export const session = {
  get key(): string | null {
    try {
      return sessionStorage.getItem(KEY_ITEM);
    } catch {
      return null;
    }
  },
  signIn(key: string) {
    sessionStorage.setItem(KEY_ITEM, key);
  },
  signOut() {
    sessionStorage.removeItem(KEY_ITEM);
    cached = null;
  },
};

let cached: { key: string | null; client: Edgetune } | null = null;
/** The SDK client for the signed-in key (or `key`, to check one before signing in). */
export function sdk(key?: string): Edgetune {
  const k = key ?? session.key;
  if (key !== undefined) return new Edgetune({ url: location.origin, apiKey: k ?? undefined, maxRetries: 1 });
  if (!cached || cached.key !== k) cached = { key: k, client: new Edgetune({ url: location.origin, apiKey: k ?? undefined }) };
  return cached.client;
}

const onUnauthorized = new Set<() => void>();
export const whenSignedOut = (fn: () => void) => onUnauthorized.add(fn);

/** Runs an SDK call; a 401 (key revoked meanwhile) signs the tab out. */
export async function call<T>(fn: (client: Edgetune) => Promise<T>): Promise<T> {
  try {
    return await fn(sdk());
  } catch (err) {
    if (err instanceof EdgetuneError && err.status === 401) for (const handler of onUnauthorized) handler();
    throw err;
  }
}

/** A route the SDK has no method for, through its HTTP client. */
export function api<T = any>(method: string, path: string, options: { json?: unknown; body?: BodyInit; headers?: Record<string, string>; query?: Record<string, string | number | undefined> } = {}): Promise<T> {
  return call((c) => c.http.json<T>(method, path, options));
}

/** Every item of a paginated list (the SDK's `all()` iterators), up to `max`. */
export async function collectAll<T>(items: AsyncIterable<T>, max = 500): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) {
    out.push(item);
    if (out.length >= max) break;
  }
  return out;
}
export const listAll = <T>(list: (c: Edgetune) => AsyncIterable<T>, max = 500) => call((c) => collectAll(list(c), max));

/** An image's bytes as an object URL (an <img src> cannot send the API key). Cached per image for the tab. */
const imageUrls = new Map<string, Promise<string>>();
export function imageUrl(datasetId: string, sha256: string): Promise<string> {
  const cacheKey = `${datasetId}/${sha256}`;
  let url = imageUrls.get(cacheKey);
  if (!url) {
    url = call((c) => c.http.raw("GET", `/v1/datasets/${encodeURIComponent(datasetId)}/images/${sha256}`)).then(async (res) => URL.createObjectURL(await res.blob()));
    url.catch(() => imageUrls.delete(cacheKey));
    imageUrls.set(cacheKey, url);
  }
  return url;
}

/**
 * A model's self-contained bundle (the files `edgetune export` writes: backbone, head, labels, edgetune.mjs with
 * predict(), examples) as one zip download, `MODEL_ID/...` inside. Files are fetched one by one as the manifest lists
 * them, then stored uncompressed (weights barely compress) by the SDK's zip writer.
 */
export async function downloadBundle(modelId: string) {
  const manifest = await call((c) => c.models.bundleManifest(modelId));
  const blobs: { name: string; blob: Blob }[] = [];
  for (const file of manifest.files) blobs.push({ name: `${modelId}/${file.path}`, blob: await call((c) => c.models.bundleFile(file)).then((res) => res.blob()) });
  const entries = blobs.map(({ name, blob }) => ({ name, size: blob.size, mtimeMs: Date.now(), read: () => readBlob(blob) }));
  const chunks: Uint8Array[] = [];
  for await (const chunk of zipEntries(entries)) chunks.push(chunk);
  const url = URL.createObjectURL(new Blob(chunks as BlobPart[], { type: "application/zip" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = `${modelId}-bundle.zip`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Follows a job's events (the SDK reconnects after drops with Last-Event-ID) until `end` or `signal` aborts. */
export async function followEvents(jobId: string, onEvent: (event: JobEvent) => void, signal: AbortSignal): Promise<void> {
  try {
    for await (const event of sdk().jobs.events(jobId, { signal })) {
      onEvent(event);
      if (event.type === "end") return;
    }
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  }
}

/** Interrupted multipart uploads are remembered per dataset for the tab: choosing the same file again resumes. */
function resumeStore(datasetId: string): ResumeStore {
  const item = `edgetune.upload.${datasetId}`;
  return {
    load: async () => JSON.parse(sessionStorage.getItem(item) ?? "null"),
    save: async (state) => sessionStorage.setItem(item, JSON.stringify(state)),
    clear: async () => sessionStorage.removeItem(item),
  };
}

/**
 * Archives up to this size go in one request. Larger ones go in parts of PART_BYTES (R2's minimum part is 5 MiB),
 * which is also how often the progress bar moves for them; 3 parts in flight keep memory near 24 MiB.
 */
const SINGLE_REQUEST_MAX_BYTES = 8 * 1024 * 1024;
const PART_BYTES = 8 * 1024 * 1024;

/** Uploads a zip (a File or Blob), or a folder's files zipped on the fly, resuming an interrupted multipart upload. */
export function uploadArchive(datasetId: string, input: Blob | { files: [string, File][] }, onProgress: (progress: UploadProgress) => void, signal?: AbortSignal) {
  const source =
    input instanceof Blob
      ? blobSource(input)
      : zipSource(
          input.files.map(([name, file]) => ({
            name,
            size: file.size,
            mtimeMs: file.lastModified,
            read: async function* () {
              yield new Uint8Array(await file.arrayBuffer());
            },
          })),
          "folder.zip",
        );
  return call((c) => c.datasets.upload(datasetId, source, { onProgress, signal, resume: resumeStore(datasetId), singleRequestMaxBytes: SINGLE_REQUEST_MAX_BYTES, partBytes: PART_BYTES }));
}
