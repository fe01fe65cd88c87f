/**
 * Where the CLI finds the API and its key (../shared CLI.md): `--url`/`--key`, then EDGETUNE_URL/EDGETUNE_API_KEY,
 * then the file `edgetune login` writes (in the user's config directory, mode 0600), then http://127.0.0.1:8787
 * without a key.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const DEFAULT_URL = "http://127.0.0.1:8787";

export interface SavedConfig {
  url?: string;
  key?: string;
  project_id?: string;
}

/** `$EDGETUNE_CONFIG_DIR`, else the platform's per-user config directory + `/edgetune`. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.EDGETUNE_CONFIG_DIR) return env.EDGETUNE_CONFIG_DIR;
  if (process.platform === "win32") return path.join(env.APPDATA ?? path.join(os.homedir(), "AppData", "Roaming"), "edgetune");
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Application Support", "edgetune");
  return path.join(env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config"), "edgetune");
}

export const configFile = (env: NodeJS.ProcessEnv = process.env) => path.join(configDir(env), "config.json");

export function readConfig(env: NodeJS.ProcessEnv = process.env): SavedConfig {
  try {
    return JSON.parse(fs.readFileSync(configFile(env), "utf8")) as SavedConfig;
  } catch {
    return {};
  }
}

/** Writes the config readable by its owner only (it holds an API key). */
export function writeConfig(config: SavedConfig, env: NodeJS.ProcessEnv = process.env): string {
  const file = configFile(env);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  fs.chmodSync(file, 0o600); // an existing file keeps its old mode otherwise
  return file;
}

export function resolveConnection(flags: { url?: string; key?: string }, env: NodeJS.ProcessEnv = process.env): { url: string; key?: string; source: string } {
  const saved = readConfig(env);
  const url = flags.url ?? env.EDGETUNE_URL ?? saved.url ?? DEFAULT_URL;
  const key = flags.key ?? env.EDGETUNE_API_KEY ?? saved.key;
  const source = flags.key ? "--key" : env.EDGETUNE_API_KEY ? "EDGETUNE_API_KEY" : saved.key ? configFile(env) : "none";
  return { url, key, source };
}
