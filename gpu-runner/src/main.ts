#!/usr/bin/env node
/**
 * edgetune runner: leases fine-tune jobs from the API over HTTP and runs them. Needs no inbound connectivity.
 *
 *   EDGETUNE_RUNNER_TOKEN=<runner token> npm run runner -- --api http://127.0.0.1:8787 [--engine auto|onnx|
 *                     tfjs-node-gpu|tfjs-node|webgpu|tfjs-wasm|tfjs-cpu] [--threads N] [--id NAME] [--max-jobs N]
 *
 * The token (from POST /v1/runners) comes from EDGETUNE_RUNNER_TOKEN or a file named by --token-file, never from the
 * command line: every local user can read a process's arguments with `ps`.
 * Flags fall back to EDGETUNE_API_URL, EDGETUNE_ENGINE, EDGETUNE_THREADS, EDGETUNE_RUNNER_ID.
 * SIGTERM / SIGINT: the running job is given back to the queue, then the process exits.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { AUTO_ORDER } from "./engine/index";
import type { EngineKind } from "./engine/types";
import { Runner } from "./runner";

const { values } = parseArgs({
  options: {
    api: { type: "string" },
    token: { type: "string" },
    "token-file": { type: "string" },
    engine: { type: "string" },
    threads: { type: "string" },
    id: { type: "string" },
    "max-jobs": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

const usage = "usage: EDGETUNE_RUNNER_TOKEN=... runner --api URL [--token-file FILE] [--engine auto|" + AUTO_ORDER.join("|") + "] [--threads N] [--id NAME] [--max-jobs N]";
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const apiUrl = values.api ?? process.env.EDGETUNE_API_URL;
if (values.token !== undefined) {
  console.error("--token puts the secret on the command line, where `ps` shows it to every local user; set EDGETUNE_RUNNER_TOKEN or use --token-file FILE");
  process.exit(2);
}
const token = values["token-file"] ? readFileSync(values["token-file"], "utf8").trim() : process.env.EDGETUNE_RUNNER_TOKEN;
const engine = (values.engine ?? process.env.EDGETUNE_ENGINE ?? "auto") as "auto" | EngineKind;
if (!apiUrl || !token) {
  console.error(`the API URL and the runner token are required (--api or EDGETUNE_API_URL; EDGETUNE_RUNNER_TOKEN or --token-file)\n${usage}`);
  process.exit(2);
}
if (engine !== "auto" && !AUTO_ORDER.includes(engine)) {
  console.error(`unknown engine '${engine}'; one of auto, ${AUTO_ORDER.join(", ")}`);
  process.exit(2);
}
const threadsText = values.threads ?? process.env.EDGETUNE_THREADS;
const threads = threadsText ? Number(threadsText) : undefined;
if (threads !== undefined && !(Number.isInteger(threads) && threads > 0)) {
  console.error(`--threads must be a positive integer, got '${threadsText}'`);
  process.exit(2);
}
const maxJobs = values["max-jobs"] ? Number(values["max-jobs"]) : undefined;

const runner = new Runner({ apiUrl, token, engine, threads, runnerId: values.id ?? process.env.EDGETUNE_RUNNER_ID, maxJobs });
let signals = 0;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (++signals > 1) process.exit(1);
    console.log(`[runner ${runner.id}] ${signal}: giving the running job back and stopping`);
    runner.stop();
  });
}
try {
  await runner.run();
  process.exit(0);
} catch (error) {
  console.error(`[runner ${runner.id}] stopped: ${(error as Error).message}`);
  process.exit(1);
}
