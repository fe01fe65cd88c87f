/**
 * Runners and their tokens. Each runner has its own token (`et_rnr_` + 32 base32 characters, 160 random bits), shown
 * once at creation; D1 keeps only its SHA-256, so a copy of the database opens no runner. A runner token opens the
 * runner protocol (/v1/runner/...), and there only what the job it currently leases needs (routes/runner.ts); revoking
 * it ends its access at its next request.
 */
import { and, desc, eq, inArray, isNull, sql } from "drizzle-orm";
import { newId, randomString, sha256Hex } from "../../shared/ids";
import { jobs, runners } from "../db/schema";
import type { Db } from "./db";
import { nowIso } from "./db";

export type RunnerRow = typeof runners.$inferSelect;

/** `last_seen_at` is written at most once per this interval per runner (a runner polls every few seconds). */
export const LAST_SEEN_SAMPLE_MS = 30_000;

export async function createRunner(db: Db, name: string): Promise<{ row: RunnerRow; token: string }> {
  const token = `et_rnr_${randomString(20)}`;
  const now = nowIso();
  const row = await db.insert(runners).values({ id: newId("rnr"), name, tokenHash: await sha256Hex(token), tokenPrefix: token.slice(0, 11), createdAt: now, updatedAt: now }).returning().get();
  return { row, token };
}

/** The runner a token belongs to, or null when it is unknown or revoked. */
export async function authenticateRunner(db: Db, token: string): Promise<RunnerRow | null> {
  if (!token.startsWith("et_rnr_")) return null;
  const hash = await sha256Hex(token);
  return (await db.select().from(runners).where(and(eq(runners.tokenHash, hash), isNull(runners.revokedAt))).get()) ?? null;
}

/** The write that records a runner's visit, or null when the stored time is recent enough (run it with waitUntil). */
export function recordRunnerSeen(db: Db, runner: RunnerRow, nowMs = Date.now()): Promise<unknown> | null {
  if (runner.lastSeenAt && nowMs - Date.parse(runner.lastSeenAt) < LAST_SEEN_SAMPLE_MS) return null;
  return db.update(runners).set({ lastSeenAt: new Date(nowMs).toISOString(), updatedAt: sql`${runners.updatedAt}` }).where(eq(runners.id, runner.id)).run();
}

/** Active runners, newest first, each with the jobs it holds a lease on (at most one per runner today). */
export async function listRunners(db: Db, limit: number, before?: { createdAt: string; id: string }) {
  const where = before
    ? and(isNull(runners.revokedAt), sql`(${runners.createdAt}, ${runners.id}) < (${before.createdAt}, ${before.id})`)
    : isNull(runners.revokedAt);
  const rows = await db.select().from(runners).where(where).orderBy(desc(runners.createdAt), desc(runners.id)).limit(limit + 1).all();
  const page = rows.slice(0, limit);
  const held = page.length === 0 ? [] : await db
    .select({ id: jobs.id, projectId: jobs.projectId, runnerId: jobs.runnerId, leaseExpiresAt: jobs.leaseExpiresAt })
    .from(jobs)
    .where(and(eq(jobs.status, "running"), inArray(jobs.runnerId, page.map((r) => r.id))))
    .all();
  return { rows: page, held, more: rows.length > limit };
}

/** Revokes a runner's token; its running leases are released at once (the jobs go back to the queue by the sweep). */
export async function revokeRunner(db: Db, id: string): Promise<boolean> {
  const now = nowIso();
  const revoked = await db.update(runners).set({ revokedAt: now }).where(and(eq(runners.id, id), isNull(runners.revokedAt))).returning({ id: runners.id });
  if (revoked.length === 0) return false;
  // Expire its leases now, so the lapsed-lease sweep requeues the jobs instead of waiting for the lease to run out.
  // (a second in the past: the sweep takes leases that expired strictly before its own clock)
  await db.update(jobs).set({ leaseExpiresAt: new Date(Date.now() - 1000).toISOString() }).where(and(eq(jobs.runnerId, id), eq(jobs.status, "running")));
  return true;
}

/**
 * A runner's failure text as tenants may read it (job.error, the events): runners are not trusted to keep their own
 * details out of it, so this keeps the first line, drops the runner's name, file paths, URLs, IP addresses and
 * host:port pairs, and caps the length. The operator still sees the full text in the runner's own log.
 */
export function tenantSafeError(text: string, runner: Pick<RunnerRow, "name">): string {
  let line = (text.split(/\r?\n/).find((l) => l.trim()) ?? "").trim();
  if (runner.name.length >= 3) line = line.split(runner.name).join("[runner]");
  line = line
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, "[url]")
    .replace(/(?:[A-Za-z]:)?(?:[\\/][\w.@~+-]+){2,}[\\/]?/g, "[path]")
    .replace(/\[?\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}\b\]?/gi, "[address]")
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, "[address]")
    .replace(/\b(?:[a-z0-9-]+\.)+[a-z]{2,}:\d+\b/gi, "[address]")
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u001f\u007f]/g, " ");
  return (line.length > 500 ? `${line.slice(0, 499)}…` : line) || "The runner reported a failure without a message.";
}
