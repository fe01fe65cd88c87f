/** File arguments for `predict`: plain paths, and globs the shell did not expand (`'photos/**\/*.jpg'`). */
import fs from "node:fs";
import path from "node:path";

const GLOB_CHARS = /[*?[]/;

/** A glob as a RegExp over `/`-separated paths: `**` any folders, `*` within a name, `?` one character, `[abc]`. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      const slash = glob[i + 2] === "/";
      re += slash ? "(?:.*/)?" : ".*";
      i += slash ? 2 : 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        re += `[${glob.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Expands each argument: an existing path stays as is; a glob becomes the sorted files it matches. */
export function expandFileArgs(args: string[]): { files: string[]; unmatched: string[] } {
  const files: string[] = [];
  const unmatched: string[] = [];
  for (const arg of args) {
    if (fs.existsSync(arg) || !GLOB_CHARS.test(arg)) {
      if (fs.existsSync(arg) && fs.statSync(arg).isFile()) files.push(arg);
      else unmatched.push(arg);
      continue;
    }
    const normalized = arg.split(path.sep).join("/");
    const parts = normalized.split("/");
    const staticParts: string[] = [];
    for (const part of parts) {
      if (GLOB_CHARS.test(part)) break;
      staticParts.push(part);
    }
    const base = staticParts.join("/") || ".";
    const pattern = globToRegExp(parts.slice(staticParts.length).join("/"));
    const found: string[] = [];
    const walk = (dir: string, rel: string) => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (e.name.startsWith(".")) continue;
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(path.join(dir, e.name), r);
        else if (e.isFile() && pattern.test(r)) found.push(staticParts.length ? `${base}/${r}` : r);
      }
    };
    walk(base, "");
    if (found.length === 0) unmatched.push(arg);
    files.push(...found.sort());
  }
  return { files, unmatched };
}
