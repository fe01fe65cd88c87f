/** Starts the real local platform (wrangler dev + optional runner) on a free port with its own state folder. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort, startPlatform } from "../../scripts/platform.mjs";
import { checkConsistency } from "./consistency";

export interface Platform {
  url: string;
  adminKey: string;
  runnerToken: string;
  stateDir: string;
  readyMs: number;
  wranglerPid: number;
  stop(): Promise<void>;
}

export { freePort };

/**
 * `stateDir` and `port` restart a platform on the state and address of an earlier one (tests/e2e/chaos.test.ts);
 * `sweepEveryMs` is how often the scheduled handler runs (scripts/platform.mjs, default 60 s).
 */
export async function startTestPlatform(options: { runner?: boolean | string[]; vars?: Record<string, string>; stateDir?: string; port?: number; sweepEveryMs?: number; checkOnStop?: boolean } = {}): Promise<Platform> {
  const stateDir = options.stateDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-e2e-"));
  const logFile = path.join(stateDir, "platform.log");
  const platform: Platform = await startPlatform({
    port: options.port ?? (await freePort()),
    stateDir,
    adminKey: "et_admin_e2e_0123456789abcdefghijk",
    runner: options.runner ?? false,
    vars: options.vars,
    sweepEveryMs: options.sweepEveryMs,
    log: (line: string) => fs.appendFileSync(logFile, line),
  });
  // Every e2e file ends with the consistency checker (issue 7): once the platform is stopped, its D1 and R2 state must
  // agree (no object without its row, no row without its object), whatever the test did to it.
  const stop = platform.stop.bind(platform);
  let checked = false;
  platform.stop = async () => {
    await stop();
    if (checked || options.checkOnStop === false) return;
    checked = true;
    const report = await checkConsistency(stateDir);
    if (report.problems.length > 0) throw new Error(`storage of ${stateDir} is inconsistent after the test:\n${report.problems.slice(0, 20).join("\n")}`);
  };
  return platform;
}

export async function api<T = any>(platform: Platform, method: string, route: string, init: { json?: unknown; body?: BodyInit; headers?: Record<string, string>; key?: string } = {}): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = { authorization: `Bearer ${init.key ?? platform.adminKey}`, ...(init.headers ?? {}) };
  let body = init.body;
  if (init.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(init.json);
  }
  const res = await fetch(platform.url + route, { method, headers, body });
  const text = await res.text();
  return { status: res.status, body: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : (text as any) };
}

export async function waitFor<T>(what: string, poll: () => Promise<T | null | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await poll();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The last `lines` lines wrangler wrote (startTestPlatform logs to `stateDir/platform.log`), for failure messages. */
export function platformLogTail(platform: Platform, lines = 30): string {
  const file = path.join(platform.stateDir, "platform.log");
  if (!fs.existsSync(file)) return "(no platform log)";
  return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/** Every process descending from `pid` (by walking /proc parent links). */
export function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {}
  }
  const out: number[] = [];
  const walk = (p: number) => { for (const [child, parent] of parentOf) if (parent === p) { out.push(child); walk(child); } };
  walk(pid);
  return out;
}
export const isAlive = (pid: number) => { try { process.kill(pid, 0); return !fs.readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z "); } catch { return false; } };
