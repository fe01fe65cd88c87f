/**
 * The runner image runs unprivileged: the user its USER line names must exist in that image. NVIDIA's CUDA base
 * images define no `node` user, so the Dockerfile has to create it (there is no Docker engine on the test machines,
 * so this reads the Dockerfile instead of building it).
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const dockerfile = fs.readFileSync(path.join(import.meta.dirname, "..", "..", "gpu-runner", "Dockerfile"), "utf8");
/** Base images known to define these users. */
const BASE_USERS: Record<string, string[]> = { node: ["node"] };

describe("gpu-runner/Dockerfile", () => {
  it("creates the user it switches to, before switching", () => {
    const lines = dockerfile.replace(/\\\n/g, " ").split("\n").map((l) => l.trim());
    const base = lines.find((l) => /^FROM\s/i.test(l))!.split(/\s+/)[1];
    const userIndex = lines.findIndex((l) => /^USER\s/i.test(l));
    expect(userIndex).toBeGreaterThan(0);
    const user = lines[userIndex].split(/\s+/)[1].split(":")[0];
    expect(user).not.toBe("root");
    const createdBefore = lines.slice(0, userIndex).some((l) => /^RUN\s/i.test(l) && new RegExp(`(useradd|adduser)\\b[^&;]*\\b${user}\\s*($|&&|;)`).test(l));
    const fromBase = (BASE_USERS[base.split(":")[0]] ?? []).includes(user);
    expect(createdBefore || fromBase, `USER ${user} on ${base}: no useradd/adduser creates it`).toBe(true);
  });
});
