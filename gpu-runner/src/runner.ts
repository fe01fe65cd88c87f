/**
 * The lease loop: long-poll the API for a job, run it, repeat. Any number of runners can share one API; D1 gives
 * each job to one of them at a time. `stop()` (SIGTERM) ends the loop: a running job is given back to the queue
 * at once (not counted as an attempt) and the process can exit within seconds.
 */
import { randomBytes } from "node:crypto";
import { availableParallelism, hostname } from "node:os";
import { jitteredBackoffMs } from "../../shared/retry";
import type { BackboneBundle, FeatureSpec } from "../../shared/backbone/types";
import type { ImageCodecs } from "../../shared/image/codecs";
import { ApiCallError, RunnerClient } from "./api-client";
import { getNodeCodecs } from "./codecs-node";
import { DecodePool } from "./decode/decode-pool";
import { TrainingThread } from "./train/off-thread";
import { createEngine, type EmbeddingEngine, type EngineOptions } from "./engine/index";
import { runJob, type JobOutcome } from "./run-job";

export interface RunnerOptions {
  apiUrl: string;
  token: string;
  runnerId?: string;
  engine?: EngineOptions["engine"];
  threads?: number;
  /**
   * Long-poll length per lease call (the API caps it at 25 s). A poll in flight is not cut short on shutdown (the
   * API would not notice the disconnect and could lease a job to nobody, losing it for a lease period): the
   * runner waits for the answer and hands back what it got. So this bounds the shutdown time; 8 s fits within
   * Docker's and Kubernetes' default 10 s and 30 s stop grace periods.
   */
  waitS?: number;
  /** Stop after this many jobs (tests, one-shot containers). */
  maxJobs?: number;
  log?: (msg: string) => void;
}

/** Retry delays when the API is unreachable: 1, 2, 4 ... 30 s. */
const MAX_RETRY_DELAY_MS = 30_000;

export class Runner {
  readonly id: string;
  readonly client: RunnerClient;
  private readonly shutdown = new AbortController();
  private readonly log: (msg: string) => void;
  private engine: { key: string; engine: Promise<EmbeddingEngine> } | null = null;
  private codecs: Promise<ImageCodecs> | null = null;
  /** One decoding thread per core (or `threads`), started with the first job and kept for the runner's life. */
  private decodePool: DecodePool | null = null;
  /** One training thread for the runner's life, started with the loop: a retrain pays no thread start. */
  private readonly trainingThread = new TrainingThread();
  readonly outcomes: JobOutcome[] = [];

  constructor(private readonly options: RunnerOptions) {
    this.id = options.runnerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.client = new RunnerClient(options.apiUrl.replace(/\/+$/, ""), options.token);
    this.log = options.log ?? ((msg) => console.log(`[runner ${this.id}] ${msg}`));
  }

  /** One engine at a time, rebuilt when a job needs another backbone or feature spec (bounds memory). */
  private engineFor = async (bundle: BackboneBundle, feature: FeatureSpec, trust: "builtin" | "user"): Promise<EmbeddingEngine> => {
    const key = `${trust}|${bundle.name}|${JSON.stringify(feature)}`;
    if (this.engine?.key !== key) {
      const previous = this.engine;
      if (previous) await (await previous.engine.catch(() => null))?.close();
      const engine = createEngine(bundle, feature, { engine: this.options.engine ?? "auto", threads: this.options.threads, log: this.log, trust });
      this.engine = { key, engine };
      engine.catch(() => {
        if (this.engine?.engine === engine) this.engine = null;
      });
    }
    return this.engine!.engine;
  };

  /** Runs until `stop()` (or `maxJobs`). Resolves when the loop has ended and any running job was reported. */
  async run(): Promise<void> {
    const signal = this.shutdown.signal;
    this.codecs ??= getNodeCodecs();
    this.trainingThread.warmUp().catch((error) => this.log(`training thread: ${(error as Error).message}; retried at the first job`));
    let failures = 0;
    this.log(`leasing jobs from ${this.client.apiUrl}`);
    while (!signal.aborted && (this.options.maxJobs === undefined || this.outcomes.length < this.options.maxJobs)) {
      let leased;
      try {
        leased = await this.client.lease(this.id, this.options.waitS ?? 8, []);
        failures = 0;
        if (leased && signal.aborted) {
          await this.client.fail(leased.job.id, { lease_token: leased.lease.token, error: "the runner shut down", release: true });
          this.log(`job ${leased.job.id}: leased while shutting down; given back`);
          break;
        }
      } catch (error) {
        if (signal.aborted) break;
        const fatal = error instanceof ApiCallError && (error.status === 401 || error.status === 503);
        const retryMs = jitteredBackoffMs(failures++, { baseMs: 1000, maxMs: MAX_RETRY_DELAY_MS });
        this.log(`lease failed: ${(error as Error).message}${fatal ? "" : `; retrying in ${(retryMs / 1000).toFixed(1)} s`}`);
        if (fatal && error.status === 401) throw error;
        await sleep(retryMs, signal);
        continue;
      }
      if (!leased) continue;
      this.log(`job ${leased.job.id}: leased (attempt ${leased.job.attempt}/${leased.job.max_attempts}, ${leased.images.length} images, backbone ${leased.backbone.name})`);
      this.decodePool ??= new DecodePool({ threads: this.options.threads, log: this.log });
      const outcome = await runJob({ client: this.client, leased, engineFor: this.engineFor, codecs: await this.codecs, decodePool: this.decodePool, trainingThread: this.trainingThread, threads: this.options.threads ?? availableParallelism(), shutdown: signal, log: this.log });
      this.outcomes.push(outcome);
    }
    const current = this.engine;
    this.engine = null;
    if (current) await (await current.engine.catch(() => null))?.close();
    await this.decodePool?.close();
    this.decodePool = null;
    await this.trainingThread.close();
  }

  /** Ends the loop; a running job is given back to the queue. */
  stop(): void {
    this.shutdown.abort();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}
