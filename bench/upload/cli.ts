/**
 * bench/upload/cli: the CLI's own upload of a large ImageFolder (`edgetune datasets push DIR --no-wait`) against the
 * real local platform: MB/s of the upload and the peak RSS of the CLI process, for two folder sizes, to show the
 * memory stays flat (the zip is streamed, parts of 16 MiB, 3 in flight) instead of growing with the folder.
 * Prints numbers; asserts nothing.
 *   npx tsx bench/upload/cli.ts [--mb 2000] [--small-mb 200]
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "../../scripts/platform.mjs";
import { makeStoredPng } from "../../tests/fixtures/images";
import { startTestPlatform } from "../../tests/e2e/platform";

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) || fallback : fallback;
};
const sizesMb = [arg("small-mb", 200), arg("mb", 2000)];

/** A folder of `mb` MB: uncompressed noise PNGs of about 3 MB (1000x1000) in 10 labels. */
function makeFolder(mb: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `edgetune-bench-${mb}mb-`));
  const image = (seed: number) => makeStoredPng(1000, 1000, seed);
  const perImage = image(1).length;
  const count = Math.ceil((mb * 1e6) / perImage);
  for (let i = 0; i < count; i++) {
    const label = path.join(dir, `label${i % 10}`);
    fs.mkdirSync(label, { recursive: true });
    fs.writeFileSync(path.join(label, `img${i}.png`), image(i + 1));
  }
  return dir;
}

/** Peak RSS (VmHWM) of a running process in MB, or null once it has exited. */
function peakRssMb(pid: number): number | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return null;
  }
}

const platform = await startTestPlatform();
const home = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-bench-cli-"));
const results: string[] = [];
try {
  for (const mb of sizesMb) {
    const dir = makeFolder(mb);
    const bytes = fs.readdirSync(dir).flatMap((l) => fs.readdirSync(path.join(dir, l)).map((f) => fs.statSync(path.join(dir, l, f)).size)).reduce((a, b) => a + b, 0);
    const started = Date.now();
    const child = spawn(process.execPath, [path.join(ROOT, "cli/bin/edgetune.mjs"), "datasets", "push", dir, "--no-wait", "--json", "--url", platform.url, "--key", platform.adminKey], {
      cwd: ROOT, env: { PATH: process.env.PATH, HOME: home, EDGETUNE_CONFIG_DIR: path.join(home, "config") }, stdio: ["ignore", "pipe", "pipe"],
    });
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, peakRssMb(child.pid!) ?? peak)), 100);
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    clearInterval(sampler);
    const seconds = (Date.now() - started) / 1000;
    if (code !== 0) throw new Error(`push failed (${code}): ${stderr.slice(-2000)}`);
    const line = `folder ${(bytes / 1e6).toFixed(0)} MB: upload ${seconds.toFixed(1)} s, ${(bytes / 1e6 / seconds).toFixed(1)} MB/s (CLI start included), CLI peak RSS ${peak.toFixed(0)} MB`;
    console.log(line);
    results.push(line);
    fs.rmSync(dir, { recursive: true, force: true });
  }
} finally {
  await platform.stop();
}
console.log(`\n${results.join("\n")}\n(local wrangler dev + R2 on 127.0.0.1; a shared 2-core box: expect noise)`);
