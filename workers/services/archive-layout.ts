/**
 * Maps archive entry names to (split, label, filename) per the archive layout of API.md: `label/file`, or
 * `train/label/file` and `val/label/file`. A single folder wrapping everything (`flowers/daisy/1.jpg`, what most zip
 * tools produce) is unwrapped. Every other entry is rejected with a reason; nothing is guessed.
 */
import { FILENAME_PATTERN, LABEL_PATTERN, normalizeName } from "../../shared/schemas";
import type { ZipEntry } from "./zip-reader";

export type Placement =
  | { ok: true; split: "train" | "val" | "auto"; label: string; filename: string }
  | { ok: false; code: string; message: string }
  | { ok: "skip" };

/** Finds a single wrapping folder shared by every file entry (not `train`/`val`, not a label folder itself). */
export function commonRoot(entries: ZipEntry[]): string | null {
  let root: string | null = null;
  for (const entry of entries) {
    if (entry.isDirectory) continue;
    const parts = entry.name.split("/");
    if (parts.length < 3 || isHidden(parts[0])) {
      if (isHidden(parts[0])) continue; // __MACOSX/ and friends do not count against a wrapper
      return null;
    }
    if (root === null) root = parts[0];
    else if (root !== parts[0]) return null;
  }
  if (root === null || root === "train" || root === "val") return null;
  // `label/sub/file` everywhere would also look wrapped; only unwrap when the inner layout is a valid one.
  return root;
}

const isHidden = (segment: string) => segment.startsWith(".") || segment === "__MACOSX";

export function placeEntry(entry: ZipEntry, root: string | null): Placement {
  const name = entry.name;
  if (entry.isDirectory) return { ok: "skip" };
  if (entry.isSymlink) return reject("unsafe_path", "Symbolic links are not accepted in archives.");
  if (name.startsWith("/") || /^[a-zA-Z]:/.test(name) || name.includes("\\")) return reject("unsafe_path", "Absolute paths and backslashes are not allowed in archive entries; use relative label/file paths.");
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return reject("unsafe_path", "The entry name contains control characters.");
  let parts = name.split("/");
  if (parts.some((p) => p === ".." || p === "." || p === "")) return reject("unsafe_path", "Entry paths must not contain '..', '.' or empty segments.");
  if (parts.some(isHidden)) return reject("hidden_file", "Hidden files and folders (starting with '.', or __MACOSX) are not images; they were skipped.");
  if (root !== null && parts[0] === root) parts = parts.slice(1);
  let split: "train" | "val" | "auto" = "auto";
  if (parts.length === 3 && (parts[0] === "train" || parts[0] === "val")) {
    split = parts[0];
    parts = parts.slice(1);
  }
  if (parts.length === 1) return reject("missing_label", "Files must sit in a folder named after their label: label/file, or train/label/file and val/label/file.");
  if (parts.length !== 2) return reject("unexpected_path", "Expected label/file or train/label/file or val/label/file; this entry is nested deeper.");
  const [label, filename] = parts.map(normalizeName);
  if (!LABEL_PATTERN.test(label)) return reject("invalid_label", `'${label}' is not a valid label: use 1 to 100 letters, digits, spaces or _ . - + ( ) & , ' starting with a letter or digit.`);
  if (!FILENAME_PATTERN.test(filename)) return reject("invalid_filename", `'${filename}' is not a valid file name: at most 200 characters, no leading dot.`);
  return { ok: true, split, label, filename };
}

const reject = (code: string, message: string): Placement => ({ ok: false, code, message });
