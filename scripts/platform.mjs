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

/** Reads a secret kept in the state folder, creating it on first use. */
export function persistentSecret(stateDir, name, prefix) {
  const file = path.join(stateDir, name);
  if (fs.existsSync(file)) return fs.readFileSync(file, "utf8").trim();
  fs.mkdirSync(stateDir, { recursive: true });
  const secret = `${prefix}${randomBytes(20).toString("base64url")}`;
  fs.writeFileSync(file, secret + "\n", { mode: 0o600 });
  return secret;
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
 * @param {{port?: number, stateDir?: string, adminKey?: string, runnerToken?: string, runner?: boolean | string[],
 *          log?: (line: string) => void, quiet?: boolean, sweepEveryMs?: number, vars?: Record<string, string>}} options
 *          (vars: extra `--var NAME:value` for wrangler dev)
 */
export async function startPlatform(options = {}) {
  const port = Number(options.port ?? process.env.PORT ?? 8787);
  const stateDir = path.resolve(options.stateDir ?? path.join(ROOT, ".wrangler", "state"));
  const secretsDir = path.join(stateDir, "edgetune");
  const adminKey = options.adminKey ?? process.env.EDGETUNE_ADMIN_KEY ?? persistentSecret(secretsDir, "admin-key", "et_admin_");
  const runnerToken = options.runnerToken ?? process.env.EDGETUNE_RUNNER_TOKEN ?? persistentSecret(secretsDir, "runner-token", "et_runner_");
  const log = options.log ?? ((line) => process.stdout.write(line));
  const started = Date.now();
  applyMigrations(stateDir);
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
      "--var", `EDGETUNE_ADMIN_KEY:${adminKey}`, "--var", `RUNNER_TOKEN:${runnerToken}`,
      ...Object.entries(options.vars ?? {}).flatMap(([name, value]) => ["--var", `${name}:${value}`])],
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
