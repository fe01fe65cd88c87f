/**
 * Webhooks (../shared API.md, "Webhooks"): a tenant registers an https URL for some events; each event becomes one
 * delivery row per matching webhook and a queue message. The queue consumer POSTs the event signed with
 * HMAC-SHA256 (`edgetune-signature: t=<unix s>,v1=<hex>` over `<t>.<body>`, sdk/webhook-signature.ts), and retries
 * through the queue with exponential backoff until the receiver answers 2xx or MAX_ATTEMPTS is reached. Every attempt
 * is recorded on the delivery (status, attempts, last status code, last error). URLs obey the same policy as backbone
 * URLs (services/url-policy.ts), checked when registered and again at every delivery (DNS may have changed).
 *
 * At least once, never twice after a 2xx: a delivery already `delivered` is never sent again, and the unique
 * (webhook_id, event_id) index makes an event emitted twice one delivery.
 */
import { and, eq, lt } from "drizzle-orm";
import { signWebhook, SIGNATURE_HEADER } from "../../sdk/webhook-signature";
import { newId, randomString } from "../../shared/ids";
import { getConfig } from "../config";
import { webhookDeliveries, webhooks } from "../db/schema";
import type { Env } from "../env";
import { getDb, nowIso, type Db } from "./db";
import type { OnSweptJobEnd } from "./jobs";
import { checkUrl, policedFetch, UrlFetchError, UrlRefusedError } from "./url-policy";

export const WEBHOOK_EVENTS = ["job.succeeded", "job.failed", "job.canceled", "dataset.ready", "dataset.failed", "dataset.empty"] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Attempts before a delivery is given up as failed: with the backoff below, about 9 hours in all. */
export const MAX_ATTEMPTS = 10;
/** A receiver gets this long to answer; slow receivers should queue the work and answer at once. */
const DELIVERY_TIMEOUT_MS = 10_000;

/** Seconds before attempt `attempt + 1`: 2^attempt x base (WEBHOOK_RETRY_BASE_S, default 10), at most an hour. */
export const retryDelaySeconds = (attempt: number, baseS: number) => Math.min(3600, Math.max(1, Math.round(baseS * 2 ** (attempt - 1))));

export interface WebhookMessage {
  kind: "webhook";
  delivery_id: string;
}

export const webhookView = (row: typeof webhooks.$inferSelect, secret?: string) => ({
  id: row.id,
  url: row.url,
  events: row.events,
  created_at: row.createdAt,
  updated_at: row.updatedAt,
  ...(secret ? { secret } : {}),
});

export const deliveryView = (row: typeof webhookDeliveries.$inferSelect) => ({
  id: row.id,
  webhook_id: row.webhookId,
  event_id: row.eventId,
  event: row.event,
  status: row.status,
  attempts: row.attempts,
  last_status_code: row.lastStatusCode,
  last_error: row.lastError,
  delivered_at: row.deliveredAt,
  created_at: row.createdAt,
  updated_at: row.updatedAt,
});

/** Registers a webhook after checking its URL against the policy; the secret is returned once. */
export async function createWebhook(env: Env, db: Db, projectId: string, url: string, events: string[]) {
  await checkUrl(url, getConfig(env).urlPolicy);
  const secret = `whsec_${randomString(32)}`;
  const row = await db.insert(webhooks).values({ id: newId("wh"), projectId, url, events: [...new Set(events)], secret }).returning().get();
  return webhookView(row, secret);
}

/**
 * Records `type` for every webhook of the project that subscribed to it and queues the deliveries. `eventId` is
 * stable per occurrence (`job_x.succeeded`), so emitting it again changes nothing.
 */
export async function emitWebhookEvent(env: Env, projectId: string, type: WebhookEvent, eventId: string, data: Record<string, unknown>): Promise<number> {
  const db = getDb(env.DB);
  const hooks = (await db.select().from(webhooks).where(eq(webhooks.projectId, projectId)).all()).filter((h) => h.events.includes(type));
  let queued = 0;
  for (const hook of hooks) {
    const payload = JSON.stringify({ id: eventId, type, created_at: nowIso(), data });
    const inserted = await db.insert(webhookDeliveries).values({ id: newId("whd"), webhookId: hook.id, projectId, eventId, event: type, payload, nextAttemptAt: nowIso() }).onConflictDoNothing().returning({ id: webhookDeliveries.id });
    for (const row of inserted) {
      await env.INGEST_QUEUE.send({ kind: "webhook", delivery_id: row.id } satisfies WebhookMessage);
      queued++;
    }
  }
  return queued;
}

/** Emits without letting a webhook problem fail the request that caused the event (it is logged). */
export async function emitSafely(env: Env, projectId: string, type: WebhookEvent, eventId: string, data: Record<string, unknown>): Promise<void> {
  try {
    await emitWebhookEvent(env, projectId, type, eventId, data);
  } catch (err) {
    console.error(`webhook event ${type} ${eventId} not recorded:`, err);
  }
}

/**
 * What a lease sweep calls for each job it failed or canceled: the same `job.failed` / `job.canceled` event (same id,
 * same payload shape) a runner's /fail report sends, so a job that lost its runner for good is not silent.
 */
export function jobEndedNotifier(env: Env): OnSweptJobEnd {
  return ({ job, status, error }) => emitSafely(env, job.projectId, `job.${status}`, `${job.id}.${status}`, { job: { id: job.id, status, dataset_id: job.datasetId, error } });
}

/**
 * One delivery attempt. Answers "done" (delivered, given up, or nothing to do) or a delay in seconds before the queue
 * should try again.
 */
export async function attemptDelivery(env: Env, deliveryId: string, nowMs = Date.now()): Promise<"done" | { retryInS: number }> {
  const db = getDb(env.DB);
  const delivery = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, deliveryId)).get();
  if (!delivery || delivery.status !== "pending") return "done";
  const hook = await db.select().from(webhooks).where(eq(webhooks.id, delivery.webhookId)).get();
  if (!hook) {
    await db.update(webhookDeliveries).set({ status: "failed", lastError: "The webhook was deleted before this event could be delivered." }).where(eq(webhookDeliveries.id, deliveryId));
    return "done";
  }
  const attempts = delivery.attempts + 1;
  const signature = await signWebhook(hook.secret, delivery.payload, Math.floor(nowMs / 1000));
  let statusCode: number | null = null;
  let error: string | null = null;
  let retryable = true;
  try {
    const { response } = await policedFetch(hook.url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "edgetune-webhooks/1", [SIGNATURE_HEADER]: signature, "edgetune-event": delivery.event, "edgetune-delivery": delivery.id },
      body: delivery.payload,
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    }, getConfig(env).urlPolicy);
    statusCode = response.status;
    await response.body?.cancel();
  } catch (err) {
    if (err instanceof UrlFetchError) {
      const status = /^status (\d+)/.exec(err.reason)?.[1];
      statusCode = status ? Number(status) : null;
      error = status ? `The receiver answered ${status}; answer 2xx once the event is handled.` : "The receiver could not be reached (connection refused, reset or timed out).";
      retryable = err.retryable || Boolean(status); // any non-2xx is worth another try: receivers get fixed
    } else if (err instanceof UrlRefusedError) {
      error = err.message; // the URL no longer passes the policy (DNS now points somewhere private): give up
      retryable = false;
    } else if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
      error = `The receiver did not answer within ${DELIVERY_TIMEOUT_MS / 1000} s.`;
    } else throw err;
  }
  const delivered = error === null;
  const givenUp = !delivered && (!retryable || attempts >= MAX_ATTEMPTS);
  const retryInS = retryDelaySeconds(attempts, Number(env.WEBHOOK_RETRY_BASE_S ?? 10) || 10);
  await db
    .update(webhookDeliveries)
    .set({
      attempts, lastStatusCode: statusCode, lastError: error, status: delivered ? "delivered" : givenUp ? "failed" : "pending", deliveredAt: delivered ? nowIso() : null,
      nextAttemptAt: delivered || givenUp ? null : new Date(Date.now() + retryInS * 1000).toISOString(),
    })
    .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.status, "pending")));
  if (delivered || givenUp) return "done";
  return { retryInS };
}

/**
 * Re-enqueues pending deliveries whose next attempt is more than `stallMs` overdue: their queue message died with
 * its process (a queue that is only slow runs them within seconds of `next_attempt_at`). Each is claimed by moving
 * `next_attempt_at` to now with a conditional update, so concurrent sweeps send one message; the delivery itself
 * stays at least once (a late duplicate message finds it delivered and does nothing). At most `batch` per run,
 * 1 + 2 x batch statements.
 */
export async function resumeStalledDeliveries(env: Env, db: Db, stallMs: number, nowMs = Date.now(), batch = 20): Promise<number> {
  const cutoff = new Date(nowMs - stallMs).toISOString();
  const stalled = await db
    .select({ id: webhookDeliveries.id, nextAttemptAt: webhookDeliveries.nextAttemptAt })
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.status, "pending"), lt(webhookDeliveries.nextAttemptAt, cutoff)))
    .orderBy(webhookDeliveries.nextAttemptAt)
    .limit(batch)
    .all();
  let resumed = 0;
  for (const delivery of stalled) {
    const claimed = await db
      .update(webhookDeliveries)
      .set({ nextAttemptAt: new Date(nowMs).toISOString() })
      .where(and(eq(webhookDeliveries.id, delivery.id), eq(webhookDeliveries.status, "pending"), eq(webhookDeliveries.nextAttemptAt, delivery.nextAttemptAt!)))
      .returning({ id: webhookDeliveries.id });
    if (claimed.length === 0) continue;
    await env.INGEST_QUEUE.send({ kind: "webhook", delivery_id: delivery.id } satisfies WebhookMessage);
    resumed++;
  }
  return resumed;
}
