/**
 * Archive ingestion, run by the queue consumer in bounded, resumable chunks: each queue message processes entries
 * from `cursor` until a budget of entries, bytes or wall time is used, commits, then enqueues the next chunk. A chunk
 * that dies is retried by the queue and is idempotent (rows are keyed by path and version, blobs by sha256), so an
 * archive of 20,000 images / 2 GB never needs more than one chunk's memory (~16 MB of reads + one image at a time).
 */
import { and, eq, inArray, sql } from "drizzle-orm";
import { mapBounded } from "../../shared/concurrency";
import { sha256Hex, newId } from "../../shared/ids";
import { ImageError } from "../../shared/image/errors";
import { inspectImage } from "../../shared/image/sniff";
import { datasetImages, datasets, ingests } from "../db/schema";
import { getConfig } from "../config";
import type { Env } from "../env";
import { commonRoot, placeEntry } from "./archive-layout";
import { MAX_IMAGE_BYTES, inSnapshot, recordImages, recordRejections, writableVersion, type NewImage } from "./datasets";
import { archiveEntriesObjectKey, archiveObjectKey, imageObjectKey } from "./object-keys";
import { getDb, nowIso, type Db } from "./db";
import { imageQuotas } from "./quotas";
import { emitSafely } from "./webhooks";
import { ZipFormatError, entrySpan, extractEntry, findOverlappingEntries, r2Source, readCentralDirectory, vetEntrySize, type ZipEntry } from "./zip-reader";

export const MAX_ARCHIVE_ENTRIES = 100_000;
/** Sum of inflated bytes accepted from one archive. */
export const MAX_ARCHIVE_UNCOMPRESSED_BYTES = 20 * 1024 ** 3;
/** Declared inflate ratio above which an entry is refused unread (real images compress at most ~2-3x; PNGs of flat art more). */
const MAX_COMPRESSION_RATIO = 200;
/** Per-chunk budgets: keep CPU, memory and D1 statements per invocation well inside Workers' limits. */
const CHUNK_MAX_ENTRIES = 250;
const CHUNK_MAX_WALL_MS = 15_000;
const READ_GROUP_BYTES = 8 * 1024 * 1024;
/** Entries of one read group processed at once; their bytes are already in memory (at most READ_GROUP_BYTES). */
const STORE_CONCURRENCY = 8;

export interface IngestMessage {
  kind: "ingest";
  ingest_id: string;
  cursor: number;
}

/** Stores an uploaded archive (a body of checked length) in R2 and starts ingesting it. */
export async function receiveArchive(env: Env, db: Db, dataset: { projectId: string; id: string }, body: ReadableStream, filename: string): Promise<string> {
  const ingestId = newId("ing");
  const key = archiveObjectKey(dataset.projectId, dataset.id, ingestId);
  // The user's file name goes with the archive so ingest errors can name it.
  await env.BUCKET.put(key, body, { customMetadata: { filename } });
  return startIngest(env, db, dataset.projectId, dataset.id, key, ingestId);
}

/** Creates the ingest row for an archive already in R2, marks the dataset ingesting and queues the first chunk. */
export async function startIngest(env: Env, db: Db, projectId: string, datasetId: string, objectKey: string, ingestId = newId("ing")): Promise<string> {
  await db.batch([
    db.insert(ingests).values({ id: ingestId, datasetId, projectId, objectKey, status: "queued" }),
    db.update(datasets).set({ status: "ingesting", error: null, updatedAt: nowIso() }).where(eq(datasets.id, datasetId)),
  ]);
  await env.INGEST_QUEUE.send({ kind: "ingest", ingest_id: ingestId, cursor: 0 } satisfies IngestMessage);
  return ingestId;
}

interface StoredEntries {
  root: string | null;
  /** A folder prefix wrapping every file more than one level deep (see nestedPrefix); null when the layout is fine. */
  nested?: { prefix: string; files: number } | null;
  entries: (ZipEntry & { end: number; overlap: boolean })[];
}

/**
 * Processes one chunk. Returns the next message to enqueue, or null when the ingest has ended. Stale or duplicate
 * messages (cursor behind the stored one) are ignored.
 */
export async function runIngestChunk(env: Env, message: IngestMessage, deadlineMs = CHUNK_MAX_WALL_MS): Promise<IngestMessage | null> {
  const db = getDb(env.DB);
  const ingest = await db.select().from(ingests).where(eq(ingests.id, message.ingest_id)).get();
  if (!ingest || ingest.status === "done" || ingest.status === "failed" || ingest.cursor !== message.cursor) return null;
  const started = Date.now();
  const { maxImagePixels: maxPixels, quotas } = getConfig(env);
  try {
    const stored = await loadEntries(env, db, ingest);
    const version = await writableVersion(db, ingest.datasetId);
    // The images and bytes quotas, checked entry by entry: the upload only saw the archive's compressed size. Two
    // ingests of one project running at once can each pass the quota by at most one chunk (CHUNK_MAX_ENTRIES).
    const quota = await imageQuotas(db, ingest.projectId, quotas);
    const admitted = { images: 0, bytes: 0 };
    let quotaHit = false;
    const { entries, root } = stored;
    const accepted: (NewImage & { path: string })[] = [];
    const rejections: { path: string; code: string; message: string }[] = [];
    let uncompressed = ingest.uncompressedBytes;
    let cursor = ingest.cursor;
    if (stored.nested && ingest.cursor === 0) {
      // Every file is nested under the same folders: one row that says what to do, instead of one identical row per
      // file. Nothing inside is ingested (guessing which level holds the labels could train on the wrong labels).
      const { prefix, files } = stored.nested;
      rejections.push({
        path: prefix,
        code: "nested_too_deep",
        message: `All ${files} files sit under '${prefix}', deeper than label/file. Strip the prefix: zip from inside '${prefix}' so entries read label/file (or train/label/file and val/label/file).`,
      });
      cursor = entries.length;
    }
    while (!quotaHit && cursor < entries.length && cursor - ingest.cursor < CHUNK_MAX_ENTRIES && Date.now() - started < deadlineMs) {
      // Read a run of consecutive entries with one ranged GET.
      let last = cursor;
      const start = entries[cursor].localHeaderOffset;
      while (last + 1 < entries.length && last + 1 - ingest.cursor < CHUNK_MAX_ENTRIES && entries[last + 1].localHeaderOffset === entries[last].end && entries[last + 1].end - start <= READ_GROUP_BYTES) last++;
      const wanted = entries.slice(cursor, last + 1).filter((e) => decideUnread(e, root) === null);
      const source = r2Source(env.BUCKET, ingest.objectKey, entries[last].end);
      const groupBytes = wanted.length > 0 && entries[last].end - start <= READ_GROUP_BYTES ? await source.read(start, entries[last].end - start) : null;
      // Decide everything that needs no bytes first, then extract, inspect and store the rest with bounded
      // concurrency (R2 writes dominate: one at a time was about 20 ms per image under wrangler dev).
      const toRead: { entry: StoredEntries["entries"][number]; placement: Extract<ReturnType<typeof placeEntry>, { ok: true }> }[] = [];
      for (let i = cursor; i <= last; i++) {
        const entry = entries[i];
        const unread = decideUnread(entry, root);
        if (unread === "skip") continue;
        if (unread) {
          rejections.push({ path: entry.name, ...unread });
          continue;
        }
        const placement = placeEntry(entry, root);
        if (placement.ok !== true) continue; // decideUnread handled it
        if (uncompressed + entry.uncompressedSize > MAX_ARCHIVE_UNCOMPRESSED_BYTES) {
          rejections.push({ path: entry.name, code: "archive_too_large", message: `The archive inflates to more than ${MAX_ARCHIVE_UNCOMPRESSED_BYTES} bytes; split it into several archives.` });
          continue;
        }
        const over = quotaOver(quota, admitted, entry.uncompressedSize);
        if (over) {
          // Stop here: this entry and every one after it stay out, said once (not one identical row per entry).
          const left = entries.length - i;
          rejections.push({ path: entry.name, code: "quota_exceeded", message: `The project's ${over.quota} quota (${over.limit}) is reached: this entry and the ${left - 1} after it were not ingested. Delete images or ask the operator to raise the quota, then upload the rest again.` });
          quotaHit = true;
          break;
        }
        admitted.images += 1;
        admitted.bytes += entry.uncompressedSize;
        uncompressed += entry.uncompressedSize;
        toRead.push({ entry, placement });
      }
      // Inflated bytes in flight stay bounded: concurrency only when the group's declared sizes sum to little, and
      // no entry may inflate past its declared size (a lying entry is cut off there and rejected).
      const declaredBytes = toRead.reduce((sum, r) => sum + r.entry.uncompressedSize, 0);
      const concurrency = groupBytes && declaredBytes <= 32 * 1024 * 1024 ? STORE_CONCURRENCY : 1;
      const results = await mapBounded(toRead, concurrency, async ({ entry, placement }) => {
        try {
          const bytes = groupBytes
            ? groupBytes.subarray(entry.localHeaderOffset - start, entry.end - start)
            : await source.read(entry.localHeaderOffset, Math.min(entry.end, entrySpan(entry).start + entrySpan(entry).maxLength) - entry.localHeaderOffset);
          const data = await extractEntry(entry, bytes, Math.min(MAX_IMAGE_BYTES, entry.uncompressedSize));
          const info = inspectImage(data, { maxPixels });
          const sha256 = await sha256Hex(data);
          await env.BUCKET.put(imageObjectKey(ingest.projectId, sha256), data, { httpMetadata: { contentType: `image/${info.format}` } });
          return { ok: true as const, image: { path: entry.name, label: placement.label, filename: placement.filename, split: placement.split, sha256, bytes: data.length, format: info.format, width: info.width, height: info.height } };
        } catch (err) {
          if (err instanceof ZipFormatError || err instanceof ImageError) return { ok: false as const, rejection: { path: entry.name, code: err.code, message: err.message } };
          throw err;
        }
      });
      for (const result of results) {
        if (result.ok) accepted.push(result.image);
        else rejections.push(result.rejection);
      }
      cursor = quotaHit ? entries.length : last + 1;
    }
    const outcomes = await recordImages(db, ingest.datasetId, version, accepted.map(({ path: _path, ...image }) => image));
    outcomes.forEach((outcome, i) => {
      if (outcome.status === "duplicate") {
        rejections.push({ path: accepted[i].path, code: "duplicate_image", message: `Same bytes as '${outcome.existingPath}', already in the dataset; kept once.` });
      }
    });
    await recordRejections(db, ingest.datasetId, ingest.id, rejections);
    const done = cursor >= entries.length;
    const acceptedCount = outcomes.filter((o) => o.status !== "duplicate").length;
    const advanced = await db
      .update(ingests)
      .set({ cursor, status: done ? "done" : "running", accepted: sql`${ingests.accepted} + ${acceptedCount}`, rejected: sql`${ingests.rejected} + ${rejections.length}`, uncompressedBytes: uncompressed, updatedAt: nowIso() })
      .where(and(eq(ingests.id, ingest.id), eq(ingests.cursor, ingest.cursor), inArray(ingests.status, ["queued", "running"])))
      .returning({ id: ingests.id });
    // Another delivery of the same message got here first: its chain goes on, this one stops.
    if (advanced.length === 0) return null;
    if (!done) return { kind: "ingest", ingest_id: ingest.id, cursor };
    await finishIngest(env, db, ingest, null);
    return null;
  } catch (err) {
    if (err instanceof ZipFormatError) {
      // Name the user's own file (the client's `filename`), never our storage key.
      const head = await env.BUCKET.head(ingest.objectKey).catch(() => null);
      const filename = head?.customMetadata?.filename || "the archive";
      const message = `${filename}: ${err.message}`;
      await db.update(ingests).set({ status: "failed", error: message, updatedAt: nowIso() }).where(eq(ingests.id, ingest.id));
      await recordRejections(db, ingest.datasetId, ingest.id, [{ path: filename, code: err.code, message: err.message }]);
      await finishIngest(env, db, ingest, message);
      return null;
    }
    throw err;
  }
}

/**
 * Which quota an entry of `bytes` would take the project past, counting what this chunk already admitted (an entry
 * that turns out a duplicate is counted too: the check errs on the side of the quota), or null when it fits.
 */
function quotaOver(quota: Awaited<ReturnType<typeof imageQuotas>>, admitted: { images: number; bytes: number }, bytes: number): { quota: "images" | "bytes"; limit: number } | null {
  if (quota.used.images + admitted.images + 1 > quota.limits.images) return { quota: "images", limit: quota.limits.images };
  if (quota.used.bytes + admitted.bytes + bytes > quota.limits.bytes) return { quota: "bytes", limit: quota.limits.bytes };
  return null;
}

/** A rejection decided from the central directory alone (nothing read), "skip" for directories, or null to read it. */
function decideUnread(entry: StoredEntries["entries"][number], root: string | null): { code: string; message: string } | "skip" | null {
  const placement = placeEntry(entry, root);
  if (placement.ok === "skip") return "skip";
  if (placement.ok === false) return { code: placement.code, message: placement.message };
  if (entry.overlap) return { code: "zip_bomb", message: "This entry shares its bytes with another entry (an overlapping-entries zip bomb); the archive was refused entry by entry." };
  const refused = vetEntrySize(entry, { maxBytes: MAX_IMAGE_BYTES, maxRatio: MAX_COMPRESSION_RATIO, what: "image" });
  return refused && { code: refused.code, message: refused.message };
}

async function loadEntries(env: Env, db: Db, ingest: typeof ingests.$inferSelect): Promise<StoredEntries> {
  const cached = await env.BUCKET.get(archiveEntriesObjectKey(ingest.projectId, ingest.id));
  if (cached) return (await cached.json()) as StoredEntries;
  const head = await env.BUCKET.head(ingest.objectKey);
  if (!head) throw new ZipFormatError("archive_missing", "The uploaded archive is no longer in storage; upload it again.");
  const source = r2Source(env.BUCKET, ingest.objectKey, head.size);
  const entries = await readCentralDirectory(source, MAX_ARCHIVE_ENTRIES);
  const overlaps = findOverlappingEntries(entries);
  // Where each entry's bytes end: the next local header in file order, or the central directory.
  const byOffset = entries.map((e, i) => ({ i, o: e.localHeaderOffset })).sort((a, b) => a.o - b.o);
  const ends = new Array<number>(entries.length);
  const cdStart = Math.min(head.size, byOffset.length ? Math.max(...entries.map((e) => e.localHeaderOffset + 30 + e.compressedSize)) + 65535 * 2 : head.size);
  for (let k = 0; k < byOffset.length; k++) ends[byOffset[k].i] = k + 1 < byOffset.length ? byOffset[k + 1].o : Math.min(head.size, cdStart);
  // Directory entries carry no image: leaving them out makes `ingest.done / ingest.total` count files, which is what
  // a user compares with their folder (a zip of 400 photos in 5 folders says 400, not 406).
  const stored: StoredEntries = {
    root: commonRoot(entries),
    entries: entries.map((e, i) => ({ ...e, end: Math.max(ends[i], e.localHeaderOffset), overlap: overlaps.has(i) })).filter((e) => !e.isDirectory),
    nested: nestedPrefix(entries),
  };
  await env.BUCKET.put(archiveEntriesObjectKey(ingest.projectId, ingest.id), JSON.stringify(stored));
  await db.update(ingests).set({ total: stored.entries.length, status: "running", updatedAt: nowIso() }).where(eq(ingests.id, ingest.id));
  return stored;
}

/** Ends an ingest: removes the archive and its entry list, and settles the dataset's status if no other ingest runs. */
async function finishIngest(env: Env, db: Db, ingest: typeof ingests.$inferSelect, error: string | null): Promise<void> {
  await env.BUCKET.delete([ingest.objectKey, archiveEntriesObjectKey(ingest.projectId, ingest.id)]);
  const active = await db.select({ id: ingests.id }).from(ingests).where(and(eq(ingests.datasetId, ingest.datasetId), inArray(ingests.status, ["queued", "running"]))).limit(1).get();
  if (active) return;
  const dataset = await db.select({ version: datasets.version }).from(datasets).where(eq(datasets.id, ingest.datasetId)).get();
  if (!dataset) return;
  const images = await db.select({ n: sql<number>`count(*)` }).from(datasetImages).where(inSnapshot(ingest.datasetId, dataset.version)).get();
  const status = error ? "failed" : Number(images?.n ?? 0) > 0 ? "ready" : "empty";
  let reason = error;
  if (status === "empty") {
    // "empty" alone leaves a user guessing: say whether the archive held nothing or everything in it was refused.
    const done = await db.select({ total: ingests.total, rejected: ingests.rejected }).from(ingests).where(eq(ingests.id, ingest.id)).get();
    const total = Number(done?.total ?? 0);
    reason = total === 0
      ? "The archive holds no files. Zip the folder that contains one folder per label (label/file), not an empty folder."
      : `None of the archive's ${total} files became an image of the dataset; the rejected list says why for each.`;
  }
  await db.update(datasets).set({ status, error: reason, updatedAt: nowIso() }).where(eq(datasets.id, ingest.datasetId));
  await emitSafely(env, ingest.projectId, `dataset.${status}`, `${ingest.datasetId}.${ingest.id}.${status}`, { dataset: { id: ingest.datasetId, status, version: dataset.version, image_count: Number(images?.n ?? 0), error: reason } });
}

/** Marks an ingest failed after the queue gave up on it (every retry threw). */
export async function abandonIngest(env: Env, message: IngestMessage, reason: string): Promise<void> {
  const db = getDb(env.DB);
  const ingest = await db.select().from(ingests).where(eq(ingests.id, message.ingest_id)).get();
  if (!ingest || ingest.status === "done" || ingest.status === "failed") return;
  const error = `Ingestion stopped after repeated internal errors at entry ${ingest.cursor}: ${reason}. Images before it were kept; upload the archive again to resume.`;
  await db.update(ingests).set({ status: "failed", error, updatedAt: nowIso() }).where(eq(ingests.id, ingest.id));
  await finishIngest(env, db, ingest, error);
}

/**
 * The folder prefix wrapping every file when the layout is nested deeper than one wrapper allows
 * (`export/2024/flowers/roses/a.jpg`): the longest common folder prefix, without its last folder (the labels'
 * parent), reported when no file would place under the accepted layouts. Null when any file places fine.
 */
export function nestedPrefix(entries: ZipEntry[]): { prefix: string; files: number } | null {
  const files = entries.filter((e) => !e.isDirectory && !e.name.split("/").some((p) => p.startsWith(".") || p === "__MACOSX"));
  if (files.length === 0) return null;
  const root = commonRoot(files);
  if (files.some((e) => placeEntry(e, root).ok === true)) return null;
  let common = files[0].name.split("/").slice(0, -1);
  for (const e of files) {
    const dirs = e.name.split("/").slice(0, -1);
    let k = 0;
    while (k < common.length && k < dirs.length && common[k] === dirs[k]) k++;
    common = common.slice(0, k);
  }
  // Keep the level that holds the label folders (or train/val) out of the prefix.
  const deepest = Math.min(...files.map((e) => e.name.split("/").length - 1));
  const keep = files.some((e) => ["train", "val"].includes(e.name.split("/")[common.length] ?? "")) ? common.length : Math.min(common.length, deepest - 1);
  if (keep < 2) return null; // zero or one wrapper: the usual rejections (or the wrapper unwrap) already explain it
  return { prefix: common.slice(0, keep).join("/") + "/", files: files.length };
}
