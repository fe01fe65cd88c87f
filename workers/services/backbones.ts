/**
 * Backbones: the builtin catalog (shared/catalog.ts) plus the project's own tfjs models stored in R2 under
 * `projects/{projectId}/backbones/{id}/` as `model.json` (one manifest group naming `weights.bin`) and `weights.bin`.
 */
import { and, desc, eq, inArray, sql } from "drizzle-orm";
import { concatBytes } from "../../shared/bytes";
import { bytesToHex } from "../../shared/wire";
import { BUILTIN_BACKBONES, findBuiltinBackbone, type CatalogEntry } from "../../shared/catalog";
import { ApiError, withContext } from "../../shared/errors";
import { newId, sha256Hex } from "../../shared/ids";
import { auditModel } from "../../shared/backbone/audit";
import { estimateModelCost, type ModelCost } from "../../shared/backbone/cost";
import { featureLayers } from "../../shared/catalog";
import type { BackboneSpec } from "../../shared/schemas";
import { backbones, jobs, models } from "../db/schema";
import type { Db } from "./db";
import { afterCursor, decodeCursor, invalidCursor, newestFirst, pageOf, type PageQuery } from "./pagination";
import { nowIso } from "./db";
import { backboneFileKey, backboneObjectPrefix, backboneUploadKey, builtinObjectPrefix, type BackboneFile } from "./object-keys";
import { checkGroupBytes, checkSpecAgainstModel, parseModelJson, summarizeModel, withSingleWeightsFile, type ModelFormat, type ModelJson, type ModelSummary } from "./model-validation";
import { edgeRefusal, type BackboneCost } from "./edge-budget";
import { FETCH_FAILED_MESSAGE, UrlFetchError, UrlRefusedError, policedFetch, sameOriginRelative, type UrlPolicy } from "./url-policy";
import { ZipFormatError, findOverlappingEntries, r2Source, readCentralDirectory, streamEntry, vetEntrySize, type ByteSource, type ZipEntry } from "./zip-reader";
import { receiveStreamedForm } from "./streamed-form";

export interface ResolvedBackbone {
  id: string;
  name: string;
  builtin: boolean;
  spec: BackboneSpec;
  /** Part of the embedding cache key: changes when the weights do. */
  weightsVersion: string;
  /** R2 prefix holding `model.json` + `weights.bin` (user backbones; builtin ones are uploaded by runners). */
  objectPrefix: string;
  format: "layers-model" | "graph-model";
  /** What a user backbone costs to run (estimated at import); null for builtin backbones, which are vetted. */
  cost: BackboneCost | null;
}

const costOfRow = (row: { paramCount: number; flops: number | null; peakActivationBytes: number | null }): BackboneCost => ({ flops: row.flops, floatWeightBytes: row.paramCount * 4, peakActivationBytes: row.peakActivationBytes });


/** A backbone id of the project or a builtin backbone's name or id; 404 otherwise. */
export async function resolveBackbone(db: Db, projectId: string, nameOrId: string): Promise<ResolvedBackbone> {
  const builtin = findBuiltinBackbone(nameOrId);
  if (builtin) return { id: builtin.id, name: builtin.name, builtin: true, spec: builtin.spec, weightsVersion: builtin.weightsVersion, objectPrefix: builtinObjectPrefix(builtin.id), format: "layers-model", cost: null };
  const row = await db.select().from(backbones).where(and(eq(backbones.id, nameOrId), eq(backbones.projectId, projectId))).get();
  if (!row) {
    throw new ApiError("backbone_not_found", `No backbone '${nameOrId}': use a builtin name (${BUILTIN_BACKBONES.map((b) => b.name).join(", ")}) or the id of one of your backbones (GET /v1/backbones).`, { backbone: nameOrId });
  }
  return { id: row.id, name: row.name, builtin: false, spec: row.spec as BackboneSpec, weightsVersion: row.id, objectPrefix: row.objectPrefix, format: row.format as ResolvedBackbone["format"], cost: costOfRow(row) };
}

// ---------------------------------------------------------------- user backbones: import, read, delete

export type BackboneRow = typeof backbones.$inferSelect;

/**
 * Upload limits. A Worker isolate has 128 MB of memory. The zip form never holds its body: the multipart body streams
 * into R2 (services/streamed-form.ts, one 8 MiB part buffer), then the zip is read back in ranges and its weight files
 * inflate as streams into R2 (one inflater chunk, 64 KB, at a time): about 9 MB at peak, whatever the model's size
 * (model.json, at most MAX_MODEL_JSON_BYTES, is the one entry held whole). The URL form streams each fetched file
 * into R2 as it arrives. 100 MB bounds the R2 bytes and the time one import takes.
 */
export const MAX_MODEL_BODY_BYTES = 100 * 1000 * 1000;
export const MAX_WEIGHT_BYTES = 100 * 1000 * 1000;
/** A graph model's topology can be a few MB; 20 MB is far past any real model.json and bounds the JSON parse. */
export const MAX_MODEL_JSON_BYTES = 20 * 1000 * 1000;
/** Weight files per model: every file of the URL form is a subrequest (Workers allow 1,000 per request on paid plans). */
export const MAX_WEIGHT_FILES = 200;
/** The whole URL import (model.json + every weight file) must finish within this time. */
export const MODEL_FETCH_TIMEOUT_MS = 90_000;
const MAX_ZIP_ENTRIES = 10_000;


export async function getBackboneRow(db: Db, projectId: string, id: string): Promise<BackboneRow | null> {
  return (await db.select().from(backbones).where(and(eq(backbones.id, id), eq(backbones.projectId, projectId))).get()) ?? null;
}

/**
 * One page of backbones: the builtin ones first (in catalog order), then the project's own, newest first. A builtin
 * entry's position is ("~", id): "~" sorts after every ISO timestamp, so a cursor inside the builtins continues into
 * all of the project's rows, and one cursor format serves both parts.
 */
export async function listBackbones(db: Db, projectId: string, page: PageQuery) {
  const BUILTIN_POSITION = "~";
  const position = page.cursor === undefined ? null : decodeCursor(page.cursor);
  let builtins: CatalogEntry[] = [...BUILTIN_BACKBONES];
  if (position) {
    const at = position.createdAt === BUILTIN_POSITION ? builtins.findIndex((b) => b.id === position.id) : builtins.length - 1;
    if (at < 0) throw invalidCursor();
    builtins = builtins.slice(at + 1);
  }
  builtins = builtins.slice(0, page.limit + 1);
  const rowsWanted = page.limit + 1 - builtins.length;
  const rows =
    rowsWanted > 0
      ? await db
          .select()
          .from(backbones)
          .where(and(eq(backbones.projectId, projectId), position && position.createdAt !== BUILTIN_POSITION ? afterCursor(backbones.createdAt, backbones.id, page.cursor) : undefined))
          .orderBy(...newestFirst(backbones.createdAt, backbones.id))
          .limit(rowsWanted)
          .all()
      : [];
  const entries: (CatalogEntry | BackboneRow)[] = [...builtins, ...rows];
  const { items, nextCursor } = pageOf(entries, page.limit, (e) => ("projectId" in e ? { createdAt: e.createdAt, id: e.id } : { createdAt: BUILTIN_POSITION, id: e.id }));
  return { backbones: items.map(backboneView), next_cursor: nextCursor };
}

/** A backbone as the API shows it; builtin ones carry description, source and license, and no counts. */
export function backboneView(entry: BackboneRow | CatalogEntry) {
  if (!("projectId" in entry)) {
    return {
      id: entry.id, name: entry.name, builtin: true, format: "layers-model" as const, spec: entry.spec, param_count: null, weight_bytes: null, cost: null, edge: { servable: true, reason: null },
      description: entry.description, source: entry.source, license: entry.license, created_at: null, updated_at: null,
    };
  }
  const cost = costOfRow(entry);
  const refusal = edgeRefusal(entry.spec as BackboneSpec, cost);
  return {
    id: entry.id, name: entry.name, builtin: false, format: entry.format as ModelFormat, spec: entry.spec as BackboneSpec, param_count: entry.paramCount, weight_bytes: entry.weightBytes,
    cost: entry.flops === null ? null : { flops: entry.flops, float_weight_bytes: cost.floatWeightBytes, peak_activation_bytes: entry.peakActivationBytes },
    edge: { servable: refusal === null, reason: refusal ? `The edge does not serve this backbone: ${refusal.message}.` : null },
    description: null, source: null, license: null, created_at: entry.createdAt, updated_at: entry.updatedAt,
  };
}

/**
 * The weight files of an upload, by the paths its manifest names. `precheck` runs before any byte is written and
 * throws what can be told up front (a missing file, a declared size that cannot match); `chunks` yields a file's bytes.
 */
export interface WeightFiles {
  precheck(modelJson: ModelJson, summary: ModelSummary): void;
  chunks(path: string): AsyncIterable<Uint8Array>;
}

/** The estimate, or null (logged) for a graph the estimator cannot walk: the backbone still imports, unestimated. */
function estimateCost(modelJson: ModelJson, spec: BackboneSpec): ModelCost | null {
  try {
    return estimateModelCost(modelJson, spec.input_size, featureLayers(spec));
  } catch (error) {
    console.warn(`backbone ${spec.name}: no cost estimate: ${error instanceof Error ? error.message : String(error)}`);
    return null;
  }
}

/** A model that passed validation: its summary and its cost at batch 1 (shared/backbone/cost.ts). */
export type ValidatedModel = ModelSummary & { cost: ModelCost | null };

/** Validates a parsed model.json against the spec before any weight byte is read; returns its summary and cost. */
export function validateModel(modelJson: ModelJson, spec: BackboneSpec, file: string): ValidatedModel {
  const summary = summarizeModel(modelJson, file);
  const fileCount = modelJson.weightsManifest.reduce((n, g) => n + g.paths.length, 0);
  if (fileCount > MAX_WEIGHT_FILES) throw new ApiError("too_many_weight_files", `${file} names ${fileCount} weight files; at most ${MAX_WEIGHT_FILES} are accepted. Convert with a larger --weight_shard_size_bytes.`, { file, limit: MAX_WEIGHT_FILES });
  if (summary.weightBytes > MAX_WEIGHT_BYTES) {
    throw new ApiError("model_too_large", `The model's weights take ${summary.weightBytes} bytes; the limit is ${MAX_WEIGHT_BYTES} bytes. Quantize it (tensorflowjs_converter --quantize_uint8) or pick a smaller model.`, { weight_bytes: summary.weightBytes, limit_bytes: MAX_WEIGHT_BYTES });
  }
  // The audit first: what a model may run at all comes before how its spec names its layers.
  auditModel(modelJson, file);
  checkSpecAgainstModel(modelJson, summary.format, spec, file);
  return { ...summary, cost: estimateCost(modelJson, spec) };
}

/**
 * Stores a validated model as a backbone of the project: `weights.bin` (every group's files concatenated in manifest
 * order, streamed so no second copy is held), then `model.json` rewritten to name that one file, then the row. An R2
 * put of a stream that ends early or errors stores nothing, so a failed import leaves no half-written object.
 */
export async function importBackbone(db: Db, bucket: R2Bucket, projectId: string, spec: BackboneSpec, modelJson: ModelJson, summary: ValidatedModel, files: WeightFiles): Promise<BackboneRow> {
  files.precheck(modelJson, summary);
  const id = newId("bb");
  const prefix = backboneObjectPrefix(projectId, id);
  const stream = new FixedLengthStream(summary.weightBytes);
  const put = bucket.put(backboneFileKey(prefix, "weights.bin"), stream.readable, { httpMetadata: { contentType: "application/octet-stream" } });
  const writer = stream.writable.getWriter();
  try {
    for (const [index, group] of modelJson.weightsManifest.entries()) {
      let groupBytes = 0;
      for (const path of group.paths) {
        for await (const chunk of files.chunks(path)) {
          groupBytes += chunk.length;
          // Stop at the first byte too many: a wrong file can be much larger than the model needs.
          if (groupBytes > summary.groupBytes[index]) checkGroupBytes(modelJson, summary, index, groupBytes);
          await writer.write(chunk);
        }
      }
      checkGroupBytes(modelJson, summary, index, groupBytes);
    }
    await writer.close();
    await put;
  } catch (err) {
    await writer.abort(err).catch(() => {});
    await put.catch(() => {});
    throw err;
  }
  try {
    await bucket.put(backboneFileKey(prefix, "model.json"), JSON.stringify(withSingleWeightsFile(modelJson)), { httpMetadata: { contentType: "application/json" } });
    return await db.insert(backbones).values({ id, projectId, name: spec.name, spec, objectPrefix: prefix, format: summary.format, paramCount: summary.paramCount, weightBytes: summary.weightBytes, flops: summary.cost?.flops ?? null, peakActivationBytes: summary.cost?.peakActivationBytes ?? null, createdAt: nowIso() }).returning().get();
  } catch (err) {
    await bucket.delete([backboneFileKey(prefix, "weights.bin"), backboneFileKey(prefix, "model.json")]);
    throw err;
  }
}

/** Deletes a user backbone's row and objects. Models trained on it keep only what their own artifacts hold. */
/** How many dependents a 409 `in_use` names (the count says how many there are in all). */
export const DEPENDENTS_SHOWN = 20;

/**
 * Deletes a backbone. A queued or running job on it always blocks (409 backbone_in_use: it would fail mid-run);
 * models trained on it block unless `force` (409 in_use naming them: after the delete they can only predict from
 * embeddings).
 */
export async function deleteBackbone(db: Db, bucket: R2Bucket, row: BackboneRow, options: { force?: boolean } = {}): Promise<void> {
  const active = await db.select({ id: jobs.id }).from(jobs).where(and(eq(jobs.backbone, row.id), eq(jobs.projectId, row.projectId), inArray(jobs.status, ["queued", "running"]))).limit(1).get();
  if (active) throw new ApiError("backbone_in_use", `Job '${active.id}' is training on this backbone; cancel it (POST /v1/jobs/${active.id}/cancel) before deleting the backbone.`, { job_id: active.id });
  if (!options.force) {
    const [dependents, count] = await Promise.all([
      db.select({ id: models.id }).from(models).where(and(eq(models.projectId, row.projectId), eq(models.backbone, row.id))).limit(DEPENDENTS_SHOWN).all(),
      db.select({ n: sql<number>`count(*)` }).from(models).where(and(eq(models.projectId, row.projectId), eq(models.backbone, row.id))).get(),
    ]);
    if (dependents.length > 0) {
      const n = Number(count?.n ?? dependents.length);
      throw new ApiError("in_use", `${n} model(s) were trained on backbone '${row.id}' (${dependents.map((d) => d.id).join(", ")}${n > dependents.length ? ", ..." : ""}); without it they can predict only from embeddings. Delete them first, or repeat with ?force=true to delete the backbone anyway.`, { dependents: { models: dependents.map((d) => d.id), models_count: n } });
    }
  }
  await db.delete(backbones).where(eq(backbones.id, row.id));
  await bucket.delete([backboneFileKey(row.objectPrefix, "model.json"), backboneFileKey(row.objectPrefix, "weights.bin")]);
}

/**
 * The stored pair of a backbone: its `model.json` (one manifest group, `weights.bin`) and the weight bytes, or null
 * when either object is missing (a builtin backbone no runner has uploaded yet, or a deleted one).
 */
export async function loadBackboneFiles(bucket: R2Bucket, resolved: ResolvedBackbone): Promise<{ modelJson: ModelJson; weightData: ArrayBuffer } | null> {
  const [modelObject, weightObject] = await Promise.all([bucket.get(backboneFileKey(resolved.objectPrefix, "model.json")), bucket.get(backboneFileKey(resolved.objectPrefix, "weights.bin"))]);
  if (!modelObject || !weightObject) {
    await Promise.all([modelObject?.body.cancel(), weightObject?.body.cancel()]);
    return null;
  }
  const [modelJson, weightData] = await Promise.all([modelObject.json<ModelJson>(), weightObject.arrayBuffer()]);
  return { modelJson, weightData };
}

// ---------------------------------------------------------------- the zip form

/** Random access to an uploaded file (a multipart `File`) without copying it whole. */
/**
 * Receives the multipart import form (`spec` text, `model` zip) with the zip streamed into a temporary R2 object, and
 * hands `use` the text fields and the zip as a ranged R2 source; the temporary object is deleted afterwards, whatever
 * `use` does. (A Worker killed in between leaves it under `projects/{p}/uploads/`: nothing reads that prefix back.)
 */
export async function withUploadedModelForm<T>(
  bucket: R2Bucket,
  projectId: string,
  request: Request,
  use: (form: { fields: Map<string, string>; model: ByteSource | null }) => Promise<T>,
): Promise<T> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  const tooLarge = (bytes: number) => new ApiError("payload_too_large", `The upload is ${bytes} bytes; the limit is ${MAX_MODEL_BODY_BYTES} bytes. Quantize the model or import it by URL.`, { limit_bytes: MAX_MODEL_BODY_BYTES });
  if (Number.isFinite(declared) && declared > MAX_MODEL_BODY_BYTES) throw tooLarge(declared);
  if (!request.body) throw new ApiError("empty_body", "The request has no body; send the spec and model fields as multipart/form-data.");
  const key = backboneUploadKey(projectId, newId("bb"));
  const form = await receiveStreamedForm(request.body, request.headers.get("content-type") ?? "", bucket, key, {
    maxBodyBytes: MAX_MODEL_BODY_BYTES,
    maxFieldBytes: 64 * 1024,
    fileField: "model",
    tooLarge,
  });
  try {
    return await use({ fields: form.fields, model: form.file ? r2Source(bucket, key, form.file.size) : null });
  } finally {
    if (form.file) await bucket.delete(key);
  }
}

/** `a/./b/../c` → `a/c`; null when the path climbs out of the archive. */
function normalizePath(path: string): string | null {
  const out: string[] = [];
  for (const part of path.replace(/\\/g, "/").split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) return null;
      out.pop();
    } else out.push(part);
  }
  return out.join("/");
}

/** Restates a zip error for a model upload (which file, what to do); the error handler gives it its status. */
const zipError = (err: unknown, file: string): unknown => {
  if (!(err instanceof ZipFormatError)) return err;
  if (err.code === "not_a_zip") return new ZipFormatError("not_a_zip", `The 'model' file is not a ZIP archive. Zip model.json together with its weight files (e.g. 'zip -r model.zip model.json *.bin') and upload that.`, { file });
  return withContext(err, file, { file });
};

/**
 * Declared inflate ratios above which a model zip's entry is refused unread (entries over 1 MiB; see vetEntrySize).
 * float32 weights deflate to about 0.9 of their size (ratio 1.1), uint8-quantized ones to 1.3 to 2, a pruned model
 * with many zero weights to a few: 20 leaves room for all of them while a 100 KB entry declaring 100 MB (1000:1, what
 * deflate gives for zeros) is refused. JSON topologies compress 10 to 30 times; model.json is capped at 20 MB anyway.
 */
export const MAX_WEIGHT_COMPRESSION_RATIO = 20;
export const MAX_MODEL_JSON_COMPRESSION_RATIO = 100;

/** An entry that inflates past its declared size is cut off at that size: the archive lies about it. */
const inflatesPastDeclared = (entry: ZipEntry) => () =>
  new ZipFormatError("corrupt_entry", `The entry inflates past the ${entry.uncompressedSize} bytes the archive declares: the archive is damaged (or a zip bomb).`, { declared_bytes: entry.uncompressedSize });

/**
 * Opens an uploaded model zip: finds `model.json` (at the root or in a sub-folder: the shallowest one wins) and
 * resolves the manifest's weight paths beside it. Entries are vetted from the central directory before a byte of
 * them is inflated (size and compression ratio, like dataset archives), then inflated as streams: a weight file goes
 * to R2 chunk by chunk, never whole, and stops at its declared size.
 */
export async function openModelZip(source: ByteSource): Promise<{ modelJsonPath: string; modelJson: ModelJson; files: WeightFiles }> {
  let entries: ZipEntry[];
  try {
    entries = await readCentralDirectory(source, MAX_ZIP_ENTRIES);
  } catch (err) {
    throw zipError(err, "model");
  }
  const overlaps = findOverlappingEntries(entries);
  if (overlaps.size > 0) throw new ApiError("corrupt_zip", "Entries of the model zip share bytes (an overlapping-entries zip bomb or a damaged archive); zip the files again.");
  const byPath = new Map<string, ZipEntry>();
  for (const entry of entries) {
    const path = normalizePath(entry.name);
    if (path && !entry.isDirectory && !entry.isSymlink && !path.startsWith("__MACOSX/")) byPath.set(path, entry);
  }
  const candidates = [...byPath.keys()].filter((p) => p === "model.json" || p.endsWith("/model.json")).sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b));
  if (candidates.length === 0) {
    const names = [...byPath.keys()].slice(0, 10);
    throw new ApiError("model_json_missing", `The zip holds no model.json. Put the tfjs model.json (and its weight files beside it) in the zip; it holds: ${names.join(", ") || "(nothing)"}.`, { entries: names });
  }
  const modelJsonPath = candidates[0];
  const folder = modelJsonPath.slice(0, -"model.json".length);
  const modelEntry = byPath.get(modelJsonPath)!;
  if (modelEntry.uncompressedSize > MAX_MODEL_JSON_BYTES) throw new ApiError("model_json_too_large", `${modelJsonPath} is ${modelEntry.uncompressedSize} bytes; the limit is ${MAX_MODEL_JSON_BYTES}.`, { file: modelJsonPath, limit_bytes: MAX_MODEL_JSON_BYTES });
  const vet = (entry: ZipEntry, file: string, maxBytes: number, maxRatio: number) => {
    const refused = vetEntrySize(entry, { maxBytes, maxRatio, what: file === modelJsonPath ? "model.json" : "weight" });
    if (refused) throw zipError(refused, file);
  };
  vet(modelEntry, modelJsonPath, MAX_MODEL_JSON_BYTES, MAX_MODEL_JSON_COMPRESSION_RATIO);
  const stream = (entry: ZipEntry, file: string): AsyncIterable<Uint8Array> => ({
    async *[Symbol.asyncIterator]() {
      try {
        yield* streamEntry(source, entry, entry.uncompressedSize, { exactSize: true, tooLarge: inflatesPastDeclared(entry) });
      } catch (err) {
        throw zipError(err, file);
      }
    },
  });
  const jsonParts: Uint8Array[] = [];
  for await (const chunk of stream(modelEntry, modelJsonPath)) jsonParts.push(chunk);
  const modelJson = parseModelJson(concatBytes(jsonParts), modelJsonPath);
  const resolve = (path: string) => {
    const full = normalizePath(folder + path);
    return full === null ? undefined : byPath.get(full);
  };
  // Every weight file the manifest names is vetted now, before the model is validated or a byte of it inflated.
  for (const group of modelJson.weightsManifest) {
    for (const path of group.paths) {
      const entry = resolve(path);
      if (entry) vet(entry, folder + path, MAX_WEIGHT_BYTES, MAX_WEIGHT_COMPRESSION_RATIO);
    }
  }
  const files: WeightFiles = {
    precheck(json, summary) {
      json.weightsManifest.forEach((group, index) => {
        let declared = 0;
        for (const path of group.paths) {
          const entry = resolve(path);
          if (!entry) {
            throw new ApiError("weight_file_missing", `weightsManifest[${index}] names '${path}', but the zip has no '${folder}${path}' beside ${modelJsonPath}. Add the weight file to the zip next to model.json.`, { file: `${folder}${path}`, group: index });
          }
          declared += entry.uncompressedSize;
        }
        checkGroupBytes(json, summary, index, declared);
      });
    },
    chunks: (path) => stream(resolve(path)!, folder + path),
  };
  return { modelJsonPath, modelJson, files };
}

// ---------------------------------------------------------------- the URL form

/**
 * Every failure of the URL form answers one fixed message (url-policy.ts): what the upstream said (status, headers,
 * bytes) never reaches the tenant, so the import cannot be used to probe other servers. `reason` is ours alone.
 */
const fetchFailed = (url: string, reason?: "timeout" | "too_large", extra: Record<string, unknown> = {}) =>
  new ApiError("model_fetch_failed", reason === "too_large" ? `${FETCH_FAILED_MESSAGE} The file is larger than the limit.` : reason === "timeout" ? `${FETCH_FAILED_MESSAGE} The import did not finish within ${MODEL_FETCH_TIMEOUT_MS / 1000} s.` : FETCH_FAILED_MESSAGE, { url, ...(reason ? { reason } : {}), ...extra });

/** Attempts per weight file, and the pause before each retry: a dropped connection should not fail a 50-shard import. */
export const WEIGHT_FETCH_ATTEMPTS = 3;
const RETRY_DELAYS_MS = [250, 1000];

async function openUrl(url: string, policy: UrlPolicy, signal: AbortSignal, headers: Record<string, string> = {}): Promise<{ response: Response; url: URL }> {
  try {
    return await policedFetch(url, { signal, headers }, policy);
  } catch (err) {
    if (err instanceof UrlRefusedError) throw err;
    if (signal.aborted) throw fetchFailed(url, "timeout");
    if (err instanceof UrlFetchError) throw Object.assign(fetchFailed(url), { retryable: err.retryable });
    throw Object.assign(fetchFailed(url), { retryable: true });
  }
}

/** Yields the body's chunks; stops with 422 once it passes `maxBytes` (a lying or missing Content-Length is no help). */
async function* bodyChunks(response: Response, url: string, maxBytes: number, signal: AbortSignal, already = 0): AsyncIterable<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && already + declared > maxBytes) {
    await response.body?.cancel();
    throw fetchFailed(url, "too_large", { limit_bytes: maxBytes });
  }
  if (!response.body) return;
  const reader = response.body.getReader();
  let total = already;
  try {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch {
        throw signal.aborted ? fetchFailed(url, "timeout") : Object.assign(fetchFailed(url), { retryable: true, broken: true });
      }
      if (result.done) return;
      total += result.value.length;
      if (total > maxBytes) throw fetchFailed(url, "too_large", { limit_bytes: maxBytes });
      yield result.value;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

/**
 * One weight file, retried: an open that fails retryably (network error, 408, 429, 5xx) is tried again after a pause;
 * a body that breaks off after `n` bytes is resumed with `Range: bytes=n-` (a server that ignores Range and answers
 * 200 has its first n bytes skipped), so bytes already streamed into R2 are never written twice.
 */
async function* weightFileChunks(url: string, policy: UrlPolicy, signal: AbortSignal): AsyncIterable<Uint8Array> {
  let received = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      const { response } = await openUrl(url, policy, signal, received > 0 ? { range: `bytes=${received}-` } : {});
      let skip = received > 0 && response.status !== 206 ? received : 0;
      for await (const chunk of bodyChunks(response, url, MAX_WEIGHT_BYTES, signal, skip > 0 ? 0 : received)) {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          continue;
        }
        const fresh = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        received += fresh.length;
        yield fresh;
      }
      return;
    } catch (err) {
      const retryable = (err as { retryable?: boolean }).retryable === true;
      if (!retryable || attempt >= WEIGHT_FETCH_ATTEMPTS || signal.aborted) {
        throw err;
      }
      await sleep(RETRY_DELAYS_MS[attempt - 1] ?? 1000, signal);
    }
  }
}

/**
 * Opens a model by URL under the deployment's URL policy: fetches `model.json`; its weight files (plain paths
 * relative to it, on the same origin) are fetched only while they are streamed into R2, after the model.json and the
 * spec were checked. One deadline covers the whole import.
 *
 * Weight files are fetched one at a time (concurrency 1, each with retries), in manifest order, because they are
 * concatenated into one R2 object as they arrive: a wider fan-out would have to buffer whole shards in the 128 MB
 * isolate, and 200 files at most keep the subrequest count within Cloudflare's 1,000.
 */
export async function openModelUrl(url: string, policy: UrlPolicy, signal: AbortSignal = AbortSignal.timeout(MODEL_FETCH_TIMEOUT_MS)): Promise<{ modelJson: ModelJson; files: WeightFiles }> {
  const { response, url: finalUrl } = await openUrl(url, policy, signal);
  const parts: Uint8Array[] = [];
  for await (const chunk of bodyChunks(response, url, MAX_MODEL_JSON_BYTES, signal)) parts.push(chunk);
  const bytes = concatBytes(parts);
  const modelJson = parseModelJson(bytes, url);
  // Relative to the model.json where it was finally served (after redirects, each of which passed the policy).
  const base = finalUrl;
  const files: WeightFiles = {
    precheck(json) {
      for (const group of json.weightsManifest) for (const path of group.paths) sameOriginRelative(base, path, url);
    },
    async *chunks(path) {
      const target = sameOriginRelative(base, path, url).toString();
      // The group check in importBackbone stops a file that runs past what the manifest needs; this bounds the rest.
      yield* weightFileChunks(target, policy, signal);
    },
  };
  return { modelJson, files };
}

/** A stored file of a builtin or imported backbone (any project's: runners train every project's jobs), or null. */
export async function readBackboneFile(db: Db, bucket: R2Bucket, id: string, file: BackboneFile): Promise<R2ObjectBody | null> {
  const builtin = findBuiltinBackbone(id);
  const prefix = builtin ? builtinObjectPrefix(builtin.id) : (await db.select({ prefix: backbones.objectPrefix }).from(backbones).where(eq(backbones.id, id)).get())?.prefix;
  return prefix ? bucket.get(backboneFileKey(prefix, file)) : null;
}

/** A file of the backbone a job trains on (the job's project's own, or a builtin one); null when not stored. */
export async function readJobBackboneFile(db: Db, bucket: R2Bucket, job: { projectId: string; backbone: string }, file: BackboneFile): Promise<R2ObjectBody | null> {
  const backbone = await resolveBackbone(db, job.projectId, job.backbone);
  return bucket.get(backboneFileKey(backbone.objectPrefix, file));
}

/**
 * Stores a builtin backbone's file, as a runner publishes it from its npm packages (the edge reads it from R2): only the
 * bytes whose sha256 the catalog pins, and only once. Every tenant is served from these files, so no runner may
 * replace them; the pinned bytes are identical anyway, so an object already there is left as it is. Answers the
 * bytes written (0 when it was already there); 409 builtin_file_mismatch for any other bytes.
 */
export async function publishBuiltinBackboneFile(bucket: R2Bucket, builtin: CatalogEntry, file: BackboneFile, body: ReadableStream<Uint8Array>, length: number): Promise<number> {
  const pinned = builtin.files?.[file];
  if (!pinned) throw new ApiError("builtin_file_mismatch", `The catalog pins no sha256 for ${builtin.id}'s ${file}, so no runner may publish it.`, { file });
  const mismatch = (detail: string) => new ApiError("builtin_file_mismatch", `These bytes are not ${builtin.id}'s ${file} (${detail}; the catalog pins ${pinned.bytes} bytes with sha256 ${pinned.sha256}): builtin backbone files cannot be replaced.`, { file, pinned_sha256: pinned.sha256 });
  if (length !== pinned.bytes) throw mismatch(`${length} bytes`);
  const key = backboneFileKey(builtinObjectPrefix(builtin.id), file);
  if (await bucket.head(key)) {
    // Already published: still tell the caller when its bytes are not the pinned ones (hashed as they stream).
    const digest = new crypto.DigestStream("SHA-256");
    await body.pipeTo(digest);
    const sha256 = bytesToHex(new Uint8Array(await digest.digest));
    if (sha256 !== pinned.sha256) throw mismatch(`sha256 ${sha256}`);
    return 0;
  }
  // Streamed: R2 hashes the bytes as it stores them and refuses the put, storing nothing, when they are not the
  // pinned ones, so the file is never held in memory and never stored wrong.
  try {
    await bucket.put(key, body, { sha256: pinned.sha256 });
  } catch (err) {
    if (/sha-?256|checksum|digest/i.test(err instanceof Error ? err.message : String(err))) throw mismatch("another sha256");
    throw err;
  }
  return length;
}
