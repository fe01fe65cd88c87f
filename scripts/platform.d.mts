// Types of scripts/platform.mjs, for TypeScript callers (benchmarks, end-to-end tests).
import type { ChildProcess } from "node:child_process";

export const ROOT: string;
export const OFFLINE_ENV: Record<string, string>;
export function freePort(): Promise<number>;
export function isIdleLongPoll(line: string): boolean;
export function persistentSecret(stateDir: string, name: string, prefix: string): string;
export function writePrivateFile(file: string, text: string): void;
export function applyMigrations(stateDir: string, log?: (text: string) => void): void;
export function publishBuiltinsLocally(stateDir: string, log?: (text: string) => void): void;
export interface StartedPlatform {
  url: string;
  adminKey: string;
  runnerToken: string;
  stateDir: string;
  readyMs: number;
  children: ChildProcess[];
  stop(): Promise<void>;
  wranglerPid: number;
}
export function startPlatform(options?: {
  port?: number;
  stateDir?: string;
  adminKey?: string;
  runner?: boolean | string[];
  /** Extra Worker variables (written to the 0600 env file, never on a command line). */
  vars?: Record<string, string>;
  log?: (line: string) => void;
  quiet?: boolean;
  /** How often to call the scheduled handler (ms; default 60,000, 0 = never); wrangler dev runs no crons itself. */
  sweepEveryMs?: number;
  /** Extra `--var NAME:value` for wrangler dev (e.g. D1_METER_HEADERS: "true"). */
  vars?: Record<string, string>;
  publishBuiltins?: boolean;
}): Promise<StartedPlatform>;
