/**
 * Streams a ZIP of files without holding it: entries are stored (images are already compressed: deflate gains ~1%
 * on JPEG and costs a core), so the archive's exact size is known before the first byte and it can be cut into
 * fixed-size parts for a multipart upload. Memory is one read chunk at a time. Deterministic: the same files
 * (names, sizes, mtimes, bytes) give the same bytes, which is what lets an interrupted upload resume by skipping
 * the parts the server already has.
 *
 * Limit: fflate writes no ZIP64 records, so an archive must stay under 4 GiB (`MAX_STREAMED_ZIP_BYTES`).
 */
import { Zip, ZipPassThrough } from "fflate";

export interface ZipSourceEntry {
  /** Path inside the archive, `/`-separated (`roses/a.jpg`, `train/roses/a.jpg`). */
  name: string;
  size: number;
  /** Modification time in ms since the epoch (goes into the header; fixed, so the archive is reproducible). */
  mtimeMs: number;
  /** The file's bytes, in chunks of any size. */
  read(): AsyncIterable<Uint8Array>;
}

export const MAX_STREAMED_ZIP_BYTES = 2 ** 32 - 1;
/** DOS timestamps start in 1980: older (or zero) mtimes are clamped there. */
const DOS_EPOCH_MS = Date.UTC(1980, 0, 2);

const utf8Length = (s: string) => new TextEncoder().encode(s).length;

/**
 * Exact size of the archive `zipEntries` writes: per entry a 30-byte local header + name + data + a 16-byte data
 * descriptor, a 46-byte central directory record + name, then the 22-byte end record (fflate's layout, no extras).
 */
export function storedZipSize(entries: readonly Pick<ZipSourceEntry, "name" | "size">[]): number {
  let total = 22;
  for (const e of entries) total += 30 + 16 + 46 + 2 * utf8Length(e.name) + e.size;
  return total;
}

/** Yields the archive's bytes in the order they are written. Throws if a file's length differs from its `size`. */
export async function* zipEntries(entries: readonly ZipSourceEntry[], signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const pending: Uint8Array[] = [];
  let failure: Error | null = null;
  let finished = false;
  const zip = new Zip((err, chunk, final) => {
    if (err) failure = err;
    else if (chunk.length > 0) pending.push(chunk);
    if (final) finished = true;
  });
  function* drain() {
    if (failure) throw failure;
    while (pending.length > 0) yield pending.shift()!;
  }
  for (const entry of entries) {
    signal?.throwIfAborted();
    const file = new ZipPassThrough(entry.name);
    file.mtime = Math.max(DOS_EPOCH_MS, entry.mtimeMs);
    zip.add(file);
    let seen = 0;
    for await (const chunk of entry.read()) {
      signal?.throwIfAborted();
      seen += chunk.length;
      if (seen > entry.size) throw new Error(`'${entry.name}' grew while it was being zipped (expected ${entry.size} bytes); try again when nothing writes to the folder.`);
      file.push(chunk, false);
      yield* drain();
    }
    if (seen !== entry.size) throw new Error(`'${entry.name}' changed while it was being zipped (expected ${entry.size} bytes, read ${seen}); try again when nothing writes to the folder.`);
    file.push(new Uint8Array(0), true);
    yield* drain();
  }
  zip.end();
  yield* drain();
  if (!finished) throw new Error("internal: the zip stream did not finish");
}

/**
 * Regroups a byte stream into parts of exactly `partBytes` (the last may be shorter), each a fresh buffer: memory is
 * one part plus one incoming chunk.
 */
export async function* splitIntoParts(chunks: AsyncIterable<Uint8Array>, partBytes: number): AsyncGenerator<Uint8Array> {
  let part = new Uint8Array(partBytes);
  let filled = 0;
  for await (let chunk of chunks) {
    while (chunk.length > 0) {
      const take = Math.min(chunk.length, partBytes - filled);
      part.set(chunk.subarray(0, take), filled);
      filled += take;
      chunk = chunk.subarray(take);
      if (filled === partBytes) {
        yield part;
        part = new Uint8Array(partBytes);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield part.subarray(0, filled);
}

/** Reads a Blob (or File) in chunks without loading it whole. */
export async function* readBlob(blob: Blob, chunkBytes = 1 << 20): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < blob.size; offset += chunkBytes) {
    yield new Uint8Array(await blob.slice(offset, offset + chunkBytes).arrayBuffer());
  }
}
