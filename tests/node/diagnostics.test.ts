/**
 * Dataset diagnostics (gpu-runner/src/diagnostics.ts) on generated embeddings with planted problems: near duplicates
 * (some across train and val), flipped labels and far-away images. Precision matters as much as recall, so every
 * test asserts both: most planted problems found AND few false alarms.
 *
 * Isolation: seeded synthetic data; the out-of-fold heads train in-process.
 */
import { describe, expect, it } from "vitest";
import { computeDiagnostics, type DiagnosticsImage } from "../../gpu-runner/src/diagnostics";
import { inProcessFoldRunner } from "../../gpu-runner/src/train/fit-fold";
import { createRandom } from "../../shared/random";
import { hyperparametersSchema } from "../../shared/schemas";

const CLASSES = ["a", "b", "c", "d", "e"];
const DIM = 32;

/** 5 classes × 40 images around random centres, then the planted problems; returns the truth about each. */
function plantedDataset() {
  const random = createRandom(2024);
  const centres = CLASSES.map(() => Array.from({ length: DIM }, () => random.nextNormal()));
  const rows: number[][] = [];
  const images: DiagnosticsImage[] = [];
  const add = (vector: number[], label: string, split: "train" | "val", name: string) => {
    rows.push(vector);
    images.push({ sha256: name.padEnd(64, "0"), path: `${split}/${label}/${name}.jpg`, label, split });
    return images.length - 1;
  };
  for (let i = 0; i < 200; i++) {
    const c = i % CLASSES.length;
    add(centres[c]!.map((v) => v + 0.6 * random.nextNormal()), CLASSES[c]!, i % 4 === 3 ? "val" : "train", `img${i}`);
  }
  // Near duplicates: 6 copies with a little noise (a re-encode); 3 of them land in the other split (leaks).
  const duplicates: Array<[number, number]> = [];
  for (let k = 0; k < 6; k++) {
    const original = k * 17;
    const split = k < 3 ? (images[original]!.split === "train" ? "val" : "train") : images[original]!.split;
    duplicates.push([original, add(rows[original]!.map((v) => v + 0.01 * random.nextNormal()), images[original]!.label, split, `copy${k}`)]);
  }
  // Mislabels: 8 images whose label is another class's.
  const mislabelled = new Map<number, string>();
  for (let k = 0; k < 8; k++) {
    const row = 3 + k * 23;
    const truth = images[row]!.label;
    const wrong = CLASSES[(CLASSES.indexOf(truth) + 1 + (k % 4)) % CLASSES.length]!;
    images[row] = { ...images[row]!, label: wrong };
    mislabelled.set(row, truth);
  }
  // Outliers: 2 images far from every class.
  const outliers = [0, 1].map((k) => add(Array.from({ length: DIM }, () => 6 * random.nextNormal()), CLASSES[k]!, "train", `odd${k}`));
  const embeddings = new Float32Array(rows.length * DIM);
  rows.forEach((row, i) => embeddings.set(row, i * DIM));
  return { embeddings, images, duplicates, mislabelled, outliers };
}

describe("computeDiagnostics on planted problems", async () => {
  const data = plantedDataset();
  const labelNames = [...new Set(data.images.map((i) => i.label))].sort();
  const labels = Int32Array.from(data.images, (i) => labelNames.indexOf(i.label));
  const hyperparameters = hyperparametersSchema.parse({ epochs: 40, learning_rate: 0.01 });
  const findings = await computeDiagnostics(
    { embeddings: data.embeddings, dim: DIM, images: data.images },
    { seed: 1, runFolds: inProcessFoldRunner({ embeddings: data.embeddings, dim: DIM, labels, classCount: labelNames.length, hyperparameters }) },
  );
  const pathOf = (row: number) => data.images[row]!.path;

  it("finds the near duplicates, lists the train/val leaks first, and raises no other pair", () => {
    const found = new Set(findings.near_duplicates.map((pair) => [pair.a.path, pair.b.path].sort().join(" | ")));
    const planted = data.duplicates.map(([a, b]) => [pathOf(a), pathOf(b)].sort().join(" | "));
    expect(planted.filter((pair) => found.has(pair)).length).toBeGreaterThanOrEqual(5);
    expect(findings.near_duplicates.length).toBeLessThanOrEqual(planted.length + 1);
    const leaks = findings.near_duplicates.map((pair) => pair.leak);
    expect(leaks.slice(0, 3)).toEqual([true, true, true]);
    expect(leaks.indexOf(false)).toBe(leaks.lastIndexOf(true) + 1); // every leak before every non-leak
  });

  it("suspects most flipped labels, suggests the true label, and few others", () => {
    const suspected = new Map(findings.suspected_mislabels.map((m) => [m.path, m]));
    let hits = 0;
    for (const [row, truth] of data.mislabelled) {
      const entry = suspected.get(pathOf(row));
      if (entry) {
        hits++;
        expect(entry.suggested_label).toBe(truth);
        expect(entry.score).toBeGreaterThan(0.5);
      }
    }
    expect(hits).toBeGreaterThanOrEqual(6);
    const falseAlarms = findings.suspected_mislabels.filter((m) => ![...data.mislabelled.keys()].some((row) => pathOf(row) === m.path));
    expect(falseAlarms.length).toBeLessThanOrEqual(2);
  });

  it("flags the far-away images as outliers and at most 1% of the dataset", () => {
    const flagged = findings.outliers.map((o) => o.path);
    expect(flagged).toEqual(expect.arrayContaining(data.outliers.map(pathOf)));
    expect(flagged.length).toBeLessThanOrEqual(Math.max(1, Math.floor(data.images.length * 0.01)));
  });
});
