/**
 * Node-only helpers on top of the SDK: ImageFolder directories and ZIP files from disk as upload sources, a
 * file-backed resume store, and predictions for image files. Import from `sdk/node` (browsers use `sdk/index`).
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { blobSource, zipSource, type Edgetune, type PredictOptions, type ResumeStore, type UploadSource } from "./client";
import { EdgetuneError } from "./errors";
import type { Prediction } from "./types";
import type { ZipSourceEntry } from "./zip-stream";

export * from "./index";

/** Read chunk size: 1 MiB keeps syscalls few and memory flat (one chunk in flight per file). */
const READ_CHUNK_BYTES = 1 << 20;

const isHidden = (name: string) => name.startsWith(".") || name === "__MACOSX" || name === "Thumbs.db" || name === "desktop.ini";

/**
 * The files of an ImageFolder directory (`label/file`, or `train/label/file` + `val/label/file`) as zip entries
 * named by their path relative to `dir`, sorted (so the archive is reproducible). Hidden files and folders
 * (`.DS_Store`, `__MACOSX`) are left out; symbolic links to files are followed, links to folders are not (no cycles).
 */
export async function folderEntries(dir: string): Promise<ZipSourceEntry[]> {
  const root = path.resolve(dir);
  const entries: ZipSourceEntry[] = [];
  async function walk(rel: string) {
    const items = await fs.promises.readdir(path.join(root, rel), { withFileTypes: true });
    for (const item of items) {
      if (isHidden(item.name)) continue;
      const relPath = rel ? `${rel}/${item.name}` : item.name;
      const full = path.join(root, relPath);
      if (item.isDirectory()) {
        await walk(relPath);
        continue;
      }
      const stat = await fs.promises.stat(full).catch(() => null);
      if (!stat?.isFile()) continue;
      entries.push({
        name: relPath,
        size: stat.size,
        mtimeMs: stat.mtimeMs,
        read: () => fs.createReadStream(full, { highWaterMark: READ_CHUNK_BYTES }) as AsyncIterable<Uint8Array>,
      });
    }
  }
  await walk("");
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** An ImageFolder directory or an existing `.zip`, ready for `datasets.upload`. */
export async function pathSource(target: string): Promise<UploadSource & { kind: "folder" | "zip"; files?: number }> {
  const stat = await fs.promises.stat(target).catch(() => null);
  if (!stat) throw new EdgetuneError(0, "path_not_found", `${target}: no such file or folder.`);
  if (stat.isDirectory()) {
    const entries = await folderEntries(target);
    if (entries.length === 0) throw new EdgetuneError(0, "empty_folder", `${target} has no files. Put one folder per label in it (label/file), or train/ and val/ folders.`);
    return { ...zipSource(entries, `${path.basename(path.resolve(target))}.zip`), kind: "folder", files: entries.length };
  }
  if (!/\.zip$/i.test(target)) throw new EdgetuneError(0, "not_a_zip", `${target} is neither a folder nor a .zip file. Push an ImageFolder directory (label/file) or a .zip of one.`);
  const blob = await fs.openAsBlob(target);
  const source = blobSource(blob, path.basename(target));
  return { ...source, fingerprint: `zip:${path.resolve(target)}:${stat.size}:${Math.floor(stat.mtimeMs)}`, kind: "zip" };
}

/** Keeps an upload's resume state in a JSON file (mode 0600); `key` separates uploads of different sources. */
export function fileResumeStore(dir: string, key: string, extra: Record<string, unknown> = {}): ResumeStore & { file: string; read(): any } {
  const file = path.join(dir, `${createHash("sha256").update(key).digest("hex").slice(0, 24)}.json`);
  const read = () => {
    try {
      return JSON.parse(fs.readFileSync(file, "utf8"));
    } catch {
      return null;
    }
  };
  return {
    file,
    read,
    load: async () => read(),
    save: async (state) => {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(file, JSON.stringify({ ...extra, ...state, saved_at: new Date().toISOString() }), { mode: 0o600 });
    },
    clear: async () => fs.rmSync(file, { force: true }),
  };
}

const IMAGE_TYPES: Record<string, string> = { ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif" };

/** An image file as a Blob with its media type from the extension (the API sniffs the bytes anyway). */
export async function imageFileBlob(file: string): Promise<Blob> {
  const bytes = await fs.promises.readFile(file);
  return new Blob([bytes], { type: IMAGE_TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream" });
}

export interface PredictFilesOptions extends PredictOptions {
  concurrency?: number;
  /**
   * Called when a photo was over the edge's pixel limit and a smaller copy was predicted instead (downscale-node.ts).
   * Without it the copy is still sent; the CLI prints a note.
   */
  onDownscale?(event: { file: string; from: { width: number; height: number }; to: { width: number; height: number }; maxPixels: number }): void;
}

/**
 * Predicts each file with a model (`mdl_...`) or an alias, up to `concurrency` requests at once; results keep the
 * order of `files`. A photo over the edge's pixel limit (422 `too_many_pixels`: a 12 MP phone photo does not fit a
 * 128 MB isolate) is predicted from a copy shrunk to fit (`downscaleToFit`); once the limit is known, later photos
 * over it are shrunk before they are sent.
 */
export async function predictFiles(client: Edgetune, modelOrAlias: string, files: string[], options: PredictFilesOptions = {}) {
  const results: { file: string; predictions: Prediction["predictions"][number]; model_id: string }[] = new Array(files.length);
  const send = (body: Blob) => (modelOrAlias.startsWith("mdl_") ? client.models.predict(modelOrAlias, body, options) : client.aliases.predict(modelOrAlias, body, options));
  let maxPixels: number | null = null;
  const shrunk = async (file: string, bytes: Uint8Array, limit: number, refusal?: unknown) => {
    const { downscaleToFit } = await import("./downscale-node");
    // What cannot be shrunk here (over 40 MP, damaged) keeps the edge's own answer when there was one.
    const copy = await downscaleToFit(bytes, limit).catch((error: unknown) => {
      throw refusal ?? error;
    });
    options.onDownscale?.({ file, from: copy.from, to: { width: copy.width, height: copy.height }, maxPixels: limit });
    return send(new Blob([copy.bytes], { type: "image/jpeg" }));
  };
  let next = 0;
  const one = async () => {
    while (next < files.length) {
      const i = next++;
      const file = files[i]!;
      const blob = await imageFileBlob(file);
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let answer: Prediction;
      const size = maxPixels === null ? null : (await import("./downscale-node")).imagePixels(bytes);
      if (maxPixels !== null && size && size.width * size.height > maxPixels) answer = await shrunk(file, bytes, maxPixels);
      else {
        try {
          answer = await send(blob);
        } catch (error) {
          const limit = error instanceof EdgetuneError && error.code === "too_many_pixels" ? Number(error.details?.max_pixels) : NaN;
          if (!(limit > 0)) throw error;
          maxPixels = limit;
          answer = await shrunk(file, bytes, limit, error);
        }
      }
      results[i] = { file, predictions: answer.predictions[0]!, model_id: answer.model_id };
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, files.length) }, one));
  return results;
}
