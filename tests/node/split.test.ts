/**
 * Train/validation splits (shared/split.ts): the seeded per-class draw, the dataset's own tagged split, and the
 * dispatcher between them. The runner and the Worker both count on these splits replaying exactly for a seed, so the
 * tests pin determinism, the per-class counts and the partition (disjoint, covering, sorted) rather than any one
 * drawn order.
 *
 * Isolation: pure functions over labels built by the factories below; no shared state.
 */
import assert from "node:assert/strict";
import { describe, it } from "vitest";
import { countValidationItems, resolveSplit, splitFromTags, splitStratified, type Split, type SplitTag } from "../../shared/split";

// ---- factories ----------------------------------------------------------------------------------------------

/**
 * Labels with `classSizes[c]` items of class c, interleaved round-robin (0, 1, 2, 0, 1, 2, ...) so that no class
 * sits in one contiguous block: a split that accidentally worked by position would show it.
 */
function makeLabels(classSizes: readonly number[]): number[] {
  const remaining = [...classSizes];
  const labels: number[] = [];
  while (remaining.some((count) => count > 0)) {
    remaining.forEach((count, label) => {
      if (count > 0) {
        labels.push(label);
        remaining[label] = count - 1;
      }
    });
  }
  return labels;
}

/** Item indices of each class, keyed by label. */
function indicesByClass(labels: readonly number[], indices: readonly number[]): Map<number, number[]> {
  const byClass = new Map<number, number[]>();
  for (const index of indices) {
    const label = labels[index]!;
    byClass.set(label, [...(byClass.get(label) ?? []), index]);
  }
  return byClass;
}

/** Asserts that `split` partitions 0..itemCount-1: each list sorted ascending, no index in both, none missing. */
function assertPartition(split: Split, itemCount: number): void {
  const ascending = (list: number[]) => list.every((value, i) => i === 0 || list[i - 1]! < value);
  assert.ok(ascending(split.train), "train indices are sorted ascending");
  assert.ok(ascending(split.val), "val indices are sorted ascending");
  const val = new Set(split.val);
  assert.deepEqual(split.train.filter((index) => val.has(index)), [], "no index is in both train and val");
  assert.deepEqual([...split.train, ...split.val].sort((a, b) => a - b), Array.from({ length: itemCount }, (_, i) => i));
}

// Sizes that cover every branch of countValidationItems: single item, the "at least 1" and "at most size-1" clamps,
// and plain rounding.
const CLASS_SIZES = [1, 2, 3, 5, 8, 13, 40, 101];

// ---- countValidationItems -----------------------------------------------------------------------------------

describe("countValidationItems", () => {
  it("rounds classSize × fraction, keeps at least one val and one train item per class of 2+, and none for 1 item", () => {
    assert.equal(countValidationItems(100, 0.2), 20);
    assert.equal(countValidationItems(101, 0.25), 25); // 25.25 rounds down
    assert.equal(countValidationItems(10, 0.25), 3); // 2.5 rounds half up
    assert.equal(countValidationItems(3, 0.1), 1); // 0.3 would round to 0: raised to 1
    assert.equal(countValidationItems(2, 0.9), 1); // 1.8 would round to 2: capped at size - 1
    assert.equal(countValidationItems(1, 0.5), 0);
    assert.equal(countValidationItems(50, 0), 0);
  });
});

// ---- splitStratified ----------------------------------------------------------------------------------------

describe("splitStratified", () => {
  it("gives the identical split for the same seed, on a fresh copy of the labels", () => {
    const labels = makeLabels([30, 20, 10]);
    assert.deepEqual(splitStratified(labels, 0.2, 7), splitStratified([...labels], 0.2, 7));
    assert.deepEqual(splitStratified(Int32Array.from(labels), 0.2, 7), splitStratified(labels, 0.2, 7));
  });

  it("gives a different split for a different seed", () => {
    // 60 val items drawn from 300: two seeds agreeing everywhere by chance is astronomically unlikely.
    const labels = makeLabels([100, 100, 100]);
    const first = splitStratified(labels, 0.2, 1);
    const second = splitStratified(labels, 0.2, 2);
    assert.equal(first.val.length, second.val.length);
    assert.notDeepEqual(first.val, second.val);
  });

  it("holds out countValidationItems(classSize, fraction) items of every class", () => {
    const labels = makeLabels(CLASS_SIZES);
    for (const fraction of [0.1, 0.2, 0.5]) {
      const valByClass = indicesByClass(labels, splitStratified(labels, fraction, 11).val);
      CLASS_SIZES.forEach((size, label) => {
        assert.equal(valByClass.get(label)?.length ?? 0, countValidationItems(size, fraction), `class ${label} (${size} items), fraction ${fraction}`);
      });
    }
  });

  it("keeps every class with 2 or more items in both train and val, and a single-item class in train", () => {
    const labels = makeLabels(CLASS_SIZES);
    const split = splitStratified(labels, 0.05, 3);
    const trainByClass = indicesByClass(labels, split.train);
    const valByClass = indicesByClass(labels, split.val);
    CLASS_SIZES.forEach((size, label) => {
      if (size >= 2) {
        assert.ok((trainByClass.get(label)?.length ?? 0) >= 1, `class ${label} has a train item`);
        assert.ok((valByClass.get(label)?.length ?? 0) >= 1, `class ${label} has a val item`);
      } else {
        assert.deepEqual(trainByClass.get(label)?.length, 1);
        assert.equal(valByClass.get(label), undefined);
      }
    });
  });

  it("partitions the items: train and val are disjoint, sorted, and together cover every index", () => {
    const labels = makeLabels(CLASS_SIZES);
    for (const seed of [0, 1, 123456]) assertPartition(splitStratified(labels, 0.3, seed), labels.length);
  });

  it("draws each class independently: growing one class does not change which items of another go to val", () => {
    // Class 0 sits at the same positions in both datasets (indices 0..19); only class 1 grows, after it.
    const small = [...Array(20).fill(0), ...Array(10).fill(1)];
    const large = [...Array(20).fill(0), ...Array(90).fill(1)];
    const classZeroVal = (labels: number[]) => indicesByClass(labels, splitStratified(labels, 0.25, 5).val).get(0);
    assert.deepEqual(classZeroVal(small), classZeroVal(large));
  });

  it("puts everything in train when the fraction is 0", () => {
    const labels = makeLabels([4, 4]);
    assert.deepEqual(splitStratified(labels, 0, 1), { train: [0, 1, 2, 3, 4, 5, 6, 7], val: [] });
  });

  it("rejects a fraction outside [0, 1) and labels that are not non-negative integers", () => {
    assert.throws(() => splitStratified([0, 1], 1, 1), /valFraction must be in \[0, 1\)/);
    assert.throws(() => splitStratified([0, 1], -0.1, 1), RangeError);
    assert.throws(() => splitStratified([0, 1], Number.NaN, 1), RangeError);
    assert.throws(() => splitStratified([0, -1], 0.2, 1), /labels\[1\] must be a non-negative integer/);
    assert.throws(() => splitStratified([0, 1.5], 0.2, 1), /labels\[1\]/);
  });
});

// ---- splitFromTags ------------------------------------------------------------------------------------------

describe("splitFromTags", () => {
  it("puts each item where its tag says, whatever the class balance", () => {
    const tags: SplitTag[] = ["val", "train", "train", "val", "train"];
    assert.deepEqual(splitFromTags(tags), { train: [1, 2, 4], val: [0, 3] });
  });

  it("rejects a tag other than train or val, naming the index", () => {
    assert.throws(() => splitFromTags(["train", "test" as SplitTag]), /tags\[1\] must be "train" or "val", got "test"/);
  });
});

// ---- resolveSplit -------------------------------------------------------------------------------------------

describe("resolveSplit", () => {
  it("draws a stratified split for the stratified kind", () => {
    const labels = makeLabels([12, 9]);
    assert.deepEqual(resolveSplit(labels, { kind: "stratified", val_fraction: 0.25, seed: 9 }), splitStratified(labels, 0.25, 9));
  });

  it("uses the tags for the explicit kind, ignoring the labels' classes", () => {
    const tags: SplitTag[] = ["train", "val", "val"];
    assert.deepEqual(resolveSplit([0, 0, 0], { kind: "explicit", tags }), { train: [0], val: [1, 2] });
  });

  it("rejects tags that do not cover exactly the dataset's items", () => {
    assert.throws(() => resolveSplit([0, 1, 0], { kind: "explicit", tags: ["train", "val"] }), /split tags cover 2 items but the dataset has 3/);
    assert.throws(() => resolveSplit([0], { kind: "explicit", tags: ["train", "val"] }), RangeError);
  });
});
