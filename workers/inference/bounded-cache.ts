/**
 * A least-recently-used cache bounded by entry count and by bytes, with single-flight loading: concurrent misses on
 * one key share one load, and a failed load is forgotten (the next call tries again) instead of being cached.
 *
 * Module-level instances of this class are the Worker's per-isolate caches of heads and backbones. An isolate has
 * 128 MB and may serve several requests at once, so a cache must never grow by what traffic happens to ask for:
 * both bounds are checked on every insert and the least recently used entries go first.
 */

export interface BoundedCacheOptions<V> {
  /** Most entries kept. */
  maxEntries: number;
  /** Most bytes kept, as `sizeOf` counts them. A single value larger than this is returned but not kept. */
  maxBytes: number;
  /** Resident bytes of a value. */
  sizeOf: (value: V) => number;
  /** Called for each entry that leaves the cache (evicted, deleted, cleared); free native memory here. */
  onEvict?: (key: string, value: V) => void;
}

export interface BoundedCacheStats {
  entries: number;
  bytes: number;
  maxEntries: number;
  maxBytes: number;
  hits: number;
  misses: number;
  /** Loads started (misses that did not join a load already in flight). */
  loads: number;
  evictions: number;
  /** Keys being loaded right now. */
  inFlight: number;
}

export class BoundedCache<V> {
  private readonly entries = new Map<string, { value: V; bytes: number }>();
  private readonly inFlight = new Map<string, Promise<V>>();
  private bytes = 0;
  private counters = { hits: 0, misses: 0, loads: 0, evictions: 0 };
  private options: BoundedCacheOptions<V>;

  constructor(options: BoundedCacheOptions<V>) {
    this.options = options;
  }

  /** Changes the bounds (evicting at once if the cache is now over them). */
  resize(bounds: { maxEntries?: number; maxBytes?: number }): void {
    this.options = { ...this.options, ...bounds };
    this.evictUntilWithin();
  }

  /** The cached value (and marks it most recently used), or undefined. Does not load. */
  peek(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /**
   * The value for `key`: from the cache, from a load already in flight, or from a new call of `load`.
   * A rejected load rejects every caller that joined it and leaves nothing behind.
   */
  get(key: string, load: () => Promise<V>): Promise<V> {
    const cached = this.peek(key);
    if (cached !== undefined) {
      this.counters.hits++;
      return Promise.resolve(cached);
    }
    this.counters.misses++;
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    this.counters.loads++;
    const loading = (async () => {
      try {
        const value = await load();
        this.insert(key, value);
        return value;
      } finally {
        this.inFlight.delete(key);
      }
    })();
    this.inFlight.set(key, loading);
    return loading;
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
    this.options.onEvict?.(key, entry.value);
  }

  clear(): void {
    for (const key of [...this.entries.keys()]) this.delete(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Keys from least to most recently used. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  stats(): BoundedCacheStats {
    return {
      entries: this.entries.size,
      bytes: this.bytes,
      maxEntries: this.options.maxEntries,
      maxBytes: this.options.maxBytes,
      ...this.counters,
      inFlight: this.inFlight.size,
    };
  }

  private insert(key: string, value: V): void {
    this.delete(key);
    const bytes = this.options.sizeOf(value);
    if (bytes > this.options.maxBytes || this.options.maxEntries < 1) return; // served once, never resident
    this.entries.set(key, { value, bytes });
    this.bytes += bytes;
    this.evictUntilWithin();
  }

  private evictUntilWithin(): void {
    while (this.entries.size > 0 && (this.entries.size > this.options.maxEntries || this.bytes > this.options.maxBytes)) {
      const oldest = this.entries.keys().next().value as string;
      this.delete(oldest);
      this.counters.evictions++;
    }
  }
}

/** A cached value that requests hold while they use it (native memory: tensors, a WASM executor). */
export interface HeldValue {
  users: number;
  evicted: boolean;
  disposed: boolean;
}

/**
 * A BoundedCache of held values: an evicted value is freed at once when no request holds it, otherwise when the last
 * holder lets go, so an eviction caused by one request never frees what another is computing with.
 */
export class HeldCache<V extends HeldValue> {
  readonly cache: BoundedCache<V>;

  constructor(options: Omit<BoundedCacheOptions<V>, "onEvict"> & { dispose: (value: V) => void }) {
    const { dispose, ...bounds } = options;
    this.dispose = dispose;
    this.cache = new BoundedCache<V>({
      ...bounds,
      onEvict: (_key, value) => {
        value.evicted = true;
        this.disposeIfUnused(value);
      },
    });
  }

  private readonly dispose: (value: V) => void;

  private disposeIfUnused(value: V): void {
    if (value.evicted && value.users === 0 && !value.disposed) {
      value.disposed = true;
      this.dispose(value);
    }
  }

  /** Runs `use` with the value of `key` held (loaded with `load` on a miss). */
  async use<T>(key: string, load: () => Promise<V>, use: (value: V) => Promise<T>): Promise<T> {
    let value: V;
    // Evicted and freed between the cache's answer and here (another load finished meanwhile): ask again.
    do value = await this.cache.get(key, load);
    while (value.disposed);
    value.users++;
    try {
      return await use(value);
    } finally {
      value.users--;
      this.disposeIfUnused(value);
    }
  }
}
