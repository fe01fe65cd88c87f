/**
 * Publishes the vendored builtin backbones (gpu-runner/vendor/, sha256s pinned in shared/catalog.ts) into R2, where
 * the edge loads them: `npm start` runs it against local R2 before the API starts, `npm run deploy` against the real
 * bucket. Weights live in R2, never in the Worker bundle (10.4 MB of float32 would exceed the script size limit).
 * The nsfwjs MobileNetV2 ships inside an npm package instead; a runner publishes it the first time it uses it.
 *
 *   node --import tsx scripts/publish-builtins.ts --local [--persist-to DIR]
 *   node --import tsx scripts/publish-builtins.ts --remote
 *
 * Locally it writes `DIR/edgetune/builtins-published.json` and skips files already published with the same sha256.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readPinnedFile, VENDOR_DIR } from "../gpu-runner/src/backbones/builtin-vendored";
import { BUILTIN_BACKBONES } from "../shared/catalog";
import { builtinObjectPrefix } from "../workers/services/object-keys";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OFFLINE_ENV = { WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true", NO_UPDATE_NOTIFIER: "1" };

export interface PublishOptions {
  target: "local" | "remote";
  /** Local state folder (wrangler's `--persist-to`). */
  persistTo?: string;
  log?: (line: string) => void;
}

function bucketName(): string {
  const match = /\[\[r2_buckets\]\][^[]*?bucket_name\s*=\s*"([^"]+)"/.exec(readFileSync(path.join(ROOT, "wrangler.toml"), "utf8"));
  if (!match) throw new Error("wrangler.toml names no R2 bucket ([[r2_buckets]] bucket_name)");
  return match[1]!;
}

/** Puts every vendored builtin's model.json and weights.bin (weights first: a present model.json means a complete pair). */
export async function publishBuiltins(options: PublishOptions): Promise<number> {
  const log = options.log ?? ((line: string) => console.log(line));
  const bucket = bucketName();
  const markerPath = options.persistTo ? path.join(options.persistTo, "edgetune", "builtins-published.json") : null;
  const published: Record<string, string> = markerPath && existsSync(markerPath) ? JSON.parse(readFileSync(markerPath, "utf8")) : {};
  let puts = 0;
  for (const entry of BUILTIN_BACKBONES) {
    if (!entry.vendored) continue;
    for (const file of ["weights.bin", "model.json"] as const) {
      const key = `${builtinObjectPrefix(entry.id)}/${file}`;
      const sha = entry.vendored.files[file];
      if (options.target === "local" && published[key] === sha) continue;
      await readPinnedFile(entry, file); // refuses a file whose sha256 differs from the pin
      const args = ["r2", "object", "put", `${bucket}/${key}`, "--file", path.join(VENDOR_DIR, entry.vendored.dir, file), `--${options.target}`];
      if (options.persistTo) args.push("--persist-to", options.persistTo);
      const result = spawnSync(process.execPath, [path.join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), ...args], { cwd: ROOT, env: { ...process.env, ...OFFLINE_ENV }, encoding: "utf8" });
      if (result.status !== 0) throw new Error(`publishing ${key} failed:\n${result.stdout}\n${result.stderr}`);
      published[key] = sha;
      puts++;
      log(`published ${entry.name} ${file} → r2://${bucket}/${key} (${options.target})`);
    }
  }
  if (markerPath && puts > 0) {
    mkdirSync(path.dirname(markerPath), { recursive: true });
    writeFileSync(markerPath, JSON.stringify(published, null, 2));
  }
  return puts;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const target = argv.includes("--remote") ? "remote" : argv.includes("--local") ? "local" : null;
  if (!target) {
    console.error("usage: node --import tsx scripts/publish-builtins.ts --local [--persist-to DIR] | --remote");
    process.exit(2);
  }
  const persistIndex = argv.indexOf("--persist-to");
  await publishBuiltins({ target, persistTo: persistIndex >= 0 ? path.resolve(argv[persistIndex + 1]!) : target === "local" ? path.join(ROOT, ".wrangler", "state") : undefined });
}
