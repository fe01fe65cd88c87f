/**
 * Talking to the JobDispatcher Durable Object (workers/durable/job-dispatcher.ts): wake waiting runners when a job
 * may have become leasable, and the long-poll loop of the lease route.
 */
import { and, eq, min, sql } from "drizzle-orm";
import { jobs } from "../db/schema";
import type { JobDispatcher } from "../durable/job-dispatcher";
import { DISPATCHER_NAME } from "../durable/job-dispatcher";
import type { Db } from "./db";
import { leaseJob, type Lease, type OnSweptJobEnd } from "./jobs";

/** The binding as the lease route needs it (the generated Env types it loosely). */
export type DispatcherNamespace = DurableObjectNamespace<JobDispatcher>;

function dispatcher(namespace: DispatcherNamespace): DurableObjectStub<JobDispatcher> {
  return namespace.get(namespace.idFromName(DISPATCHER_NAME));
}

/**
 * Wakes waiting runners. Never throws: D1 is the source of truth and every waiting runner re-checks it at the end
 * of its wait anyway, so a failed wake-up only delays a lease (logged).
 */
export async function wakeRunners(namespace: DispatcherNamespace | undefined): Promise<void> {
  if (!namespace) return;
  try {
    await dispatcher(namespace).wake();
  } catch (error) {
    console.warn(`wakeRunners: ${(error as Error).message}; waiting runners will find the job at their next check`);
  }
}

/**
 * When D1 may next have a job to lease without anyone waking us: the earliest `run_after` of a queued job (backoff)
 * and the earliest `lease_expires_at` of a running one (the sweep inside leaseJob requeues it). One query.
 */
export async function nextDueMs(db: Db): Promise<number | null> {
  const row = await db
    .select({
      queued: sql<string | null>`(select ${min(jobs.runAfter)} from ${jobs} where ${and(eq(jobs.status, "queued"), eq(jobs.cancelRequested, false))})`,
      running: sql<string | null>`(select ${min(jobs.leaseExpiresAt)} from ${jobs} where ${eq(jobs.status, "running")})`,
    })
    .from(sql`(select 1)`)
    .get();
  const times = [row?.queued, row?.running].filter((value): value is string => !!value).map((value) => Date.parse(value));
  return times.length ? Math.min(...times) : null;
}

/**
 * A due time that has already passed but gave no lease (another runner won it, or a job that the claim skips) is
 * retried after this long, not at once: no hot loop whatever the claim's rules.
 */
const MIN_RECHECK_MS = 1000;

/**
 * The lease long poll: claim a job now, or wait on the dispatcher until woken, until the next due time, or until
 * `waitMs` has passed, and claim again. Returns null when the wait ends without a job.
 */
export async function leaseWithWait(db: Db, namespace: DispatcherNamespace | undefined, runnerId: string, waitMs: number, signal?: AbortSignal, runningQuota?: number, onEnded?: OnSweptJobEnd): Promise<Lease | null> {
  const deadline = Date.now() + waitMs;
  const stub = namespace ? dispatcher(namespace) : null;
  for (;;) {
    const seen = stub ? await stub.generation() : 0;
    const lease = await leaseJob(db, runnerId, Date.now(), runningQuota, onEnded);
    if (lease) return lease;
    const now = Date.now();
    if (now >= deadline || signal?.aborted) return null;
    const due = await nextDueMs(db);
    const untilDue = due === null ? Infinity : Math.max(MIN_RECHECK_MS, due - now);
    const waitFor = Math.min(deadline - now, untilDue);
    if (stub) await stub.wait(seen, waitFor);
    else await new Promise((resolve) => setTimeout(resolve, Math.min(waitFor, MIN_RECHECK_MS))); // no binding: poll once a second
  }
}
