// Stops the platform's process groups when the process that started them goes away, however it went (Ctrl-C,
// SIGTERM, SIGKILL, a closed terminal). Started by scripts/platform.mjs with a pipe on stdin; it reads one process
// group id per line. The parent holds the pipe's other end, so the kernel closes it when the parent dies: on EOF,
// each group gets SIGTERM, then SIGKILL after 8 s if it is still there.
const groups = new Set();
let buffered = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffered += chunk;
  const lines = buffered.split("\n");
  buffered = lines.pop();
  for (const line of lines) {
    const pgid = Number(line.trim());
    if (Number.isInteger(pgid) && pgid > 1) groups.add(pgid);
  }
});
const alive = (pgid) => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
};
process.stdin.on("end", async () => {
  for (const pgid of groups) try { process.kill(-pgid, "SIGTERM"); } catch {}
  const deadline = Date.now() + 8000;
  while (Date.now() < deadline && [...groups].some(alive)) await new Promise((r) => setTimeout(r, 100));
  for (const pgid of groups) if (alive(pgid)) try { process.kill(-pgid, "SIGKILL"); } catch {}
  process.exit(0);
});
// Never stopped by the terminal's Ctrl-C: it must outlive the parent to do its job.
process.on("SIGINT", () => {});
process.on("SIGHUP", () => {});
