/**
 * Reads a ZIP archive stored in R2 without loading it: the end-of-central-directory record and the central directory
 * come from ranged GETs, then entries are read (and inflated) one range at a time. This is what lets a 2 GB archive of
 * 20,000 images be ingested in bounded chunks by a Worker with 128 MB of memory.
 *
 * Nothing the archive declares is trusted: entry sizes are checked while inflating (zip bombs stop at the cap, not at
 * the declared size), overlapping entries (the "overlapping files" bomb) are refused, and names are vetted by the
 * caller. ZIP64 is supported for archives over 4 GB or 65,535 entries.
 */
import { concatBytes, crc32 } from "../../shared/bytes";
import { DomainError } from "../../shared/errors";

export interface ZipEntry {
  /** Name as stored (UTF-8 when flagged, otherwise decoded as latin1/CP437-compatible bytes). */
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
  /** True for symlinks (Unix mode in the external attributes) and directories. */
  isSymlink: boolean;
  isDirectory: boolean;
}

export type ZipErrorCode = "not_a_zip" | "corrupt_zip" | "corrupt_entry" | "too_many_entries" | "encrypted_entry" | "unsupported_compression" | "entry_too_large" | "zip_bomb" | "archive_missing";

/** An archive that cannot be read; the code is a catalogue code (shared/errors.ts), so the API answers it with its status. */
export class ZipFormatError extends DomainError {
  declare readonly code: ZipErrorCode;
  constructor(code: ZipErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
    this.name = "ZipFormatError";
  }
}

/** Random access to the archive bytes (an R2 object, or a buffer in tests). */
export interface ByteSource {
  size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** The same bytes as a stream, when the source can give them without reading them whole first. */
  stream?(offset: number, length: number): ReadableStream<Uint8Array>;
}

export function r2Source(bucket: R2Bucket, key: string, size: number): ByteSource {
  return {
    size,
    async read(offset, length) {
      if (length === 0) return new Uint8Array(0);
      const object = await bucket.get(key, { range: { offset, length } });
      if (!object) throw new ZipFormatError("archive_missing", "The uploaded archive is no longer in storage; upload it again.");
      return new Uint8Array(await object.arrayBuffer());
    },
    // A ranged GET streamed through, so an entry of any size is never held whole (a 100 MB weight file).
    stream(offset, length) {
      const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
      bucket
        .get(key, { range: { offset, length } })
        .then((object) => {
          if (!object) throw new ZipFormatError("archive_missing", "The uploaded archive is no longer in storage; upload it again.");
          return object.body.pipeTo(writable);
        })
        .catch((err) => writable.abort(err).catch(() => undefined));
      return readable;
    },
  };
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024;

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const u64 = (b: Uint8Array, o: number) => u32(b, o) + u32(b, o + 4) * 2 ** 32;

/** Reads and checks the central directory. Throws ZipFormatError when the file is not a usable ZIP. */
export async function readCentralDirectory(source: ByteSource, maxEntries: number): Promise<ZipEntry[]> {
  if (source.size < 22) throw new ZipFormatError("not_a_zip", "The file is not a ZIP archive: it is too small to hold one.");
  const tailLength = Math.min(source.size, 22 + 65535 + 20);
  const tail = await source.read(source.size - tailLength, tailLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (u32(tail, i) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipFormatError("not_a_zip", "No ZIP end-of-central-directory record found: the file is not a ZIP archive or is truncated.");
  let entryCount = u16(tail, eocd + 10);
  let cdSize = u32(tail, eocd + 12);
  let cdOffset = u32(tail, eocd + 16);
  if (eocd >= 20 && u32(tail, eocd - 20) === ZIP64_LOCATOR_SIGNATURE) {
    const zip64Offset = u64(tail, eocd - 20 + 8);
    const record = await source.read(zip64Offset, 56);
    if (u32(record, 0) !== ZIP64_EOCD_SIGNATURE) throw new ZipFormatError("corrupt_zip", "The ZIP64 end-of-central-directory record is damaged.");
    entryCount = u64(record, 32);
    cdSize = u64(record, 40);
    cdOffset = u64(record, 48);
  }
  if (entryCount > maxEntries) throw new ZipFormatError("too_many_entries", `The archive has ${entryCount} entries; at most ${maxEntries} are accepted per archive. Split it into several archives.`);
  if (cdSize > MAX_CENTRAL_DIRECTORY_BYTES || cdOffset + cdSize > source.size) throw new ZipFormatError("corrupt_zip", "The ZIP central directory lies outside the file: the archive is truncated or damaged.");
  const cd = await source.read(cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  const utf8 = new TextDecoder("utf-8");
  const latin1 = new TextDecoder("latin1");
  for (let i = 0; i < entryCount; i++) {
    if (p + 46 > cd.length || u32(cd, p) !== CENTRAL_SIGNATURE) throw new ZipFormatError("corrupt_zip", `The ZIP central directory is damaged at entry ${i + 1}.`);
    const madeBy = u16(cd, p + 4) >> 8;
    const flags = u16(cd, p + 8);
    const method = u16(cd, p + 10);
    const crc32 = u32(cd, p + 16);
    let compressedSize = u32(cd, p + 20);
    let uncompressedSize = u32(cd, p + 24);
    const nameLength = u16(cd, p + 28);
    const extraLength = u16(cd, p + 30);
    const commentLength = u16(cd, p + 32);
    const externalAttributes = u32(cd, p + 38);
    let localHeaderOffset = u32(cd, p + 42);
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLength);
    const name = (flags & 0x800 ? utf8 : latin1).decode(nameBytes);
    // ZIP64 extended information: fields present only for values saturated at 0xFFFFFFFF, in this order.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = u16(cd, e);
      const size = u16(cd, e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (uncompressedSize === 0xffffffff) { uncompressedSize = u64(cd, q); q += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = u64(cd, q); q += 8; }
        if (localHeaderOffset === 0xffffffff) { localHeaderOffset = u64(cd, q); }
      }
      e += 4 + size;
    }
    const unixMode = madeBy === 3 ? externalAttributes >>> 16 : 0;
    entries.push({
      name,
      method,
      flags,
      crc32,
      compressedSize,
      uncompressedSize,
      localHeaderOffset,
      isSymlink: (unixMode & 0o170000) === 0o120000,
      isDirectory: name.endsWith("/") || (unixMode & 0o170000) === 0o040000,
    });
    p = extraEnd + commentLength;
  }
  return entries;
}

/**
 * Entry indexes whose data would overlap another entry's (several names sharing the same bytes: the "overlapping
 * files" zip bomb, where a 10 MB file inflates to terabytes). Each entry must own its byte range.
 */
export function findOverlappingEntries(entries: ZipEntry[]): Set<number> {
  const order = entries.map((_, i) => i).filter((i) => !entries[i].isDirectory).sort((a, b) => entries[a].localHeaderOffset - entries[b].localHeaderOffset);
  const bad = new Set<number>();
  for (let k = 1; k < order.length; k++) {
    const previous = entries[order[k - 1]];
    // 30 bytes of local header + the name is the minimum an entry occupies before its data.
    const previousEnd = previous.localHeaderOffset + 30 + previous.compressedSize;
    if (entries[order[k]].localHeaderOffset < previousEnd) {
      bad.add(order[k]);
      bad.add(order[k - 1]);
    }
  }
  return bad;
}

/** Byte span an entry occupies from its local header (upper bound: local extra fields are at most 64 KiB). */
export function entrySpan(entry: ZipEntry): { start: number; maxLength: number } {
  return { start: entry.localHeaderOffset, maxLength: 30 + 65535 * 2 + entry.compressedSize };
}

/**
 * What the central directory alone says against an entry, before a byte of it is read: larger than `maxBytes`
 * (declared or compressed), or declaring a compression ratio above `maxRatio` (entries over 1 MiB only: small files
 * of zeros or repeated text legitimately compress far). A 100 KB entry declaring 100 MB is refused here, unread.
 */
export function vetEntrySize(entry: ZipEntry, limits: { maxBytes: number; maxRatio: number; what: string }): ZipFormatError | null {
  if (entry.uncompressedSize > limits.maxBytes || entry.compressedSize > limits.maxBytes) {
    return new ZipFormatError("entry_too_large", `The file is larger than ${limits.maxBytes} bytes, the per-${limits.what} limit.`, { limit_bytes: limits.maxBytes });
  }
  const ratio = entry.uncompressedSize / Math.max(1, entry.compressedSize);
  if (entry.uncompressedSize > 1024 * 1024 && ratio > limits.maxRatio) {
    return new ZipFormatError("zip_bomb", `The entry declares a ${Math.round(ratio)}:1 compression ratio (${entry.compressedSize} bytes inflating to ${entry.uncompressedSize}); ${limits.what} files never compress past ${limits.maxRatio}:1 (zip bomb guard).`, { declared_bytes: entry.uncompressedSize, compressed_bytes: entry.compressedSize, max_ratio: limits.maxRatio });
  }
  return null;
}

/**
 * Bytes inflated by this isolate since it started, for tests and diagnostics: a refused zip bomb must leave it where
 * it was (the refusal comes from the central directory, before any inflating).
 */
export const inflateCounters = { entries: 0, bytes: 0 };

/** Where an entry's compressed data starts, from its local header (whose name and extra lengths may differ from the central directory's). */
function entryDataStart(entry: ZipEntry, header: Uint8Array): number {
  if (header.length < 30 || u32(header, 0) !== LOCAL_SIGNATURE) throw new ZipFormatError("corrupt_entry", "The entry's local header is missing or damaged.");
  if (entry.flags & 0x1) throw new ZipFormatError("encrypted_entry", "Encrypted ZIP entries are not supported; zip the files without a password.");
  if (entry.method !== 0 && entry.method !== 8) throw new ZipFormatError("unsupported_compression", `ZIP compression method ${entry.method} is not supported; use deflate or store.`);
  return 30 + u16(header, 26) + u16(header, 28);
}

/**
 * Inflates an entry's compressed data as a stream: yields chunks as they come out of the inflater, never holding the
 * whole entry. Stops with `entry_too_large` as soon as the output passes `maxBytes`, whatever the archive declared,
 * and checks the CRC-32 (chunk by chunk) and, with `exactSize`, that the entry inflated to its declared size.
 */
export async function* inflateEntryChunks(entry: ZipEntry, compressed: ReadableStream<Uint8Array>, maxBytes: number, options: { exactSize?: boolean; tooLarge?: () => Error } = {}): AsyncGenerator<Uint8Array> {
  const tooLarge = options.tooLarge ?? (() => tooLargeError(maxBytes));
  const stream = entry.method === 8 ? compressed.pipeThrough(new DecompressionStream("deflate-raw")) : compressed;
  const reader = stream.getReader();
  let total = 0;
  let crc = 0;
  inflateCounters.entries++;
  try {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch {
        throw new ZipFormatError("corrupt_entry", "The entry's compressed data is damaged and could not be inflated.");
      }
      if (result.done) break;
      total += result.value.length;
      inflateCounters.bytes += result.value.length;
      if (total > maxBytes) throw tooLarge();
      crc = crc32(result.value, 0, result.value.length, crc);
      yield result.value;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  if (options.exactSize && total !== entry.uncompressedSize) throw new ZipFormatError("corrupt_entry", `The entry holds ${total} bytes but the archive declares ${entry.uncompressedSize}: the archive is damaged.`);
  if (crc !== entry.crc32) throw new ZipFormatError("corrupt_entry", "The entry's CRC-32 does not match its contents: the archive is damaged.");
}

/**
 * Streams one entry out of `source`: reads its local header, then inflates its data as it is read (a source with
 * `stream` is never read whole). The same limits as inflateEntryChunks.
 */
export async function* streamEntry(source: ByteSource, entry: ZipEntry, maxBytes: number, options: { exactSize?: boolean; tooLarge?: () => Error } = {}): AsyncGenerator<Uint8Array> {
  const header = await source.read(entry.localHeaderOffset, Math.max(0, Math.min(30, source.size - entry.localHeaderOffset)));
  const dataStart = entry.localHeaderOffset + entryDataStart(entry, header);
  if (dataStart + entry.compressedSize > source.size) throw new ZipFormatError("corrupt_entry", "The entry's data runs past the end of the archive: the archive is truncated.");
  const compressed = source.stream ? source.stream(dataStart, entry.compressedSize) : new Blob([await source.read(dataStart, entry.compressedSize)]).stream();
  yield* inflateEntryChunks(entry, compressed, maxBytes, options);
}

/**
 * Extracts one entry from bytes that start at its local header, into one array (an image: at most a few MB).
 * Inflation stops with `entry_too_large` as soon as the output passes `maxBytes`, whatever the archive declared, and
 * the CRC-32 is verified.
 */
export async function extractEntry(entry: ZipEntry, bytes: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  const dataStart = entryDataStart(entry, bytes);
  if (dataStart + entry.compressedSize > bytes.length) throw new ZipFormatError("corrupt_entry", "The entry's data runs past the end of the archive: the archive is truncated.");
  const data = bytes.subarray(dataStart, dataStart + entry.compressedSize);
  const chunks: Uint8Array[] = [];
  for await (const chunk of inflateEntryChunks(entry, new Blob([data]).stream(), maxBytes)) chunks.push(chunk);
  return chunks.length === 1 ? chunks[0] : concatBytes(chunks);
}

function tooLargeError(maxBytes: number) {
  return new ZipFormatError("entry_too_large", `The entry inflates to more than ${maxBytes} bytes, the per-image limit (zip bomb guard).`);
}
