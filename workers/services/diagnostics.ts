/**
 * Dataset diagnostics reports: computed by a runner (a job of kind "diagnostics"), stored in R2 per dataset version,
 * read back by GET /v1/datasets/:id/diagnostics. One object per version, so a report always describes the images it
 * names; a new version (upload, PATCH, DELETE) has none until diagnostics run again.
 */
export const diagnosticsKey = (projectId: string, datasetId: string, version: number) => `projects/${projectId}/datasets/${datasetId}/diagnostics/v${version}.json`;

/** A report is a few hundred KB at most (its lists are capped on the runner); refuse anything far larger. */
export const MAX_DIAGNOSTICS_BYTES = 8 * 1024 * 1024;

export async function putDiagnostics(bucket: R2Bucket, projectId: string, datasetId: string, version: number, report: unknown): Promise<void> {
  await bucket.put(diagnosticsKey(projectId, datasetId, version), JSON.stringify(report), { httpMetadata: { contentType: "application/json" } });
}

/** The stored report of that version, or null. */
export async function getDiagnostics(bucket: R2Bucket, projectId: string, datasetId: string, version: number): Promise<unknown | null> {
  const object = await bucket.get(diagnosticsKey(projectId, datasetId, version));
  return object ? object.json() : null;
}
