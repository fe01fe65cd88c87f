/**
 * The bench/scale data set: `count` distinct photos generated from ../shared/datasets/flowers5 (see
 * generate-worker.ts), written once as a stored (uncompressed) zip to bench/out/scale/flowers5-<count>.zip and reused
 * by later runs. Generation runs on a worker pool, one thread per core, and streams into the zip (memory stays small).
 */
import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { Zip, ZipPassThrough } from "fflate";
import { ThreadPool } from "../../gpu-runner/src/threads/pool";
import { siblingModule } from "../../gpu-runner/src/threads/start-worker";

export interface GeneratedSet {
  zipPath: string;
  count: number;
  bytes: number;
  labels: string[];
  /** Seconds spent generating (0 when the cached file was reused). */
  generatedS: number;
}

/**
 * "pixels": new photos (crop, flip, resize, re-encode; generate-worker.ts). "comment": each original's bytes with a
 * JPEG comment segment naming the index: distinct files (their own sha256, so the runner embeds each one) with the
 * original's pixels, generated at disk speed; throughput figures hold, accuracy figures do not (val copies train).
 */
export type Variation = "pixels" | "comment";

/** The JPEG with a COM segment (FF FE, length, text) right after its SOI marker. */
function withComment(jpeg: Uint8Array, text: string): Uint8Array {
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
  const originalLabels: string[] = [];
  for (let i = 0; byLabel.some((files) => i < files.length); i++) {
    byLabel.forEach((files, l) => {
      if (i < files.length) originals.push(files[i]!), originalLabels.push(labels[l]!);
    });
  }
  mkdirSync(outDir, { recursive: true });
  const zipPath = path.join(outDir, `flowers5-${count}${variation === "comment" ? "-comment" : ""}.zip`);
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
  const make = (index: number): Promise<Uint8Array> =>
    pool ? pool.run({ index }) : Promise.resolve(withComment(new Uint8Array(readFileSync(originals[index % originals.length]!)), `edgetune bench/scale photo ${index}`));
  // Bounded window of tasks in flight; entries are added in index order so the archive is the same on every run.
  const WINDOW = 64;
  const inFlight = new Map<number, Promise<Uint8Array>>();
  for (let next = 0; next < Math.min(WINDOW, count); next++) inFlight.set(next, make(next));
  for (let index = 0; index < count; index++) {
    const jpeg = await inFlight.get(index)!;
    inFlight.delete(index);
    if (index + WINDOW < count) inFlight.set(index + WINDOW, make(index + WINDOW));
    const entry = new ZipPassThrough(`${originalLabels[index % originals.length]}/gen_${String(index).padStart(6, "0")}.jpg`);
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
