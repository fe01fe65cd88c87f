/**
 * Bounded-concurrency mapping: `fn` runs on every item with at most `limit` calls in flight, and the results keep
 * the input order. One implementation (p-limit, no `node:*` imports, so it runs in workerd and Node alike) for R2
 * reads, embedding-cache lookups, ingest stores and the runner's downloads.
 */
import pLimit from "p-limit";

export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const run = pLimit(Math.max(1, limit));
  return Promise.all(items.map((item, index) => run(() => fn(item, index))));
}
