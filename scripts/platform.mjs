// Starts the local platform: D1 migrations, `wrangler dev` (workerd with persisted D1/R2/Queue state) on 127.0.0.1,
// and optionally a local runner. Used by `npm start`, the end-to-end tests and the benchmarks.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Keeps wrangler off the network (measured with strace, ../shared/notes/FACTS.md) and out of prompts. */
export const OFFLINE_ENV = {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_HIDE_BANNER: "true",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  CI: "true",
  NO_UPDATE_NOTIFIER: "1",
};

const wranglerBin = path.join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/**
 * A runner's idle long poll (`POST /v1/runner/lease 204`): one every ~20 s per runner, saying nothing. Left out of
 * the log so that requests that did something stay readable.
 */
export function isIdleLongPoll(line) {
  return /\bPOST \/v1\/runner\/lease 204\b/.test(line);
}

/** Writes a file only its owner can read (0600), in a folder only its owner can enter (0700): local secrets and state. */
export function writePrivateFile(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, text, { mode: 0o600 });
  fs.chmodSync(file, 0o600); // an existing file keeps its mode on write
}

/** Reads a secret kept in the state folder, creating it on first use (0600). */
export function persistentSecret(stateDir, name, prefix) {
  const file = path.join(stateDir, name);
  if (fs.existsSync(file)) {
    fs.chmodSync(file, 0o600); // state folders made by older versions were world-readable
    return fs.readFileSync(file, "utf8").trim();
  }
  const secret = `${prefix}${randomBytes(24).toString("base64url")}`;
  writePrivateFile(file, secret + "\n");
  return secret;
}

/**
 * The local runner's token: registered once through the API (POST /v1/runners with the admin key, exactly as an
 * operator registers a remote runner) and kept in the state folder (0600); registered again when it was revoked.
 */
async function localRunnerToken(url, adminKey, secretsDir) {
  const file = path.join(secretsDir, "runner-token");
  if (fs.existsSync(file)) {
    fs.chmodSync(file, 0o600);
    const token = fs.readFileSync(file, "utf8").trim();
    const me = await fetch(`${url}/v1/runner/me`, { headers: { authorization: `Bearer ${token}` } });
    if (me.ok) return token;
  }
  const res = await fetch(`${url}/v1/runners`, { method: "POST", headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" }, body: JSON.stringify({ name: "local runner (npm start)" }) });
  if (res.status !== 201) throw new Error(`registering the local runner failed: ${res.status} ${await res.text()}`);
  const { token } = await res.json();
  writePrivateFile(file, token + "\n");
  return token;
}

export function applyMigrations(stateDir, log = () => {}) {
  const result = spawnSync(process.execPath, [wranglerBin, "d1", "migrations", "apply", "edgetune", "--local", "--persist-to", stateDir], {
    cwd: ROOT, env: { ...process.env, ...OFFLINE_ENV }, encoding: "utf8",
  });
  log(result.stdout);
  if (result.status !== 0) throw new Error(`applying D1 migrations failed:\n${result.stdout}\n${result.stderr}`);
}

async function waitForHttp(url, timeoutMs, child) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with code ${child.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`the API did not answer on ${url} within ${timeoutMs} ms`);
}

/**
 * Puts the vendored builtin backbones into local R2 (scripts/publish-builtins.ts; skipped when already there).
 * A runner would also publish a missing builtin on its first job, but the edge should not depend on that.
 */
export function publishBuiltinsLocally(stateDir, log = () => {}) {
  const result = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "scripts", "publish-builtins.ts"), "--local", "--persist-to", stateDir], {
    cwd: ROOT, env: { ...process.env, ...OFFLINE_ENV }, encoding: "utf8",
  });
  log(result.stdout);
  if (result.status !== 0) throw new Error(`publishing the builtin backbones failed:\n${result.stdout}\n${result.stderr}`);
}

/**
 * Secrets never go on a command line (any local user can read those with `ps`): wrangler gets the admin key from an
 * env file (0600) in the state folder, the runner its token through its environment.
 *
 * @param {{port?: number, stateDir?: string, adminKey?: string, runner?: boolean | string[],
 *          vars?: Record<string, string>, log?: (line: string) => void, quiet?: boolean, sweepEveryMs?: number,
 *          publishBuiltins?: boolean}} options
 *          (vars: extra Worker variables, written to the 0600 env file)
 *   publishBuiltins: put the vendored builtin backbones into local R2 first (`npm start` does; about 2 x 4 s of
 *   wrangler the first time, so tests leave it to the runner, which publishes a missing builtin on its first job).
 */
export async function startPlatform(options = {}) {
  const port = Number(options.port ?? process.env.PORT ?? 8787);
  const stateDir = path.resolve(options.stateDir ?? path.join(ROOT, ".wrangler", "state"));
  const secretsDir = path.join(stateDir, "edgetune");
  const adminKey = options.adminKey ?? process.env.EDGETUNE_ADMIN_KEY ?? persistentSecret(secretsDir, "admin-key", "et_admin_");
  const log = options.log ?? ((line) => process.stdout.write(line));
  const started = Date.now();
  applyMigrations(stateDir);
  if (options.publishBuiltins) publishBuiltinsLocally(stateDir, options.quiet ? () => {} : log);
  fs.chmodSync(stateDir, 0o700);
  const envFile = path.join(secretsDir, "wrangler.env");
  const vars = { EDGETUNE_ADMIN_KEY: adminKey, ...(options.vars ?? {}) };
  writePrivateFile(envFile, Object.entries(vars).map(([k, v]) => `${k}=${JSON.stringify(String(v))}`).join("\n") + "\n");
  const url = `http://127.0.0.1:${port}`;
  const children = [];
  // Children run in their own process groups (so a stop reaches workerd and the runner's workers too); a small
  // watcher stops those groups if this process dies without calling stop() (SIGKILL, closed terminal).
  const watcher = spawn(process.execPath, [path.join(ROOT, "scripts", "stop-with-parent.mjs")], { stdio: ["pipe", "ignore", "ignore"], detached: true });
  watcher.unref();
  watcher.stdin.unref?.();
  const watch = (child) => { try { watcher.stdin.write(`${child.pid}\n`); } catch {} };
  const wrangler = spawn(
    process.execPath,
    [wranglerBin, "dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", stateDir, "--show-interactive-dev-session=false", "--test-scheduled",
      "--env-file", envFile],
    { cwd: ROOT, env: { ...process.env, ...OFFLINE_ENV }, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  children.push(wrangler);
  watch(wrangler);
  const forward = (prefix) => (chunk) => { if (!options.quiet) for (const line of chunk.toString().split("\n")) if (line.trim() && !isIdleLongPoll(line)) log(`${prefix} ${line}\n`); };
  wrangler.stdout.on("data", forward("[api]"));
  wrangler.stderr.on("data", forward("[api]"));
  await waitForHttp(`${url}/`, 60_000, wrangler);
  const readyMs = Date.now() - started;
  // wrangler dev runs no Cron Triggers: call the scheduled handler (workers/services/sweeps.ts) on the deployed period,
  // so stalled ingests, lapsed leases and deletions recover locally too. --test-scheduled exposes /__scheduled (the
  // /cdn-cgi/handler/scheduled route answers 500 when the Worker has static assets, wrangler 4.86).
  // EDGETUNE_SWEEP_MS=0 turns it off.
  const sweepEveryMs = Number(options.sweepEveryMs ?? process.env.EDGETUNE_SWEEP_MS ?? 60_000);
  const sweepTimer = sweepEveryMs > 0 ? setInterval(() => { fetch(`${url}/__scheduled?cron=*+*+*+*+*`).then((r) => r.arrayBuffer()).catch(() => {}); }, sweepEveryMs) : null;
  sweepTimer?.unref();
  const runnerToken = await localRunnerToken(url, adminKey, secretsDir);
  const runnerArgs = options.runner === false ? null : Array.isArray(options.runner) ? options.runner : [];
  if (runnerArgs && fs.existsSync(path.join(ROOT, "gpu-runner", "src", "main.ts"))) {
    // `node --import tsx` (one process), not the tsx CLI (which runs the script in a child process).
    const runner = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "gpu-runner", "src", "main.ts"), ...runnerArgs], {
      cwd: ROOT, env: { ...process.env, EDGETUNE_API_URL: url, EDGETUNE_RUNNER_TOKEN: runnerToken }, stdio: ["ignore", "pipe", "pipe"], detached: true,
    });
    children.push(runner);
    watch(runner);
    runner.stdout.on("data", forward("[runner]"));
    runner.stderr.on("data", forward("[runner]"));
  }
  async function stop() {
    if (sweepTimer) clearInterval(sweepTimer);
    for (const child of children.reverse()) {
      if (child.exitCode !== null) continue;
      try { process.kill(-child.pid, "SIGTERM"); } catch {}
      const exited = await Promise.race([new Promise((r) => child.once("exit", () => r(true))), new Promise((r) => setTimeout(() => r(false), 8000))]);
      if (!exited) try { process.kill(-child.pid, "SIGKILL"); } catch {}
    }
    watcher.stdin.end(); // nothing left for it to stop
  }
  return { url, adminKey, runnerToken, stateDir, readyMs, children, stop, wranglerPid: wrangler.pid };
}
