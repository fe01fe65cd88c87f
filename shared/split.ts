/**
 * Train/validation splits over dataset item indices.
 *
 * Two ways to get one: `splitStratified` draws a seeded, per-class split; `splitFromTags` honours a split the
 * dataset already declares (items tagged "train" or "val"). `resolveSplit` picks between them from a spec, so
 * callers hold one value describing how the split was made.
 */
import { createRandom, deriveSeed } from "./random";

/** Item indices (into the dataset's label array), each list sorted ascending; the two lists are disjoint. */
export interface Split {
  train: number[];
  val: number[];
}

/** How to split: drawn per class, or as tagged by the dataset. */
export type SplitSpec =
  | { kind: "stratified"; val_fraction: number; seed: number }
  | { kind: "explicit"; tags: readonly SplitTag[] };

export type SplitTag = "train" | "val";

/**
 * Number of validation items for a class of `classSize` items: `round(classSize * valFraction)`, but at least 1
 * when the class has 2 or more items (every class is then measured) and at most `classSize - 1` (every class is
 * then learned). A class with a single item goes to training. `valFraction = 0` means no validation set at all.
 */
export function countValidationItems(classSize: number, valFraction: number): number {
  if (valFraction === 0 || classSize < 2) return 0;
  const rounded = Math.round(classSize * valFraction);
  return Math.min(classSize - 1, Math.max(1, rounded));
}

/**
 * Splits item indices per class so each class keeps (about) the same validation share.
 *
 * Deterministic for a given `seed`. Each class draws from its own random stream, derived from `seed` and the
 * class label, so which of a class's items (by their order within the class) go to validation does not depend
 * on how many items other classes have or where those items sit in the input.
 *
 * @param labels class index per item, shape [n]; any integers (negative labels are rejected).
 * @param valFraction share of each class to hold out, in [0, 1).
 * @param seed any 32-bit integer.
 */
export function splitStratified(labels: Int32Array | readonly number[], valFraction: number, seed: number): Split {
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new RangeError(`valFraction must be in [0, 1), got ${valFraction}`);
  }
  const itemsByClass = new Map<number, number[]>();
  for (let index = 0; index < labels.length; index++) {
    const label = labels[index]!;
    if (!Number.isInteger(label) || label < 0) {
      throw new RangeError(`labels[${index}] must be a non-negative integer, got ${label}`);
    }
    let members = itemsByClass.get(label);
    if (!members) itemsByClass.set(label, (members = []));
    members.push(index);
  }

  const train: number[] = [];
  const val: number[] = [];
  for (const [label, members] of itemsByClass) {
    const valCount = countValidationItems(members.length, valFraction);
    const shuffled = createRandom(deriveSeed(seed, label)).shuffleInPlace(members.slice());
    for (let rank = 0; rank < shuffled.length; rank++) (rank < valCount ? val : train).push(shuffled[rank]!);
  }
  train.sort((a, b) => a - b);
  val.sort((a, b) => a - b);
  return { train, val };
}

/**
 * Uses the split the dataset declares.
 *
 * @param tags "train" or "val" per item, shape [n].
 */
export function splitFromTags(tags: readonly SplitTag[]): Split {
  const train: number[] = [];
  const val: number[] = [];
  tags.forEach((tag, index) => {
    if (tag === "train") train.push(index);
    else if (tag === "val") val.push(index);
    else throw new RangeError(`tags[${index}] must be "train" or "val", got ${JSON.stringify(tag)}`);
  });
  return { train, val };
}

/** Builds the split a spec describes; `labels` is used by the stratified kind only. */
export function resolveSplit(labels: Int32Array | readonly number[], spec: SplitSpec): Split {
  if (spec.kind === "stratified") return splitStratified(labels, spec.val_fraction, spec.seed);
  if (spec.tags.length !== labels.length) {
    throw new RangeError(`split tags cover ${spec.tags.length} items but the dataset has ${labels.length}`);
  }
  return splitFromTags(spec.tags);
}
