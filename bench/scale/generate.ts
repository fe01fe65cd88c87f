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

export async function generateSet(flowersDir: string, outDir: string, count: number, log: (msg: string) => void): Promise<GeneratedSet> {
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
  const zipPath = path.join(outDir, `flowers5-${count}.zip`);
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
  const pool = new ThreadPool<{ index: number }, Uint8Array>(siblingModule(import.meta.url, "generate-worker"), { name: "generate", size: availableParallelism(), workerData: { originals } });
  await pool.ready;
  // Bounded window of tasks in flight; entries are added in index order so the archive is the same on every run.
  const WINDOW = 64;
  const inFlight = new Map<number, Promise<Uint8Array>>();
  for (let next = 0; next < Math.min(WINDOW, count); next++) inFlight.set(next, pool.run({ index: next }));
  for (let index = 0; index < count; index++) {
    const jpeg = await inFlight.get(index)!;
    inFlight.delete(index);
    if (index + WINDOW < count) inFlight.set(index + WINDOW, pool.run({ index: index + WINDOW }));
    const entry = new ZipPassThrough(`${originalLabels[index % originals.length]}/gen_${String(index).padStart(6, "0")}.jpg`);
    zip.add(entry);
    entry.push(jpeg, true);
    if ((index + 1) % 2000 === 0) log(`generated ${index + 1}/${count} (${(written / 1e6).toFixed(0)} MB, ${((performance.now() - started) / 1000).toFixed(0)} s)`);
  }
  zip.end();
  await finished;
  await pool.close();
  renameSync(partial, zipPath);
  return { zipPath, count, bytes: statSync(zipPath).size, labels, generatedS: (performance.now() - started) / 1000 };
}
