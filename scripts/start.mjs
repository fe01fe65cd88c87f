#!/usr/bin/env node
// `npm start`: the whole platform on this machine (API on 127.0.0.1:$PORT + one local runner), offline.
// EDGETUNE_STATE_DIR moves the local state (D1, R2, queue, keys) out of .wrangler/state.
// Stopping: Ctrl-C, SIGTERM, SIGHUP (terminal closed), or the parent (`npm`) going away all stop the whole tree;
// even a SIGKILL of this process does, through scripts/stop-with-parent.mjs.
import fs from "node:fs";
import { startPlatform } from "./platform.mjs";

const platform = await startPlatform({ stateDir: process.env.EDGETUNE_STATE_DIR || undefined, publishBuiltins: true });
const keyIsDefault = !process.env.EDGETUNE_ADMIN_KEY;
console.log(`
edgetune is running (ready in ${platform.readyMs} ms)
  browser  ${platform.url}/        the dashboard: sign in with the API key
  API      ${platform.url}        docs: ${platform.url}/docs
  API key  ${platform.adminKey}${keyIsDefault ? "  (kept in the state folder; set EDGETUNE_ADMIN_KEY to choose it)" : ""}
  state    ${platform.stateDir}
  runner   one local runner is training jobs

Next, in another terminal (one folder per label in ./my-images, e.g. my-images/cats/1.jpg):
  npx edgetune login --url ${platform.url} --key ${platform.adminKey}
  npx edgetune datasets push ./my-images
  npx edgetune train <dataset id from push> --wait

Stop with Ctrl-C.
`);

let stopping = false;
async function stopAll(code) {
  if (stopping) return;
  stopping = true;
  await platform.stop();
  process.exit(code);
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => stopAll(0));
// `npm start` runs this as npm -> `sh -c "node scripts/start.mjs"` -> node. A SIGKILL of npm passes nothing on and
// leaves the shell waiting on us, so watch npm too (the shell's parent, on Linux): when either goes away, stop.
const watched = [process.ppid, ...launcherOf(process.ppid)];
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
setInterval(() => { if (process.ppid !== watched[0] || !watched.every(alive)) stopAll(0); }, 1000).unref();

/** The process that started our parent when the parent is a `sh -c` wrapper (npm's script shell); else none. */
function launcherOf(pid) {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (!/(^|\/)(sh|bash|dash)$/.test(cmdline[0]) || cmdline[1] !== "-c") return [];
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const grandparent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return grandparent > 1 ? [grandparent] : [];
  } catch {
    return []; // no /proc (macOS, Windows): the direct parent is still watched
  }
}
for (const child of platform.children) child.on("exit", (code) => { if (!stopping) { console.error(`a platform process exited (code ${code}); stopping`); stopAll(1); } });
