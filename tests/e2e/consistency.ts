/**
 * The consistency checker: every R2 object the platform keeps for a row has its row, and every row that names an
 * object has it. It reads the local platform's persisted state (the folder `wrangler dev --persist-to` writes) through
 * wrangler's getPlatformProxy, the same D1 and R2 bindings the Worker sees, so run it with the platform stopped.
 *
 * Rules (workers/services/object-keys.ts has the layout):
 * - projects/{p}/images/{sha}: a dataset_images row of a dataset of project p holds that sha, and every such row's
 *   object exists;
 * - projects/{p}/archives/...: only while its ingest is queued or running (an ingest that ended removes its archive),
 *   and a queued or running ingest has its archive;
 * - projects/{p}/backbones/{id}/...: the backbone row exists, and a backbone row has model.json and weights.bin;
 * - projects/{p}/models/{id}/...: the model row exists, or its job is still queued or running (an attempt in
 *   progress); a model row has head.json and head.bin under its prefix, and metrics.json when its row holds only the
 *   metrics' summary;
 * - projects/{p}/datasets/{id}/...: the dataset row exists (diagnostics reports);
 * - the embedding cache (projects/{p}/embeddings/) is keyed by content, not by a row, and is not checked.
 */
import path from "node:path";
import { getPlatformProxy } from "wrangler";
import { ROOT } from "../../scripts/platform.mjs";

export interface ConsistencyReport {
  objects: number;
  rows: number;
  problems: string[];
}

/** The parts of the D1 and R2 bindings used here (the Workers types are not in the Node test project). */
interface Bindings {
  DB: { prepare(sql: string): { all<T>(): Promise<{ results: T[] }> } };
  BUCKET: { list(options: { prefix: string; cursor?: string }): Promise<{ objects: { key: string }[]; truncated: boolean; cursor?: string }> };
}

const ACTIVE_JOB = new Set(["queued", "running"]);
const ACTIVE_INGEST = new Set(["queued", "running"]);

export async function checkConsistency(stateDir: string): Promise<ConsistencyReport> {
  const proxy = await getPlatformProxy<Bindings>({
    configPath: path.join(ROOT, "wrangler.toml"),
    persist: { path: path.join(stateDir, "v3") },
  });
  try {
    const { DB, BUCKET } = proxy.env;
    const all = async <T>(sql: string) => (await DB.prepare(sql).all<T>()).results;
    const images = await all<{ project_id: string; sha256: string }>("select distinct d.project_id, i.sha256 from dataset_images i join datasets d on d.id = i.dataset_id");
    const datasets = await all<{ id: string; project_id: string }>("select id, project_id from datasets");
    const ingests = await all<{ id: string; project_id: string; object_key: string; status: string }>("select id, project_id, object_key, status from ingests");
    const backbones = await all<{ id: string; project_id: string; object_prefix: string }>("select id, project_id, object_prefix from backbones");
    const models = await all<{ id: string; project_id: string; object_prefix: string; metrics: string }>("select id, project_id, object_prefix, metrics from models");
    const jobs = await all<{ id: string; project_id: string; status: string; model_id: string | null }>("select id, project_id, status, model_id from jobs");

    const keys = new Set<string>();
    for (let cursor: string | undefined; ; ) {
      const page = await BUCKET.list({ prefix: "projects/", cursor });
      for (const object of page.objects) keys.add(object.key);
      if (!page.truncated) break;
      cursor = page.truncated ? page.cursor : undefined;
    }

    const problems: string[] = [];
    const imageSet = new Set(images.map((i) => `${i.project_id}/${i.sha256}`));
    const datasetSet = new Set(datasets.map((d) => `${d.project_id}/${d.id}`));
    const ingestByKey = new Map(ingests.map((i) => [i.object_key, i]));
    const ingestById = new Map(ingests.map((i) => [i.id, i]));
    const backboneSet = new Set(backbones.map((b) => `${b.project_id}/${b.id}`));
    const modelSet = new Set(models.map((m) => `${m.project_id}/${m.id}`));
    // A job's model id is model_<job id suffix> (services/jobs.ts modelIdForJob): its attempts write there first.
    const activeModelIds = new Set(jobs.filter((j) => ACTIVE_JOB.has(j.status)).map((j) => `${j.project_id}/${j.id.replace(/^job_/, "mdl_")}`));

    // Objects without their row.
    for (const key of keys) {
      const [, project, kind, id, rest] = key.match(/^projects\/([^/]+)\/([^/]+)\/([^/]+)(?:\/(.*))?$/) ?? [];
      if (!kind) {
        problems.push(`object ${key}: not a key object-keys.ts builds`);
        continue;
      }
      if (kind === "images" && !imageSet.has(`${project}/${id}`)) problems.push(`object ${key}: no dataset_images row holds this image`);
      else if (kind === "archives") {
        const ingestId = (rest ?? id).replace(/\.(zip|entries\.json)$/, "").split("/").pop()!;
        const ingest = ingestByKey.get(key) ?? ingestById.get(ingestId);
        if (!ingest) problems.push(`object ${key}: no ingest row`);
        else if (!ACTIVE_INGEST.has(ingest.status)) problems.push(`object ${key}: its ingest ${ingest.id} is ${ingest.status}, so the archive should be gone`);
      } else if (kind === "backbones" && !backboneSet.has(`${project}/${id}`)) problems.push(`object ${key}: no backbone row ${id}`);
      else if (kind === "models" && !modelSet.has(`${project}/${id}`) && !activeModelIds.has(`${project}/${id}`)) problems.push(`object ${key}: no model row ${id} and no job still making it`);
      else if (kind === "datasets" && !datasetSet.has(`${project}/${id}`)) problems.push(`object ${key}: no dataset row ${id}`);
    }

    // Rows without their objects.
    for (const image of images) if (!keys.has(`projects/${image.project_id}/images/${image.sha256}`)) problems.push(`dataset_images of project ${image.project_id}: image ${image.sha256} is not in R2`);
    for (const ingest of ingests) if (ACTIVE_INGEST.has(ingest.status) && !keys.has(ingest.object_key)) problems.push(`ingest ${ingest.id} is ${ingest.status} but its archive ${ingest.object_key} is not in R2`);
    for (const backbone of backbones) for (const file of ["model.json", "weights.bin"]) if (!keys.has(`${backbone.object_prefix}/${file}`)) problems.push(`backbone ${backbone.id}: ${file} is not in R2`);
    for (const model of models) {
      const needed = ["head.json", "head.bin", ...(JSON.parse(model.metrics)?.summary_only ? ["metrics.json"] : [])];
      for (const file of needed) if (!keys.has(`${model.object_prefix}/${file}`)) problems.push(`model ${model.id}: ${file} is not in R2 under ${model.object_prefix}`);
    }
    const rows = images.length + datasets.length + ingests.length + backbones.length + models.length + jobs.length;
    return { objects: keys.size, rows, problems };
  } finally {
    await proxy.dispose();
  }
}
