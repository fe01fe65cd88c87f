/**
 * `edgetune export`: downloads the model's self-contained bundle (`GET /v1/models/:id/bundle/manifest`, then each file
 * it lists) into a folder that runs on its own: backbone and head weights, labels, edgetune.mjs (the API's own
 * decoding and preprocessing, `predict(imageBytes)`), the decoders' .wasm, example.mjs, browser.html, README.md.
 * Each file is streamed to disk (the 10 MB backbone never sits in memory), written under a temporary name and renamed
 * once complete, and checked against the size the manifest gives.
 */
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Edgetune } from "../../sdk/index";

/** Downloads `concurrency` files at once; returns the paths written, relative to `dir`, in manifest order. */
export async function exportBundle(client: Edgetune, modelId: string, dir: string, options: { concurrency?: number; onFile?: (file: string, bytes: number) => void } = {}): Promise<string[]> {
  const manifest = await client.models.bundleManifest(modelId);
  const root = path.resolve(dir);
  fs.mkdirSync(root, { recursive: true });
  const queue = [...manifest.files];
  const download = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      const target = path.resolve(root, file.path);
      if (!target.startsWith(root + path.sep)) throw new Error(`the manifest names a file outside the folder: ${file.path}`);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      const response = await client.models.bundleFile(file);
      const partial = `${target}.partial`;
      await pipeline(Readable.fromWeb(response.body as import("node:stream/web").ReadableStream), fs.createWriteStream(partial));
      const written = fs.statSync(partial).size;
      if (file.bytes !== undefined && written !== file.bytes) {
        fs.rmSync(partial, { force: true });
        throw new Error(`${file.path}: received ${written} bytes, the manifest says ${file.bytes}. Run the export again.`);
      }
      fs.renameSync(partial, target);
      options.onFile?.(file.path, written);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, download));
  return manifest.files.map((file) => file.path);
}
