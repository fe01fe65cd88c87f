/**
 * Memory of the local platform's Worker, for benchmarks: the workerd processes' RSS (from /proc) and the isolate's own
 * heap through the DevTools protocol that `wrangler dev` serves (Runtime.getHeapUsage: the JS heap in use and
 * ArrayBuffer backing stores; WASM memories are not among them). With the WASM memories, the isolate heap is what
 * Cloudflare's 128 MB per-isolate limit counts; process RSS adds the runtime, miniflare's D1 and R2 simulators (they
 * run in the same workerd), compiled code and allocator slack.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";

export interface WorkerdProcess {
  pid: number;
  rssMb: number;
  peakMb: number;
}

/** workerd processes under `wranglerPid`, with their RSS and peak RSS (VmHWM) in MB. */
export function workerdProcesses(wranglerPid: number): WorkerdProcess[] {
  const parents = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      names.set(Number(entry), stat.slice(stat.indexOf("(") + 1, close));
      parents.set(Number(entry), Number(stat.slice(close + 2).split(" ")[1]));
    } catch {}
  }
  const descends = (pid: number) => {
    for (let p = pid, hops = 0; p > 1 && hops < 10; p = parents.get(p) ?? 0, hops++) if (p === wranglerPid) return true;
    return false;
  };
  return [...names].filter(([pid, name]) => name === "workerd" && descends(pid)).map(([pid]) => {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { pid, rssMb: kb("VmRSS") / 1024, peakMb: kb("VmHWM") / 1024 };
  });
}

export interface HeapUsage {
  jsMb: number;
  buffersMb: number;
  totalMb: number;
}

export interface IsolateInspector {
  /** The heap now (no collection first: sampled during a request, this sees its garbage too). */
  heap(): Promise<HeapUsage | null>;
  /** Asks for a collection, waits for it, then reads: what stays live. */
  heapAfterGc(): Promise<HeapUsage | null>;
  close(): void;
}

const timeout = <T>(promise: Promise<T>, ms = 5000) => Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("inspector timeout")), ms))]);

/** A DevTools connection to the Worker isolate of the platform started as `wranglerPid`, or null when none answers. */
export async function connectInspector(wranglerPid: number): Promise<IsolateInspector | null> {
  const pids = new Set(workerdProcesses(wranglerPid).map((p) => p.pid));
  const ports = execFileSync("ss", ["-ltnpH"], { encoding: "utf8" }).split("\n").filter((line) => [...pids].some((pid) => line.includes(`pid=${pid},`))).map((line) => Number(/127\.0\.0\.1:(\d+)/.exec(line)?.[1])).filter(Boolean);
  // `ws` comes with wrangler (miniflare); Node 20 has no global WebSocket. Typed loosely: no @types/ws here.
  const wsModule = "ws";
  const WebSocketClass = ((await import(wsModule).catch(() => null)) as { default?: new (url: string) => any } | null)?.default;
  if (!WebSocketClass) return null;
  for (const port of ports) {
    const targets = await fetch(`http://127.0.0.1:${port}/json`, { signal: AbortSignal.timeout(1000) }).then((r) => r.json()).catch(() => null);
    if (!Array.isArray(targets)) continue;
    // wrangler's inspector proxy names the user Worker "Cloudflare Worker"; workerd's own lists every service.
    for (const target of targets.filter((t) => /Cloudflare Worker|core:user:/.test(String(t?.title)))) {
      const inspector = await openTarget(WebSocketClass, String(target.webSocketDebuggerUrl));
      if (inspector) return inspector;
    }
  }
  return null;
}

/** A connection to one DevTools target, or null when it does not answer Runtime.getHeapUsage. */
async function openTarget(WebSocketClass: new (url: string) => any, url: string): Promise<IsolateInspector | null> {
  const ws = new WebSocketClass(url);
  try {
    await timeout(new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject))));
  } catch {
    ws.close();
    return null;
  }
  let id = 0;
  const send = (method: string) => timeout(new Promise<any>((resolve) => {
    const mine = ++id;
    const onMessage = (data: unknown) => {
      const message = JSON.parse(String(data));
      if (message.id === mine) (ws.off("message", onMessage), resolve(message));
    };
    ws.on("message", onMessage);
    ws.send(JSON.stringify({ id: mine, method, params: {} }));
  }));
  const heap = async (): Promise<HeapUsage | null> => {
    const usage = (await send("Runtime.getHeapUsage").catch(() => null))?.result;
    if (!usage) return null;
    const jsMb = (usage.usedSize + (usage.embedderHeapUsedSize ?? 0)) / 2 ** 20;
    const buffersMb = (usage.backingStorageSize ?? 0) / 2 ** 20;
    return { jsMb, buffersMb, totalMb: jsMb + buffersMb };
  };
  if (!(await heap())) {
    ws.close();
    return null;
  }
  return {
    heap,
    async heapAfterGc() {
      // wrangler's inspector proxy never answers collectGarbage, but the isolate does collect: ask, wait, then read.
      ws.send(JSON.stringify({ id: 100_000 + ++id, method: "HeapProfiler.collectGarbage", params: {} }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      return heap();
    },
    close: () => ws.close(),
  };
}

/**
 * Samples `inspector.heap()` every `everyMs` while `work` runs, and once as it ends: the largest reading (the route's
 * peak, give or take what was collected between samples). The isolate answers the inspector between its own tasks,
 * so a request that never yields is seen only at its end.
 */
export async function peakHeapDuring<T>(inspector: IsolateInspector, work: Promise<T>, everyMs = 10): Promise<{ result: T; peak: HeapUsage | null; samples: number }> {
  let peak: HeapUsage | null = null;
  let samples = 0;
  let done = false;
  const sample = async () => {
    const usage = await inspector.heap();
    samples++;
    if (usage && (!peak || usage.totalMb > peak.totalMb)) peak = usage;
  };
  const sampling = (async () => {
    while (!done) {
      await sample();
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  let result: T;
  try {
    result = await work;
  } finally {
    done = true;
    await sampling;
  }
  await sample();
  return { result, peak, samples };
}
