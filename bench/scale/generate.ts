/**
 * The bench/scale data set: `count` distinct photos generated from ../shared/datasets/flowers5 (see
 * generate-worker.ts), written once as a stored (uncompressed) zip to bench/out/scale/flowers5-<count>-…-split.zip
 * and reused by later runs. Photos of flowers5's held-out originals go under val/, the others under train/. Generation runs on a worker pool, one thread per core, and streams into the zip (memory stays small).
 */
import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { Zip, ZipPassThrough } from "fflate";
import { ThreadPool } from "../../gpu-runner/src/threads/pool";
import { siblingModule } from "../../gpu-runner/src/threads/start-worker";
import { isHeldOut } from "../embed/flowers";
import { loadSharp, makeSharpPhoto } from "./generate-sharp";

export interface GeneratedSet {
  zipPath: string;
  count: number;
  bytes: number;
  labels: string[];
  /** Seconds spent generating (0 when the cached file was reused). */
  generatedS: number;
}

/**
 * "pixels": new photos (crop, flip, resize, re-encode; generate-worker.ts, mozjpeg in WASM, ~0.7 s per photo here).
 * "sharp": the same recipe by libvips (generate-sharp.ts, ~50 ms per photo; longer side 320-640 px), when `sharp`
 * is installed, else "pixels". "comment": each original's bytes with a JPEG comment segment naming the index:
 * distinct files (their own sha256, so the runner embeds each one) with the original's pixels, generated at disk
 * speed; throughput figures hold, accuracy figures do not (val copies train).
 */
export type Variation = "pixels" | "sharp" | "comment";

/** The JPEG with a COM segment (FF FE, length, text) right after its SOI marker. */
export function withComment(jpeg: Uint8Array, text: string): Uint8Array {
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(jpeg.length + 4 + body.length);
  out.set(jpeg.subarray(0, 2), 0);
  out.set([0xff, 0xfe, (body.length + 2) >> 8, (body.length + 2) & 0xff], 2);
  out.set(body, 6);
  out.set(jpeg.subarray(2), 6 + body.length);
  return out;
}

export async function generateSet(flowersDir: string, outDir: string, count: number, log: (msg: string) => void, variation: Variation = "pixels"): Promise<GeneratedSet> {
  const labels = readdirSync(flowersDir).filter((name) => statSync(path.join(flowersDir, name)).isDirectory()).sort();
  // Interleave labels so photo i and i+1 come from different classes.
  const byLabel = labels.map((label) => readdirSync(path.join(flowersDir, label)).filter((f) => /\.jpe?g$/i.test(f)).sort().map((f) => path.join(flowersDir, label, f)));
  const originals: string[] = [];
  // Where each original's photos go: `train/<label>/` or `val/<label>/` by flowers5's fixed split, so that no
  // validation photo is a crop of an original the head trained on (the platform takes the archive's own split).
  const originalFolders: string[] = [];
  for (let i = 0; byLabel.some((files) => i < files.length); i++) {
    byLabel.forEach((files, l) => {
      if (i < files.length) originals.push(files[i]!), originalFolders.push(`${isHeldOut(i) ? "val" : "train"}/${labels[l]!}`);
    });
  }
  mkdirSync(outDir, { recursive: true });
  const sharp = variation === "sharp" ? await loadSharp() : null;
  if (variation === "sharp" && !sharp) {
    log("sharp is not installed: generating with mozjpeg in WASM (variation pixels, much slower)");
    variation = "pixels";
  }
  const zipPath = path.join(outDir, `flowers5-${count}${variation === "pixels" ? "" : `-${variation}`}-split.zip`);
  if (existsSync(zipPath)) return { zipPath, count, bytes: statSync(zipPath).size, labels, generatedS: 0 };

  const started = performance.now();
  const partial = `${zipPath}.partial`;
  const out = createWriteStream(partial);
  let written = 0;
  const finished = new Promise<void>((resolve, reject) => {
    out.on("finish", resolve);
    out.on("error", reject);
  });
  const zip = new Zip((error, chunk, final) => {
    if (error) throw error;
    written += chunk.length;
    out.write(chunk);
    if (final) out.end();
  });
  const { readFileSync } = await import("node:fs");
  const pool = variation === "pixels" ? new ThreadPool<{ index: number }, Uint8Array>(siblingModule(import.meta.url, "generate-worker"), { name: "generate", size: availableParallelism(), workerData: { originals } }) : null;
  await pool?.ready;
  // libvips runs each photo on its own thread pool; one thread per photo, a window of photos in flight.
  sharp?.concurrency(1);
  const sharpPhoto = sharp ? makeSharpPhoto(sharp, originals, new Map(), new Map()) : null;
  const make = (index: number): Promise<Uint8Array> =>
    pool ? pool.run({ index }) : sharpPhoto ? sharpPhoto(index) : Promise.resolve(withComment(new Uint8Array(readFileSync(originals[index % originals.length]!)), `edgetune bench/scale photo ${index}`));
  // Bounded window of tasks in flight; entries are added in index order so the archive is the same on every run.
  const WINDOW = sharp ? availableParallelism() : 64;
  const inFlight = new Map<number, Promise<Uint8Array>>();
  for (let next = 0; next < Math.min(WINDOW, count); next++) inFlight.set(next, make(next));
  for (let index = 0; index < count; index++) {
    const jpeg = await inFlight.get(index)!;
    inFlight.delete(index);
    if (index + WINDOW < count) inFlight.set(index + WINDOW, make(index + WINDOW));
    const entry = new ZipPassThrough(`${originalFolders[index % originals.length]}/gen_${String(index).padStart(6, "0")}.jpg`);
    zip.add(entry);
    entry.push(jpeg, true);
    if ((index + 1) % 2000 === 0) log(`generated ${index + 1}/${count} (${(written / 1e6).toFixed(0)} MB, ${((performance.now() - started) / 1000).toFixed(0)} s)`);
  }
  zip.end();
  await finished;
  await pool?.close();
  renameSync(partial, zipPath);
  return { zipPath, count, bytes: statSync(zipPath).size, labels, generatedS: (performance.now() - started) / 1000 };
}
