/**
 * Lease dispatch without polling: one Durable Object instance holds the long polls of waiting runners and wakes
 * them when a job may have become leasable (created, released, requeued). D1 stays the source of truth: a woken
 * runner still claims a job with leaseJob's single conditional UPDATE, so a lost or spurious wake-up can only cost
 * time, never hand a job out twice. The object keeps nothing durable (no storage); if it is evicted or restarted,
 * waiting runners see a new generation and re-check D1 at once.
 *
 * Generation counter: a runner reads the generation, checks D1, then waits "unless the generation moved". A job
 * created between the D1 check and the wait bumps the generation, so that wake-up is not lost.
 *
 * Cost: an idle runner makes one lease request per `wait_s` (≤ 25 s) with 3 D1 queries in it (sweep, claim, next due
 * time) instead of 2 queries every 500 ms; a waiting request holds no CPU. A created job reaches a waiting runner in
 * one DO call plus one D1 claim (milliseconds).
 */
import { DurableObject } from "cloudflare:workers";

/** The one instance's name (a single dispatcher serves the whole deployment: waking is cheap, contention is in D1). */
export const DISPATCHER_NAME = "job-dispatch";

export class JobDispatcher extends DurableObject {
  private generationValue = 0;
  private readonly waiters = new Set<() => void>();

  /** The current generation; pass it to `wait` after checking D1. */
  async generation(): Promise<number> {
    return this.generationValue;
  }

  /**
   * Resolves with the (new) generation when `wake` is called, after `timeoutMs`, or at once when the generation is
   * no longer `seen` (something happened since the caller looked at D1).
   */
  async wait(seen: number, timeoutMs: number): Promise<number> {
    if (seen !== this.generationValue || timeoutMs <= 0) return this.generationValue;
    return new Promise<number>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(this.generationValue);
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  /** Wakes every waiting runner; returns how many were waiting. */
  async wake(): Promise<number> {
    this.generationValue++;
    const waiting = [...this.waiters];
    for (const done of waiting) done();
    return waiting.length;
  }

  /** Runners waiting right now (for tests and logs). */
  async waiting(): Promise<number> {
    return this.waiters.size;
  }
}
