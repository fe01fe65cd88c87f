/**
 * The four body forms of a prediction request (../shared API.md), read into one `PredictInput`:
 *   image bytes (`image/jpeg`, `image/png`, or `application/octet-stream`: the bytes decide the format),
 *   `multipart/form-data` with one or more files (any field names, in order),
 *   JSON `{"images": ["<base64 or data: URL>", ...]}`, or JSON `{"embeddings": [[...], ...]}`.
 * The body is read with a byte limit that holds without a Content-Length; the number of inputs is bounded too.
 */
import { ApiError } from "../../shared/errors";
import { predictJsonRequest } from "../../shared/schemas";
import { readBodyLimited } from "./bodies";
import { MAX_EMBEDDINGS_PER_REQUEST, MAX_IMAGES_PER_REQUEST, type ImageInput, type PredictInput } from "./inference";

/** Whole request body. 16 images of 1.5 MB in base64 JSON fit; a 12 MP JPEG (about 5 MB) alone fits as bytes. */
export const MAX_PREDICT_BODY_BYTES = 32 * 1024 * 1024;

const IMAGE_TYPES = ["image/jpeg", "image/jpg", "image/png", "application/octet-stream"];
const SUPPORTED = "image/jpeg or image/png bytes, multipart/form-data with image files, or application/json with {\"images\": [base64...]} or {\"embeddings\": [[...]]}";

/** Reads and bounds the request's inputs; the route then hands them to `predict`. */
export async function readPredictInput(request: Request): Promise<PredictInput> {
  const contentType = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (!contentType) throw new ApiError("unsupported_media_type", `Send a Content-Type header: ${SUPPORTED}.`, { supported: supportedTypes() });
  const kind = IMAGE_TYPES.includes(contentType) ? "image" : contentType === "multipart/form-data" ? "multipart" : contentType === "application/json" ? "json" : null;
  if (!kind) {
    throw new ApiError("unsupported_media_type", `Content-Type '${contentType}' is not accepted here. Send ${SUPPORTED}.`, { content_type: contentType, supported: supportedTypes() });
  }
  const body = await readBodyLimited(request, MAX_PREDICT_BODY_BYTES, "prediction request");
  if (kind === "image") return { kind: "images", images: [{ bytes: body, index: 0 }] };
  if (kind === "multipart") return readMultipart(body, request.headers.get("content-type")!);
  return readJson(body);
}

const supportedTypes = () => ["image/jpeg", "image/png", "application/octet-stream", "multipart/form-data", "application/json"];

function tooManyImages(count: number): ApiError {
  return new ApiError("too_many_images", `The request holds ${count} images; at most ${MAX_IMAGES_PER_REQUEST} are accepted per request. Split them over several requests.`, { count, limit: MAX_IMAGES_PER_REQUEST });
}

async function readMultipart(body: Uint8Array, contentType: string): Promise<PredictInput> {
  let form: FormData;
  try {
    form = await new Response(body, { headers: { "content-type": contentType } }).formData();
  } catch {
    throw new ApiError("malformed_multipart", "The multipart/form-data body cannot be parsed: check the boundary in Content-Type and the part headers.");
  }
  const files: File[] = [];
  for (const [, value] of form.entries()) if (typeof value !== "string") files.push(value as File);
  if (files.length === 0) throw new ApiError("no_images", "The form holds no file. Attach each image as a file part (curl -F 'image=@photo.jpg').");
  if (files.length > MAX_IMAGES_PER_REQUEST) throw tooManyImages(files.length);
  const images: ImageInput[] = await Promise.all(
    files.map(async (file, index) => ({ bytes: new Uint8Array(await file.arrayBuffer()), index, ...(file.name ? { filename: file.name } : {}) })),
  );
  return { kind: "images", images };
}

function readJson(body: Uint8Array): PredictInput {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new ApiError("malformed_json", "The body is not valid JSON. Send {\"images\": [\"<base64>\", ...]} or {\"embeddings\": [[...], ...]}.");
  }
  // Bounds first: a count over the limit is a 413, whatever else is wrong with the items.
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const { images, embeddings } = value as { images?: unknown; embeddings?: unknown };
    if (Array.isArray(images) && images.length > MAX_IMAGES_PER_REQUEST) throw tooManyImages(images.length);
    if (Array.isArray(embeddings) && embeddings.length > MAX_EMBEDDINGS_PER_REQUEST) {
      throw new ApiError("too_many_embeddings", `The request holds ${embeddings.length} embeddings; at most ${MAX_EMBEDDINGS_PER_REQUEST} are accepted per request.`, { count: embeddings.length, limit: MAX_EMBEDDINGS_PER_REQUEST });
    }
  }
  const parsed = predictJsonRequest.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => ({ path: issue.path.join(".") || "(body)", message: issue.message }));
    throw new ApiError("invalid_request", `body field '${issues[0]!.path}': ${issues[0]!.message}. Send {"images": ["<base64>", ...]} or {"embeddings": [[...], ...]}.`, { target: "json", issues });
  }
  if ("embeddings" in parsed.data) return { kind: "embeddings", embeddings: parsed.data.embeddings };
  return { kind: "images", images: parsed.data.images.map((text, index) => ({ bytes: decodeBase64(text, index), index })) };
}

/** Standard base64 (padding optional, whitespace ignored) or a `data:image/...;base64,` URL. */
function decodeBase64(text: string, index: number): Uint8Array {
  const payload = text.startsWith("data:") ? text.slice(text.indexOf(",") + 1) : text;
  const compact = payload.replace(/\s+/g, "");
  const invalid = () => new ApiError("invalid_base64", `images.${index} is not valid base64. Send each image's bytes base64-encoded (standard alphabet), or as a data: URL.`, { index, path: `images.${index}` });
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) throw invalid();
  try {
    const binary = atob(compact);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    throw invalid();
  }
}
