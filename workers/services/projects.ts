/** Projects (tenants) and their API keys. Secrets are shown once, at creation; D1 keeps only their SHA-256. */
import { and, eq, isNull } from "drizzle-orm";
import { newId } from "../../shared/ids";
import { apiKeys, projects } from "../db/schema";
import { createKey } from "./auth";
import { nowIso, type Db } from "./db";
import { afterCursor, newestFirst, pageOf, type PageQuery } from "./pagination";

export type ApiKeyRow = typeof apiKeys.$inferSelect;

export async function getProject(db: Db, projectId: string) {
  return (await db.select().from(projects).where(eq(projects.id, projectId)).get()) ?? null;
}

/** A new project and its first key, named "default". */
export async function createProject(db: Db, name: string) {
  const project = { id: newId("prj"), name, createdAt: nowIso() };
  await db.insert(projects).values(project);
  const { row, secret } = await createKey(db, project.id, "default");
  return { project, key: row, secret };
}

/** A page of the project's keys that are not revoked, newest first. */
export async function listActiveKeys(db: Db, projectId: string, page: PageQuery) {
  const rows = await db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.projectId, projectId), isNull(apiKeys.revokedAt), afterCursor(apiKeys.createdAt, apiKeys.id, page.cursor)))
    .orderBy(...newestFirst(apiKeys.createdAt, apiKeys.id))
    .limit(page.limit + 1)
    .all();
  return pageOf(rows, page.limit, (r) => r);
}

/** Revokes the key; false when the project has no such active key. */
export async function revokeKey(db: Db, projectId: string, keyId: string): Promise<boolean> {
  const result = await db.update(apiKeys).set({ revokedAt: nowIso() }).where(and(eq(apiKeys.id, keyId), eq(apiKeys.projectId, projectId), isNull(apiKeys.revokedAt))).returning({ id: apiKeys.id });
  return result.length > 0;
}
