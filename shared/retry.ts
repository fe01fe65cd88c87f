/**
 * Exponential backoff with jitter for reconnecting clients (runners leasing jobs, the SDK): `baseMs * 2^attempt`,
 * capped at `maxMs`, then drawn uniformly from its upper half. The jitter spreads a fleet of runners that lost the
 * API at the same moment (a deploy, a network blip) instead of having them all retry on the same tick; keeping the
 * lower half out keeps the backoff from collapsing to zero.
 */
export function jitteredBackoffMs(attempt: number, options: { baseMs: number; maxMs: number }, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
