/**
 * Seeded pseudo-random numbers for everything that must replay exactly: dataset splits, weight initialisation,
 * shuffling, dropout masks. `Math.random()` cannot be seeded, and tfjs's own seeded ops draw from a global
 * stream that any other op can advance, so training and splitting draw from here instead.
 *
 * Generator: sfc32 (Chris Doty-Humphrey's "small fast counting" generator; passes PractRand to 2^40+ bytes),
 * seeded through splitmix32 so that neighbouring seeds (0, 1, 2, ...) give unrelated streams. Pure integer
 * arithmetic with `Math.imul`, so the same seed yields the same stream in Node and in workerd.
 */

/** A deterministic stream of random numbers. */
export interface Random {
  /** Uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** Uniform float in [0, 1), 32 bits of randomness. */
  nextFloat(): number;
  /** Uniform integer in [0, exclusiveMax); exclusiveMax must be a positive integer ≤ 2^32. */
  nextInt(exclusiveMax: number): number;
  /** Standard normal N(0, 1) sample (Box–Muller). */
  nextNormal(): number;
  /** Fisher–Yates shuffle of `items`, in place; returns the same array. */
  shuffleInPlace<T>(items: T[]): T[];
}

/** One splitmix32 step: a well-mixed 32-bit hash of `state`. */
function mixUint32(state: number): number {
  let z = (state + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Derives an independent seed from a base seed and a path of integers, e.g. `deriveSeed(seed, classIndex)` gives
 * each class its own stream so that one class's draws do not depend on how many draws another class made.
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let hash = mixUint32(seed >>> 0);
  for (const part of parts) hash = mixUint32(hash ^ mixUint32(part >>> 0));
  return hash;
}

/** Creates a seeded generator; any finite number is a valid seed (it is truncated to 32 bits). */
export function createRandom(seed: number): Random {
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
  let a = mixUint32(seed >>> 0);
  let b = mixUint32(a);
  let c = mixUint32(b);
  let d = 1; // sfc32 counter
  const nextUint32 = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  // Warm up: the first outputs of sfc32 still correlate with the seed words.
  for (let i = 0; i < 12; i++) nextUint32();

  const nextFloat = (): number => nextUint32() / 4294967296;
  let spareNormal: number | null = null;
  const random: Random = {
    nextUint32,
    nextFloat,
    nextInt(exclusiveMax: number): number {
      if (!Number.isInteger(exclusiveMax) || exclusiveMax <= 0 || exclusiveMax > 4294967296) {
        throw new RangeError(`exclusiveMax must be an integer in [1, 2^32], got ${exclusiveMax}`);
      }
      // Rejection sampling keeps the result exactly uniform (no modulo bias).
      const limit = 4294967296 - (4294967296 % exclusiveMax);
      let value = nextUint32();
      while (value >= limit) value = nextUint32();
      return value % exclusiveMax;
    },
    nextNormal(): number {
      if (spareNormal !== null) {
        const value = spareNormal;
        spareNormal = null;
        return value;
      }
      const u1 = 1 - nextFloat(); // (0, 1]: keeps log() finite
      const u2 = nextFloat();
      const radius = Math.sqrt(-2 * Math.log(u1));
      spareNormal = radius * Math.sin(2 * Math.PI * u2);
      return radius * Math.cos(2 * Math.PI * u2);
    },
    shuffleInPlace<T>(items: T[]): T[] {
      for (let i = items.length - 1; i > 0; i--) {
        const j = random.nextInt(i + 1);
        const swap = items[i]!;
        items[i] = items[j]!;
        items[j] = swap;
      }
      return items;
    },
  };
  return random;
}
