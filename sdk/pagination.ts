/**
 * Every list route answers `{"<resources>": [...], "next_cursor": "..." | null}` (../shared API.md). `paginate`
 * follows `next_cursor` until it is null and yields items one by one; a page without `next_cursor` (a route that
 * does not paginate) is the last page.
 */
import type { ListParams } from "./types";

export type Page<K extends string, T> = { [key in K]: T[] } & { next_cursor?: string | null };

export async function* paginate<K extends string, T>(key: K, fetchPage: (params: ListParams) => Promise<Page<K, T>>, params: ListParams = {}): AsyncGenerator<T> {
  let cursor = params.cursor;
  const seen = new Set<string>();
  for (;;) {
    const page = await fetchPage({ ...params, cursor });
    for (const item of page[key] ?? []) yield item;
    const next = page.next_cursor ?? null;
    // A cursor seen before would loop forever: a server bug, but a client must not spin on it.
    if (!next || seen.has(next)) return;
    seen.add(next);
    cursor = next;
  }
}

/** Collects an async iterable (small lists, tests). */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
