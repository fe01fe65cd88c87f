import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { zipSync } from "fflate";
import { startPlatform } from "../scripts/platform.mjs";
const dir = "/work/shared/datasets/flowers5";
const perClass = Number(process.argv[2] ?? 10);
const files: Record<string, [Uint8Array, { level: 0 }]> = {};
for (const label of readdirSync(dir).sort().slice(0, 3)) for (const f of readdirSync(path.join(dir, label)).sort().slice(0, perClass)) files[`${label}/${f}`] = [readFileSync(path.join(dir, label, f)), { level: 0 }];
const p = await startPlatform({ port: 8899, stateDir: "/tmp/try/state", log: (l: string) => process.stdout.write(l) });
const call = async (method: string, route: string, body?: unknown, raw?: Uint8Array) => {
  const r = await fetch(p.url + route, { method, headers: { authorization: `Bearer ${p.adminKey}`, "content-type": raw ? "application/zip" : "application/json" }, body: raw ?? (body ? JSON.stringify(body) : undefined) });
  return r.status === 204 ? null : r.json();
};
try {
  const ds: any = await call("POST", "/v1/datasets", { name: "try" });
  await call("POST", `/v1/datasets/${ds.id}/archive`, undefined, zipSync(files));
  let d: any; for (;;) { d = await call("GET", `/v1/datasets/${ds.id}`); if (d.status !== "ingesting") break; await new Promise((r) => setTimeout(r, 300)); }
  console.log("dataset", d.status, d.image_count, d.trainable);
  for (const round of [1, 2]) {
    const t0 = Date.now();
    const job: any = await call("POST", "/v1/jobs", { dataset_id: ds.id, hyperparameters: { epochs: 30 } });
    let j: any; for (;;) { j = await call("GET", `/v1/jobs/${job.id}`); if (["succeeded", "failed", "canceled"].includes(j.status)) break; await new Promise((r) => setTimeout(r, 300)); }
    console.log(`round ${round}: ${j.status} in ${Date.now() - t0} ms`, j.error ?? "", JSON.stringify(j.progress));
    if (j.model_id) console.log(JSON.stringify((await call("GET", `/v1/models/${j.model_id}`) as any).metrics).slice(0, 300));
  }
} finally { await p.stop(); }
