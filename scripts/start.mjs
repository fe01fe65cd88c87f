#!/usr/bin/env node
// `npm start`: the whole platform on this machine (API on 127.0.0.1:$PORT + one local runner), offline.
import { startPlatform } from "./platform.mjs";

const platform = await startPlatform();
console.log(`
edgetune is running (ready in ${platform.readyMs} ms)
  API      ${platform.url}        docs: ${platform.url}/docs
  API key  ${platform.adminKey}
  state    ${platform.stateDir}
Try:  curl -H "Authorization: Bearer ${platform.adminKey}" ${platform.url}/v1/datasets
Stop with Ctrl-C.
`);
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    await platform.stop();
    process.exit(0);
  });
}
for (const child of platform.children) child.on("exit", (code) => { if (!stopping) { console.error(`a platform process exited (code ${code}); stopping`); platform.stop().then(() => process.exit(1)); } });
