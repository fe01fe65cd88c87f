/**
 * D1's production limits, enforced in every environment. Cloudflare's D1 refuses a statement with more than 100 bound
 * parameters and a Worker invocation with more than 1,000 queries; local workerd (wrangler dev, the vitest pool)
 * enforces neither, so code that works locally can fail only once deployed. Every invocation (HTTP request, queue
 * batch, cron run) gets its own meter around the D1 binding: a statement over a limit throws here, before it runs,
 * exactly where production would fail, and the counts are readable by tests (`x-edgetune-d1-*` response headers when
 * `D1_METER_HEADERS` is "true").
 *
 * Counting: every statement counts as one query, also inside `batch()` (the conservative reading of the limit).
 * Cost: one object per statement; nothing is copied.
 */

/** https://developers.cloudflare.com/d1/platform/limits/ */
export const D1_MAX_BOUND_PARAMETERS = 100;
export const D1_MAX_QUERIES_PER_INVOCATION = 1_000;

export interface D1Usage {
  /** Statements run (each statement of a batch counts). */
  statements: number;
  /** Round trips: single statements plus batches. */
  calls: number;
  /** The most bound parameters any one statement had. */
  maxParams: number;
}

export class D1LimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "D1LimitError";
  }
}

export interface D1Limits {
  maxParams: number;
  maxQueries: number;
}

const DEFAULT_LIMITS: D1Limits = { maxParams: D1_MAX_BOUND_PARAMETERS, maxQueries: D1_MAX_QUERIES_PER_INVOCATION };

class Meter {
  readonly usage: D1Usage = { statements: 0, calls: 0, maxParams: 0 };
  constructor(readonly limits: D1Limits) {}

  admit(statements: MeteredStatement[]) {
    for (const statement of statements) {
      if (statement.paramCount > this.limits.maxParams) {
        throw new D1LimitError(`D1 statement with ${statement.paramCount} bound parameters (limit ${this.limits.maxParams}): ${statement.sql.slice(0, 200)}`);
      }
    }
    if (this.usage.statements + statements.length > this.limits.maxQueries) {
      throw new D1LimitError(`D1 query ${this.usage.statements + statements.length} in one invocation (limit ${this.limits.maxQueries}): ${statements[0]?.sql.slice(0, 200)}`);
    }
    this.usage.statements += statements.length;
    this.usage.calls += 1;
    for (const statement of statements) this.usage.maxParams = Math.max(this.usage.maxParams, statement.paramCount);
  }
}

class MeteredStatement {
  constructor(
    readonly inner: D1PreparedStatement,
    readonly sql: string,
    readonly paramCount: number,
    private readonly meter: Meter,
  ) {}

  bind(...values: unknown[]): MeteredStatement {
    return new MeteredStatement(this.inner.bind(...values), this.sql, values.length, this.meter);
  }
  async first(column?: string): Promise<any> {
    this.meter.admit([this]);
    return column === undefined ? this.inner.first() : this.inner.first(column);
  }
  async run(): Promise<any> {
    this.meter.admit([this]);
    return this.inner.run();
  }
  async all(): Promise<any> {
    this.meter.admit([this]);
    return this.inner.all();
  }
  async raw(options?: any): Promise<any> {
    this.meter.admit([this]);
    return this.inner.raw(options);
  }
}

class MeteredDatabase {
  constructor(
    private readonly inner: D1Database,
    readonly meter: Meter,
  ) {}
  prepare(sql: string): MeteredStatement {
    return new MeteredStatement(this.inner.prepare(sql), sql, 0, this.meter);
  }
  async batch(statements: MeteredStatement[]): Promise<any> {
    this.meter.admit(statements);
    return this.inner.batch(statements.map((s) => s.inner));
  }
  async exec(sql: string): Promise<D1ExecResult> {
    // exec runs one or more raw statements without parameters; count each non-empty one.
    const count = Math.max(1, sql.split(";").filter((part) => part.trim()).length);
    this.meter.admit(Array.from({ length: count }, () => new MeteredStatement(null as never, sql, 0, this.meter)));
    return this.inner.exec(sql);
  }
  withSession(constraint?: any): any {
    return new MeteredDatabase(this.inner.withSession(constraint) as unknown as D1Database, this.meter);
  }
  dump(): Promise<ArrayBuffer> {
    return this.inner.dump();
  }
}

/** A D1 binding that counts and enforces D1's limits for one invocation. */
export function meterD1(d1: D1Database, limits: Partial<D1Limits> = {}): { db: D1Database; usage: D1Usage } {
  if (d1 instanceof MeteredDatabase) return { db: d1 as unknown as D1Database, usage: (d1 as MeteredDatabase).meter.usage };
  const meter = new Meter({ ...DEFAULT_LIMITS, ...limits });
  return { db: new MeteredDatabase(d1, meter) as unknown as D1Database, usage: meter.usage };
}

/** The env of one invocation, its DB binding metered. */
export function withMeteredD1<E extends { DB: D1Database }>(env: E): { env: E; usage: D1Usage } {
  const { db, usage } = meterD1(env.DB);
  return { env: { ...env, DB: db }, usage };
}

/** Adds the invocation's D1 counts to a response (tests read them; off unless D1_METER_HEADERS is "true"). */
export function withUsageHeaders(response: Response, usage: D1Usage): Response {
  const headers = new Headers(response.headers);
  headers.set("x-edgetune-d1-statements", String(usage.statements));
  headers.set("x-edgetune-d1-calls", String(usage.calls));
  headers.set("x-edgetune-d1-max-params", String(usage.maxParams));
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers, webSocket: (response as any).webSocket ?? null } as ResponseInit);
}
