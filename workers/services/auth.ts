/** API keys and the admin bootstrap key. Keys are `et_` + 32 random base32 chars; D1 stores only their SHA-256. */
import { and, eq, isNull, sql } from "drizzle-orm";
import { ApiError } from "../../shared/errors";
import { apiKeys, projects } from "../db/schema";
import type { Db } from "./db";
import { newId, randomString, sha256Hex } from "../../shared/ids";

export const DEFAULT_PROJECT_ID = "prj_default";
export type KeyScope = "full" | "predict";

export interface Caller {
  projectId: string;
  keyId: string;
  isAdmin: boolean;
  scope: KeyScope;
  /** As stored when the request began (for sampling the next write). */
  lastUsedAt: string | null;
}

export function newSecret(): string {
  return `et_${randomString(20)}`;
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or null for anything else. */
export function bearerToken(header: string | null | undefined): string | null {
  return header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1] ?? null;
}

/** Constant-time string comparison (same length strings; differing lengths return false). */
export function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export async function ensureDefaultProject(db: Db): Promise<void> {
  await db.insert(projects).values({ id: DEFAULT_PROJECT_ID, name: "default" }).onConflictDoNothing();
}

/**
 * Admin keys: EDGETUNE_ADMIN_KEY holds one key, or several separated by commas or white space, so one can be rotated
 * without downtime (add the new one, move clients, remove the old). Each is listed (never its secret) by GET /v1/keys
 * of the admin caller under a stable id `key_admin_<first 12 hex of its SHA-256>`.
 */
export interface AdminKey {
  id: string;
  secret: string;
  prefix: string;
  weak: boolean;
}

/** A weak admin key opens every tenant: shorter than this, or fewer distinct characters, and it is refused. */
export const MIN_ADMIN_KEY_LENGTH = 24;
export const MIN_ADMIN_KEY_DISTINCT_CHARS = 10;

export function isWeakAdminKey(secret: string): boolean {
  return secret.length < MIN_ADMIN_KEY_LENGTH || new Set(secret).size < MIN_ADMIN_KEY_DISTINCT_CHARS;
}

export async function parseAdminKeys(setting: string | undefined): Promise<AdminKey[]> {
  const secrets = (setting ?? "").split(/[\s,]+/).filter(Boolean);
  return Promise.all(secrets.map(async (secret) => ({ id: `key_admin_${(await sha256Hex(secret)).slice(0, 12)}`, secret, prefix: secret.slice(0, 7), weak: isWeakAdminKey(secret) })));
}

export const weakAdminKeyError = () =>
  new ApiError("weak_admin_key", `The deployment's admin key is too weak: an admin key must be at least ${MIN_ADMIN_KEY_LENGTH} characters with at least ${MIN_ADMIN_KEY_DISTINCT_CHARS} different ones (use a random generator: 'openssl rand -base64 32'). Set a strong one with 'wrangler secret put EDGETUNE_ADMIN_KEY'.`);

/** Resolves a bearer secret to its caller, or null when the key is unknown or revoked; a weak admin key throws. */
export async function authenticate(db: Db, secret: string, adminKeySetting: string | undefined): Promise<Caller | null> {
  for (const admin of await parseAdminKeys(adminKeySetting)) {
    if (!timingSafeEqual(secret, admin.secret)) continue;
    if (admin.weak) throw weakAdminKeyError();
    await ensureDefaultProject(db);
    return { projectId: DEFAULT_PROJECT_ID, keyId: admin.id, isAdmin: true, scope: "full", lastUsedAt: null };
  }
  const hash = await sha256Hex(secret);
  const row = await db.select().from(apiKeys).where(and(eq(apiKeys.secretHash, hash), isNull(apiKeys.revokedAt))).get();
  if (!row) return null;
  return { projectId: row.projectId, keyId: row.id, isAdmin: false, scope: row.scope, lastUsedAt: row.lastUsedAt };
}

/**
 * `last_used_at` is written at most once per this interval per key: a key used 100 times a second costs one D1 write a
 * minute, not 100 a second, and the time is still exact to the minute.
 */
export const LAST_USED_SAMPLE_MS = 60_000;

/** The write that records a key's use, or null when the stored time is recent enough (run it with waitUntil). */
export function recordKeyUse(db: Db, caller: Caller, nowMs = Date.now()): Promise<unknown> | null {
  if (caller.isAdmin) return null;
  if (caller.lastUsedAt && nowMs - Date.parse(caller.lastUsedAt) < LAST_USED_SAMPLE_MS) return null;
  // updated_at is left alone: using a key does not change it.
  return db.update(apiKeys).set({ lastUsedAt: new Date(nowMs).toISOString(), updatedAt: sql`${apiKeys.updatedAt}` }).where(eq(apiKeys.id, caller.keyId)).run();
}

/**
 * What a `predict` key may do: predict, and read models and aliases. Everything else answers 403 scope_required.
 * An allowlist, so a route added later is closed to predict keys until someone opens it here.
 */
export function predictScopeAllows(method: string, path: string): boolean {
  const read = method === "GET" || method === "HEAD";
  if (read && /^\/v1\/(models|aliases)(\/|$)/.test(path)) return true;
  return method === "POST" && /^\/v1\/(models|aliases)\/[^/]+\/predict\/?$/.test(path);
}

export async function createKey(db: Db, projectId: string, name: string, scope: KeyScope = "full") {
  const secret = newSecret();
  const now = new Date().toISOString();
  const row = { id: newId("key"), projectId, name, secretHash: await sha256Hex(secret), secretPrefix: secret.slice(0, 7), scope, createdAt: now, updatedAt: now, lastUsedAt: null, revokedAt: null };
  await db.insert(apiKeys).values(row);
  return { row, secret };
}
