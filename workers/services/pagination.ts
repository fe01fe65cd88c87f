/**
 * Keyset pagination for every list (../shared API.md, "Lists, limits, timestamps"): `?limit=` 1 to 100 (default 50)
 * and an opaque `?cursor=`, newest first. The cursor is the sort key of the last item shown, (created_at, id):
 * created_at never changes and ids are unique, so following `next_cursor` visits every item exactly once, and rows
 * inserted meanwhile (newer, so before the cursor) never shift a page the way an offset would. One query per page,
 * 2 + 1 bound parameters for the cursor, served by the (project_id, created_at, id) indexes.
 */
import { z } from "@hono/zod-openapi";
import { and, desc, eq, lt, or, type SQL } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { ApiError } from "../../shared/errors";

export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 50;

/** `?limit=&cursor=`, shared by every list route's OpenAPI description. */
export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE).meta({ param: { name: "limit", in: "query" }, description: `items per page, 1 to ${MAX_PAGE_SIZE}` }),
  cursor: z.string().min(1).max(400).optional().meta({ param: { name: "cursor", in: "query" }, description: "the next_cursor of the previous page; leave out for the first page" }),
});
export type PageQuery = z.infer<typeof pageQuery>;

/** `?force=true` on a DELETE: go ahead although other resources use this one (otherwise 409 `in_use` names them). */
export const forceQuery = z.object({
  force: z.enum(["true", "false"]).default("false").transform((v) => v === "true").meta({ param: { name: "force", in: "query" }, description: "delete although other resources use it" }),
});

export interface Position {
  createdAt: string;
  id: string;
}

const toBase64Url = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromBase64Url = (text: string) => new TextDecoder().decode(Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)));

export function encodeCursor(position: Position): string {
  return toBase64Url(JSON.stringify([position.createdAt, position.id]));
}

export const invalidCursor = () =>
  new ApiError("invalid_cursor", "This cursor is not one this list returned. Pass the next_cursor of the previous page unchanged, or leave cursor out to start over.", { field: "cursor" });

export function decodeCursor(cursor: string): Position {
  try {
    const value = JSON.parse(fromBase64Url(cursor));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === "string" && typeof value[1] === "string" && value[0].length <= 40 && value[1].length <= 200) {
      return { createdAt: value[0], id: value[1] };
    }
  } catch {
    // fall through
  }
  throw invalidCursor();
}

/** Rows after `cursor` in newest-first order: (created_at, id) < the cursor's. */
export function afterCursor(createdAt: SQLiteColumn, id: SQLiteColumn, cursor: string | undefined): SQL | undefined {
  if (cursor === undefined) return undefined;
  const position = decodeCursor(cursor);
  return or(lt(createdAt, position.createdAt), and(eq(createdAt, position.createdAt), lt(id, position.id)));
}

export const newestFirst = (createdAt: SQLiteColumn, id: SQLiteColumn) => [desc(createdAt), desc(id)];

/** Splits `limit + 1` fetched rows into the page and its next cursor. */
export function pageOf<T>(rows: T[], limit: number, positionOf: (row: T) => Position): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  return { items, nextCursor: rows.length > limit ? encodeCursor(positionOf(items[items.length - 1])) : null };
}
