/** workers/inference/bounded-cache.ts HeldCache: what a request holds is freed only after it lets go. */
import { describe, expect, it } from "vitest";
import { HeldCache, type HeldValue } from "../../workers/inference/bounded-cache";

interface Thing extends HeldValue {
  name: string;
}

const thing = (name: string): Thing => ({ name, users: 0, evicted: false, disposed: false });

describe("HeldCache", () => {
  it("frees an evicted value at once when nobody holds it, and only after the last holder when someone does", async () => {
    const freed: string[] = [];
    const held = new HeldCache<Thing>({ maxEntries: 1, maxBytes: 100, sizeOf: () => 1, dispose: (t) => freed.push(t.name) });
    let release!: () => void;
    const holding = held.use("a", async () => thing("a"), (t) => new Promise<string>((resolve) => (release = () => resolve(t.name))));
    await new Promise((r) => setTimeout(r, 0));
    // Loading "b" evicts "a" while the first request still holds it.
    expect(await held.use("b", async () => thing("b"), async (t) => t.name)).toBe("b");
    expect(freed).toEqual([]);
    release();
    expect(await holding).toBe("a");
    expect(freed).toEqual(["a"]);
    // "b" is unheld: evicting it frees it at once.
    held.cache.clear();
    expect(freed).toEqual(["a", "b"]);
  });

  it("loads again when the cached value was freed between the cache's answer and its use", async () => {
    const held = new HeldCache<Thing>({ maxEntries: 4, maxBytes: 100, sizeOf: () => 1, dispose: () => {} });
    let loads = 0;
    const load = async () => thing(`a${++loads}`);
    await held.use("a", load, async () => undefined);
    held.cache.peek("a")!.disposed = true;
    held.cache.delete("a");
    expect(await held.use("a", load, async (t) => t.name)).toBe("a2");
  });
});
