/**
 * Aliases: a project's named pointers to models (`prod`, `staging`), so clients predict by a name that operators
 * switch. A switch is one D1 batch (one transaction): the history row, which records the model the alias pointed at
 * until then, and the pointer's update commit together or not at all, and the history's `previous_model_id` is read
 * inside that transaction, so two concurrent switches cannot both claim the same predecessor. Rolling back is one
 * more switch, to a model id the history shows.
 */
import { and, desc, eq, notExists, sql } from "drizzle-orm";
import { ApiError } from "../../shared/errors";
import { findBuiltinBackbone } from "../../shared/catalog";
import { aliases, aliasHistory, backbones, models } from "../db/schema";
import type { Db } from "./db";
import { afterCursor, newestFirst, pageOf, type PageQuery } from "./pagination";
import { nowIso } from "./db";

export type AliasRow = typeof aliases.$inferSelect;
export type AliasHistoryRow = typeof aliasHistory.$inferSelect;

/** History entries shown with an alias, newest first. */
export const ALIAS_HISTORY_LIMIT = 50;

export const aliasNotFound = (name: string) =>
  new ApiError("alias_not_found", `No alias named '${name}' in this project. Create it with PUT /v1/aliases/${name} {"model_id": "mdl_..."}.`, { name });

export async function getAlias(db: Db, projectId: string, name: string): Promise<AliasRow | null> {
  return (await db.select().from(aliases).where(and(eq(aliases.projectId, projectId), eq(aliases.name, name))).get()) ?? null;
}

/** One page of the project's aliases, newest first by creation (services/pagination.ts; the name is the tie-break). */
export async function listAliases(db: Db, projectId: string, page: PageQuery) {
  const rows = await db.select().from(aliases).where(and(eq(aliases.projectId, projectId), afterCursor(aliases.createdAt, aliases.name, page.cursor))).orderBy(...newestFirst(aliases.createdAt, aliases.name)).limit(page.limit + 1).all();
  const { items, nextCursor } = pageOf(rows, page.limit, (r) => ({ createdAt: r.createdAt, id: r.name }));
  return { aliases: items.map((alias) => aliasView(alias)), next_cursor: nextCursor };
}

export async function getAliasHistory(db: Db, projectId: string, name: string, limit = ALIAS_HISTORY_LIMIT): Promise<AliasHistoryRow[]> {
  return db.select().from(aliasHistory).where(and(eq(aliasHistory.projectId, projectId), eq(aliasHistory.name, name))).orderBy(desc(aliasHistory.id)).limit(limit).all();
}

/**
 * Points `name` at `modelId` (the caller has checked that the model is the project's and ready). Creating and
 * switching are the same call; pointing an alias at the model it already names changes nothing and adds no history.
 * @returns the alias after the switch and whether it was created by this call.
 */
/**
 * An alias only points at a model that can serve images: its backbone must still exist (a builtin one, or a row of
 * the project). Otherwise 409 backbone_deleted: the alias's predictions would fail.
 */
export async function assertServesImages(db: Db, model: { id: string; projectId: string; backbone: string }): Promise<void> {
  if (findBuiltinBackbone(model.backbone)) return;
  const row = await db.select({ id: backbones.id }).from(backbones).where(and(eq(backbones.id, model.backbone), eq(backbones.projectId, model.projectId))).get();
  if (!row) {
    throw new ApiError("backbone_deleted", `Model '${model.id}' was trained on backbone '${model.backbone}', which has been deleted, so it cannot predict from images; an alias may only point at a model that can. Train a new model and point the alias at it.`, { model_id: model.id, backbone: model.backbone });
  }
}

export async function putAlias(db: Db, projectId: string, name: string, modelId: string): Promise<{ alias: AliasRow; created: boolean; changed: boolean }> {
  const now = nowIso();
  const named = and(eq(aliases.projectId, projectId), eq(aliases.name, name));
  // Both statements select from the model's own row, so a model deleted meanwhile switches nothing.
  const thisModel = and(eq(models.id, modelId), eq(models.projectId, projectId));
  const [history, upserted] = await db.batch([
    // Runs first, so the subquery reads the pointer as it was before this switch.
    db
      .insert(aliasHistory)
      .select(
        db
          .select({
            id: sql<number>`null`.as("id"), // integer primary key: null takes the next rowid
            projectId: models.projectId,
            name: sql<string>`${name}`.as("name"),
            modelId: models.id,
            previousModelId: sql<string | null>`(${db.select({ modelId: aliases.modelId }).from(aliases).where(named)})`.as("previous_model_id"),
            createdAt: sql<string>`${now}`.as("created_at"),
          })
          .from(models)
          .where(and(thisModel, notExists(db.select({ one: sql`1` }).from(aliases).where(and(named, eq(aliases.modelId, modelId)))))),
      )
      .returning({ previousModelId: aliasHistory.previousModelId }),
    db
      .insert(aliases)
      .select(db.select({ projectId: models.projectId, name: sql<string>`${name}`.as("name"), modelId: models.id, createdAt: sql<string>`${now}`.as("created_at"), updatedAt: sql<string>`${now}`.as("updated_at") }).from(models).where(thisModel))
      .onConflictDoUpdate({ target: [aliases.projectId, aliases.name], set: { modelId, updatedAt: now }, setWhere: sql`${aliases.modelId} != ${modelId}` })
      .returning(),
  ]);
  const changed = history.length > 0;
  const alias = upserted[0] ?? (await getAlias(db, projectId, name));
  if (!alias) throw new ApiError("model_not_found", `Model '${modelId}' was deleted while the alias was being switched.`, { id: modelId });
  return { alias, created: changed && history[0]!.previousModelId === null, changed };
}

/** Removes the pointer; its history stays (it names models, which outlive aliases). Returns false when absent. */
export async function deleteAlias(db: Db, projectId: string, name: string): Promise<boolean> {
  const deleted = await db.delete(aliases).where(and(eq(aliases.projectId, projectId), eq(aliases.name, name))).returning({ name: aliases.name });
  return deleted.length > 0;
}

export function aliasView(alias: AliasRow, history?: AliasHistoryRow[]) {
  return {
    name: alias.name,
    model_id: alias.modelId,
    created_at: alias.createdAt,
    updated_at: alias.updatedAt,
    ...(history
      ? {
          history: history.map((entry) => ({ model_id: entry.modelId, previous_model_id: entry.previousModelId, switched_at: entry.createdAt })),
          previous_model_id: history.find((entry) => entry.modelId === alias.modelId)?.previousModelId ?? null,
        }
      : {}),
  };
}
