/** API keys and the admin bootstrap key. Keys are `et_` + 32 random base32 chars; D1 stores only their SHA-256. */
import { and, eq, isNull } from "drizzle-orm";
import { apiKeys, projects } from "../db/schema";
import type { Db } from "./db";
import { newId, randomString, sha256Hex } from "../../shared/ids";

export const DEFAULT_PROJECT_ID = "prj_default";
export type KeyScope = "full" | "predict";

export interface Caller {
  projectId: string;
  keyId: string;
  isAdmin: boolean;
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

/** Resolves a bearer secret to its caller, or null when the key is unknown or revoked. */
export async function authenticate(db: Db, secret: string, adminKey: string | undefined): Promise<Caller | null> {
  if (adminKey && timingSafeEqual(secret, adminKey)) {
    await ensureDefaultProject(db);
    return { projectId: DEFAULT_PROJECT_ID, keyId: "key_admin", isAdmin: true };
  }
  const hash = await sha256Hex(secret);
  const row = await db.select().from(apiKeys).where(and(eq(apiKeys.secretHash, hash), isNull(apiKeys.revokedAt))).get();
  if (!row) return null;
  return { projectId: row.projectId, keyId: row.id, isAdmin: false };
}

export async function createKey(db: Db, projectId: string, name: string, scope: KeyScope = "full") {
  const secret = newSecret();
  const now = new Date().toISOString();
  const row = { id: newId("key"), projectId, name, secretHash: await sha256Hex(secret), secretPrefix: secret.slice(0, 7), scope, createdAt: now, updatedAt: now, lastUsedAt: null, revokedAt: null };
  await db.insert(apiKeys).values(row);
  return { row, secret };
}
