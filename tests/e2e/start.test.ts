/**
 * `npm start` as a new user meets it: the banner ends with the three commands to type next, idle runner long polls
 * stay out of the log, and killing `npm start` (even with SIGKILL, which nothing can catch) stops the whole tree:
 * wrangler, workerd and the runner. Its secrets (admin key, runner token) never appear on a command line and live in
 * files only their owner can read.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "vitest";
import { ROOT, freePort, isIdleLongPoll } from "../../scripts/platform.mjs";
import { descendants, isAlive, waitFor } from "./platform";

describe("npm start", () => {
  test("idle long polls are recognised and left out of the log", () => {
    assert.equal(isIdleLongPoll("[wrangler:info] POST /v1/runner/lease 204 No Content (20012ms)"), true);
    assert.equal(isIdleLongPoll("[wrangler:info] POST /v1/runner/lease 200 OK (4265ms)"), false);
    assert.equal(isIdleLongPoll("[wrangler:info] POST /v1/datasets 201 Created (12ms)"), false);
  });

  test("prints the next three commands, keeps its secrets off command lines and in 0600 files, and a SIGKILL of npm stops wrangler, workerd and the runner", async () => {
    if (process.platform !== "linux") return;
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "edgetune-start-"));
    const port = await freePort();
    const npm = spawn("npm", ["start"], { cwd: ROOT, env: { ...process.env, PORT: String(port), EDGETUNE_STATE_DIR: stateDir }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    npm.stdout.on("data", (d) => (output += d));
    npm.stderr.on("data", (d) => (output += d));
    try {
      await waitFor("the banner", async () => output.includes("Stop with Ctrl-C"), 120_000);
      assert.match(output, /npx edgetune login --url http:\/\/127\.0\.0\.1:\d+ --key et_admin_\S+/);
      assert.match(output, /npx edgetune datasets push \.\/my-images/);
      assert.match(output, /npx edgetune train <dataset id from push> --wait/);
      const tree = descendants(npm.pid!);
      const commands = tree.map((pid) => { try { return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " "); } catch { return ""; } });
      assert.ok(commands.some((c) => c.includes("wrangler") && c.includes(" dev ")), commands.join("\n"));
      assert.ok(commands.some((c) => c.includes("workerd")), commands.join("\n"));
      assert.ok(commands.some((c) => c.includes("gpu-runner/src/main.ts")), commands.join("\n"));
      // Secrets stay off command lines (where `ps` shows them to every user) and in files only their owner reads.
      const adminKey = /--key (et_admin_\S+)/.exec(output)![1]!;
      const secrets = path.join(stateDir, "edgetune");
      await waitFor("the local runner token", async () => fs.existsSync(path.join(secrets, "runner-token")), 60_000);
      const runnerToken = fs.readFileSync(path.join(secrets, "runner-token"), "utf8").trim();
      const live = descendants(npm.pid!).map((pid) => { try { return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " "); } catch { return ""; } });
      for (const secret of [adminKey, runnerToken]) assert.ok(!live.some((c) => c.includes(secret)), `a command line carries a secret:\n${live.join("\n")}`);
      assert.equal(fs.statSync(secrets).mode & 0o777, 0o700);
      // admin-key is absent when EDGETUNE_ADMIN_KEY comes from the environment.
      for (const name of ["admin-key", "runner-token", "wrangler.env"].filter((n) => n !== "admin-key" || fs.existsSync(path.join(secrets, n)))) assert.equal(fs.statSync(path.join(secrets, name)).mode & 0o777, 0o600, name);
      npm.kill("SIGKILL");
      await waitFor("every process of the platform to exit", async () => tree.every((pid) => !isAlive(pid)), 30_000).catch(() => {
        const left = tree.filter(isAlive).map((pid) => `${pid}: ${fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ")}`);
        assert.fail(`still running after npm was killed:\n${left.join("\n")}`);
      });
    } finally {
      for (const pid of descendants(npm.pid!)) try { process.kill(pid, "SIGKILL"); } catch {}
    }
  }, 180_000);
});
