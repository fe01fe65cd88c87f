/**
 * Per-project quotas: what one tenant may hold and queue, so that no tenant can take the platform from the others.
 * The deployment's defaults (below, or the PROJECT_QUOTAS setting: JSON with any of the names) apply to every
 * project; the operator overrides them per project with `PUT /v1/projects/{id}/quotas` (admin key), stored in
 * projects.quotas. Over a quota: 403 `quota_exceeded` with `details: {quota, limit, used}`, before anything is written.
 *
 * - bytes, images: live dataset images (checked on each upload, on an archive's size before it is accepted, and on
 *   each of its entries as the ingest reaches it);
 * - datasets, backbones: how many the project holds;
 * - queued_jobs: jobs waiting (checked at creation);
 * - running_jobs: jobs running at once (leaseJob hands a project no more; its other jobs wait their turn).
 */
import { and, count, eq, isNull, sql } from "drizzle-orm";
import { ApiError } from "../../shared/errors";
import { backbones, datasetImages, datasets, jobs, projects } from "../db/schema";
import type { Db } from "./db";

export const QUOTA_NAMES = ["bytes", "images", "datasets", "backbones", "queued_jobs", "running_jobs"] as const;
export type QuotaName = (typeof QUOTA_NAMES)[number];
export type Quotas = Record<QuotaName, number>;

/**
 * Defaults sized for one team on a shared deployment: 50 GB and a million images of datasets, 200 datasets, 50
 * backbones (100 MB of weights each at most), 100 queued jobs and 4 running at once.
 */
export const DEFAULT_QUOTAS: Quotas = { bytes: 50_000_000_000, images: 1_000_000, datasets: 200, backbones: 50, queued_jobs: 100, running_jobs: 4 };

/** Only known names with non-negative integer values survive (a bad setting never widens a quota to "anything"). */
export function parseQuotas(value: unknown): Partial<Quotas> {
  let object = value;
  if (typeof value === "string") {
    try {
      object = JSON.parse(value);
    } catch {
      return {};
    }
  }
  if (!object || typeof object !== "object") return {};
  const out: Partial<Quotas> = {};
  for (const name of QUOTA_NAMES) {
    const v = (object as Record<string, unknown>)[name];
    if (typeof v === "number" && Number.isInteger(v) && v >= 0) out[name] = v;
  }
  return out;
}

export function deploymentQuotas(setting: string | undefined): Quotas {
  return { ...DEFAULT_QUOTAS, ...parseQuotas(setting) };
}

export async function projectQuotas(db: Db, projectId: string, defaults: Quotas): Promise<Quotas> {
  const row = await db.select({ quotas: projects.quotas }).from(projects).where(eq(projects.id, projectId)).get();
  return { ...defaults, ...parseQuotas(row?.quotas ?? null) };
}

/** The project's live dataset images and their bytes (one aggregate statement). */
async function imageUsage(db: Db, projectId: string): Promise<{ images: number; bytes: number }> {
  const row = await db.select({ images: count(), bytes: sql<number>`coalesce(sum(${datasetImages.bytes}), 0)` }).from(datasetImages)
    .innerJoin(datasets, eq(datasets.id, datasetImages.datasetId))
    .where(and(eq(datasets.projectId, projectId), isNull(datasetImages.removedVersion))).get();
  return { images: row?.images ?? 0, bytes: Number(row?.bytes ?? 0) };
}

/** How much of each quota the project uses now (5 small aggregate statements). */
export async function quotaUsage(db: Db, projectId: string): Promise<Quotas> {
  const [imageRow, datasetRow, backboneRow, queuedRow, runningRow] = await Promise.all([
    imageUsage(db, projectId),
    db.select({ n: count() }).from(datasets).where(eq(datasets.projectId, projectId)).get(),
    db.select({ n: count() }).from(backbones).where(eq(backbones.projectId, projectId)).get(),
    db.select({ n: count() }).from(jobs).where(and(eq(jobs.projectId, projectId), eq(jobs.status, "queued"))).get(),
    db.select({ n: count() }).from(jobs).where(and(eq(jobs.projectId, projectId), eq(jobs.status, "running"))).get(),
  ]);
  return {
    bytes: imageRow.bytes, images: imageRow.images, datasets: datasetRow?.n ?? 0, backbones: backboneRow?.n ?? 0,
    queued_jobs: queuedRow?.n ?? 0, running_jobs: runningRow?.n ?? 0,
  };
}

export function quotaExceeded(quota: QuotaName, limit: number, used: number): ApiError {
  return new ApiError("quota_exceeded", `This project's ${quota.replace("_", " ")} quota is ${limit} and ${used} are in use; delete some or ask the operator to raise it.`, { quota, limit, used });
}

/**
 * Throws 403 quota_exceeded when adding `adding` (e.g. {images: 1, bytes: 2_000_000}) would take the project past a
 * quota. Reads the usage once; a race between two uploads can pass a quota by one request's worth, never more.
 */
export async function enforceQuotas(db: Db, projectId: string, defaults: Quotas, adding: Partial<Quotas>): Promise<void> {
  const [limits, used] = await Promise.all([projectQuotas(db, projectId, defaults), quotaUsage(db, projectId)]);
  for (const [name, amount] of Object.entries(adding) as [QuotaName, number][]) {
    if (used[name] + amount > limits[name]) throw quotaExceeded(name, limits[name], used[name]);
  }
}

/**
 * The images and bytes quotas with what the project uses of them (2 statements): an archive ingest checks each entry
 * against them as it goes, since an archive's upload-time check saw only its compressed size and one image.
 */
export async function imageQuotas(db: Db, projectId: string, defaults: Quotas): Promise<{ limits: Pick<Quotas, "images" | "bytes">; used: { images: number; bytes: number } }> {
  const [limits, used] = await Promise.all([projectQuotas(db, projectId, defaults), imageUsage(db, projectId)]);
  return { limits: { images: limits.images, bytes: limits.bytes }, used };
}

export async function setProjectQuotas(db: Db, projectId: string, quotas: Partial<Quotas>): Promise<boolean> {
  const updated = await db.update(projects).set({ quotas }).where(eq(projects.id, projectId)).returning({ id: projects.id });
  return updated.length > 0;
}

/**
 * The SQL condition under which a queued job's project may start one more job (running_jobs quota), for leaseJob:
 * the project's running jobs against its override or the deployment's default.
 */
export const underRunningQuota = (defaultLimit: number) =>
  sql`(select count(*) from jobs r where r.project_id = ${jobs.projectId} and r.status = 'running') < coalesce((select json_extract(p.quotas, '$.running_jobs') from projects p where p.id = ${jobs.projectId}), ${defaultLimit})`;

/** Fair leasing: the queued job of the project with the fewest running jobs goes first (then creation order). */
export const runningJobsOfProject = sql`(select count(*) from jobs r where r.project_id = ${jobs.projectId} and r.status = 'running')`;
