/**
 * Limits of `GET /v1/jobs/:id/events` (Server-Sent Events). A stream is one long Worker invocation, so it shares
 * D1's 1,000-queries budget and holds an isolate slot:
 * - polling backs off from POLL_MIN_MS to POLL_MAX_MS while nothing happens (reset when events arrive), and a stream
 *   ends itself after QUERY_BUDGET queries or MAX_STREAM_MS; clients resume with Last-Event-ID (EventSource does);
 * - the key is re-checked every KEY_RECHECK_MS, so a revoked key stops streaming within that time (under a minute);
 * - each key holds at most MAX_STREAMS_PER_KEY open streams (rows in event_streams, renewed at each re-check and
 *   expiring after 2 re-check periods, so a stream whose isolate died frees its slot by itself); one more answers
 *   429 rate_limited with Retry-After.
 * Worst case per stream: 5 min at the 1 s minimum is 300 polls x 2 queries = 600; with back-off a quiet stream makes
 * about 60 polls in 5 min.
 */
import { and, count, eq, gt, isNull, lt } from "drizzle-orm";
import { ApiError } from "../../shared/errors";
import { newId } from "../../shared/ids";
import { apiKeys, eventStreams } from "../db/schema";
import type { Db } from "./db";

export const POLL_MIN_MS = 1_000;
export const POLL_MAX_MS = 8_000;
export const KEY_RECHECK_MS = 30_000;
export const MAX_STREAM_MS = 5 * 60_000;
export const MAX_STREAMS_PER_KEY = 8;
export const QUERY_BUDGET = 700;

const iso = (ms: number) => new Date(ms).toISOString();

/** Registers a stream for `keyId`, or throws 429 when the key already holds MAX_STREAMS_PER_KEY live ones. */
export async function openStream(db: Db, keyId: string, jobId: string, nowMs = Date.now()): Promise<string> {
  const now = iso(nowMs);
  await db.delete(eventStreams).where(and(eq(eventStreams.keyId, keyId), lt(eventStreams.expiresAt, now)));
  const [{ open }] = await db.select({ open: count() }).from(eventStreams).where(and(eq(eventStreams.keyId, keyId), gt(eventStreams.expiresAt, now)));
  if (open >= MAX_STREAMS_PER_KEY) {
    throw new ApiError("rate_limited", `This key already has ${open} open event streams (the limit is ${MAX_STREAMS_PER_KEY}). Close one, or follow several jobs by polling GET /v1/jobs.`, {
      limit: MAX_STREAMS_PER_KEY,
      retry_after_s: Math.ceil(KEY_RECHECK_MS / 1000),
    });
  }
  const id = `sse_${newId("job").slice(4)}`;
  await db.insert(eventStreams).values({ id, keyId, jobId, expiresAt: iso(nowMs + 2 * KEY_RECHECK_MS) });
  return id;
}

/** Renews the stream's slot and answers whether its key is still valid (the admin key has no row and stays valid). */
export async function renewStream(db: Db, streamId: string, keyId: string, nowMs = Date.now()): Promise<boolean> {
  await db.update(eventStreams).set({ expiresAt: iso(nowMs + 2 * KEY_RECHECK_MS) }).where(eq(eventStreams.id, streamId));
  if (keyId === "key_admin") return true;
  const key = await db.select({ id: apiKeys.id }).from(apiKeys).where(and(eq(apiKeys.id, keyId), isNull(apiKeys.revokedAt))).get();
  return key !== undefined;
}

export async function closeStream(db: Db, streamId: string): Promise<void> {
  await db.delete(eventStreams).where(eq(eventStreams.id, streamId));
}

/** The next poll interval: back to the minimum when events arrived, otherwise doubled up to the maximum. */
export const nextPollMs = (currentMs: number, gotEvents: boolean) => (gotEvents ? POLL_MIN_MS : Math.min(POLL_MAX_MS, currentMs * 2));
