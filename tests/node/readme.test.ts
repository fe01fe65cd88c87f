/**
 * The README lists every route the Worker defines (the routes' createRoute calls in workers/routes/) and refers to no
 * file of the repository that does not exist.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.join(import.meta.dirname, "..", "..");
const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

function definedRoutes(): string[] {
  const dir = path.join(ROOT, "workers", "routes");
  const routes: string[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".ts"))) {
    const text = fs.readFileSync(path.join(dir, file), "utf8");
    for (const match of text.matchAll(/method: "(get|post|put|delete|patch)", path: "([^"]+)"/g)) {
      routes.push(`${match[1].toUpperCase()} /v1${match[2].replace(/\{([a-z_0-9]+)\}/g, ":$1")}`);
    }
  }
  return routes;
}

describe("README.md", () => {
  it("lists every route in its API table", () => {
    const routes = definedRoutes();
    expect(routes.length).toBeGreaterThan(30);
    const missing = routes.filter((route) => !readme.includes(`\`${route}\``));
    expect(missing, "add these to the README's API overview table").toEqual([]);
  });

  it("says the admin key is required for a deployment", () => {
    const deploy = readme.slice(readme.indexOf("## Deploying"));
    expect(deploy).toMatch(/EDGETUNE_ADMIN_KEY\s+#\s*required/);
    expect(deploy).not.toMatch(/EDGETUNE_ADMIN_KEY\s+#\s*optional/);
  });

  it("refers only to files that exist", () => {
    const referenced = new Set([...readme.matchAll(/(?<![\w/.-])((?:workers|gpu-runner|shared|tests|bench|scripts|migrations|dashboard|sdk|cli)\/[\w./-]+\.(?:ts|mjs|js|md|json|toml|sql|mts))/g)].map((m) => m[1]));
    const missing = [...referenced].filter((file) => !fs.existsSync(path.join(ROOT, file)));
    expect(missing).toEqual([]);
  });
});
