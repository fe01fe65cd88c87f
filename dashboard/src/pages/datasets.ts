/** Datasets: list and create; one dataset with upload, ingest progress, label chart, thumbnails, rejections, diagnostics. */
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, api, call, listAll, uploadArchive, type UploadProgress } from "../api";
import { Chart, labelBarOptions } from "../charts";
import { formatBytes, labelBars } from "../shaping";
import { ConfirmButton, ErrorNote, Loading, StatusBadge, TableWrap, Thumb, go, html, useLoad, when } from "../ui";

export function DatasetsPage() {
  const list = useLoad(() => listAll((c) => c.datasets.all()), [], { every: 2000, while: (ds: any[]) => ds.some((d) => d.status === "ingesting") });
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  async function create(e: Event) {
    e.preventDefault();
    setError(null);
    try {
      const ds = await call((c) => c.datasets.create({ name }));
      go(`/datasets/${ds.id}`);
    } catch (err) {
      setError(err);
    }
  }
  return html`<section>
    <h1>Datasets</h1>
    <form class="inline-form" onSubmit=${create}>
      <label for="new-dataset">New dataset name</label>
      <input id="new-dataset" name="name" required maxlength="200" value=${name} onInput=${(e: any) => setName(e.target.value)} />
      <button type="submit">Create dataset</button>
    </form>
    <${ErrorNote} error=${error} />
    ${list.loading && !list.data ? html`<${Loading} what="datasets" />` : null}
    <${ErrorNote} error=${list.error} />
    ${list.data && list.data.length === 0 ? html`<p>No datasets yet. Create one, then drop a folder of labelled images on it.</p>` : null}
    ${list.data && list.data.length > 0
      ? html`<${TableWrap} label="Datasets">
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Images</th><th scope="col">Labels</th><th scope="col">Size</th><th scope="col">Created</th></tr></thead>
            <tbody>
              ${list.data.map(
                (d: any) => html`<tr key=${d.id}>
                  <th scope="row"><a href=${`#/datasets/${d.id}`}>${d.name}</a></th>
                  <td><${StatusBadge} status=${d.status} /></td>
                  <td>${d.image_count}</td>
                  <td>${d.labels.length}</td>
                  <td>${formatBytes(d.bytes)}</td>
                  <td>${when(d.created_at)}</td>
                </tr>`,
              )}
            </tbody>
          </table>
        <//>`
      : null}
  </section>`;
}

/** Reads a dropped folder (DataTransfer entries) into [relative path, File] pairs. */
async function filesFromEntries(entries: any[]): Promise<[string, File][]> {
  const out: [string, File][] = [];
  async function walk(entry: any, prefix: string) {
    if (entry.isFile) {
      const file: File = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push([`${prefix}${file.name}`, file]);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch: any[] = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const entry of entries) await walk(entry, "");
  return out;
}

function Uploader({ datasetId, onStarted }: { datasetId: string; onStarted: () => void }) {
  const [progress, setProgress] = useState<{ sent: number; total: number; what: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [over, setOver] = useState(false);
  const busy = progress !== null;
  async function send(input: Blob | { files: [string, File][] }, what: string) {
    setError(null);
    setProgress({ sent: 0, total: 1, what });
    try {
      // Folders are zipped while they upload (stored, not recompressed: images are compressed already).
      await uploadArchive(datasetId, input, (p: UploadProgress) => {
        if (p.phase === "uploading") setProgress({ sent: p.sentBytes, total: p.totalBytes, what });
      });
      onStarted();
    } catch (err) {
      setError(err);
    } finally {
      setProgress(null);
    }
  }
  async function sendFolder(files: [string, File][]) {
    const images = files.filter(([p]) => !p.split("/").some((s) => s.startsWith(".")));
    if (images.length === 0) return setError(new ApiError(0, "empty_folder", "The folder has no files. Pick a folder with one sub-folder per label."));
    await send({ files: images }, `${images.length} files`);
  }
  async function onDrop(e: DragEvent) {
    e.preventDefault();
    setOver(false);
    if (busy || !e.dataTransfer) return;
    const items = [...e.dataTransfer.items];
    const entries = items.map((i) => (i as any).webkitGetAsEntry?.()).filter(Boolean);
    if (entries.length === 1 && entries[0].isFile && /\.zip$/i.test(entries[0].name)) return send(e.dataTransfer.files[0], entries[0].name);
    if (entries.length > 0) return sendFolder(await filesFromEntries(entries));
    const file = e.dataTransfer.files[0];
    if (file) return send(file, file.name);
  }
  return html`<section aria-labelledby="upload-h">
    <h2 id="upload-h">Add images</h2>
    <div class=${`dropzone${over ? " over" : ""}`} onDragOver=${(e: DragEvent) => { e.preventDefault(); setOver(true); }} onDragLeave=${() => setOver(false)} onDrop=${onDrop}>
      <p>Drop a folder (one sub-folder per label, or <code>train/</code> and <code>val/</code> folders) or a zip here, or choose one:</p>
      <div class="pickers">
        <label class="button-like">Choose a zip archive<input class="visually-hidden" type="file" accept=".zip,application/zip" disabled=${busy}
          onChange=${(e: any) => { const f = e.target.files?.[0]; e.target.value = ""; if (f) send(f, f.name); }} /></label>
        <label class="button-like">Choose a folder<input class="visually-hidden" type="file" multiple webkitdirectory=${true} disabled=${busy}
          onChange=${(e: any) => { const fs = [...(e.target.files ?? [])] as File[]; e.target.value = ""; sendFolder(fs.map((f: any) => [f.webkitRelativePath || f.name, f])); }} /></label>
      </div>
    </div>
    ${progress
      ? html`<div class="progress-row">
          <label for="upload-progress">Uploading ${progress.what}</label>
          <progress id="upload-progress" max=${progress.total} value=${progress.sent}></progress>
          <span>${formatBytes(progress.sent)} of ${formatBytes(progress.total)}</span>
        </div>`
      : null}
    <${ErrorNote} error=${error} />
  </section>`;
}

function LabelChart({ labels }: { labels: any[] }) {
  const bars = labelBars(labels);
  const data = useMemo(() => [bars.x, bars.train, bars.val] as any, [JSON.stringify(labels)]);
  return html`<figure class="figure">
    <${Chart} key=${bars.names.join("|")} label=${`Images per label: ${labels.map((l) => `${l.name} ${l.train} train, ${l.val} val`).join("; ")}`} options=${labelBarOptions(bars.names)} data=${data} height=${220} />
    <figcaption><span class="swatch train"></span> train <span class="swatch val"></span> val (images in a val/ folder; without one, a job holds out a fraction)</figcaption>
  </figure>`;
}

/**
 * Deletes an image, or moves it; when another image already has its file name under the target label (common with
 * camera names like IMG_0001.jpg), moves it under a name made unique by the image's hash instead of failing.
 */
async function moveOrDelete(datasetId: string, method: "PATCH" | "DELETE", sha: string, json?: any) {
  const path = `/v1/datasets/${datasetId}/images/${sha}`;
  if (method === "DELETE") return api("DELETE", path);
  try {
    return await api("PATCH", path, { json });
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== "path_taken") throw err;
    const name = String((err.details?.path as string | undefined)?.split("/").pop() ?? "image");
    const dot = name.lastIndexOf(".");
    const filename = dot > 0 ? `${name.slice(0, dot)}-${sha.slice(0, 8)}${name.slice(dot)}` : `${name}-${sha.slice(0, 8)}`;
    return api("PATCH", path, { json: { ...json, filename } });
  }
}

function ImageGrid({ dataset, label, onChanged }: { dataset: any; label: string; onChanged: () => void }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  const page = useLoad(() => api("GET", `/v1/datasets/${dataset.id}/images`, { query: { label, limit: 24, cursor: cursor ?? undefined } }), [dataset.id, label, cursor, dataset.version]);
  const [error, setError] = useState<unknown>(null);
  const others = dataset.labels.map((l: any) => l.name).filter((n: string) => n !== label);
  async function edit(method: "PATCH" | "DELETE", sha: string, json?: unknown) {
    setError(null);
    try {
      await moveOrDelete(dataset.id, method, sha, json);
      onChanged();
    } catch (err) {
      setError(err);
    }
  }
  return html`<section aria-labelledby="grid-h">
    <h3 id="grid-h">Images labelled “${label}”</h3>
    <${ErrorNote} error=${page.error ?? error} />
    ${page.loading && !page.data ? html`<${Loading} what="images" />` : null}
    <ul class="grid">
      ${(page.data?.images ?? []).map(
        (img: any) => html`<li key=${img.sha256} class="tile">
          <${Thumb} datasetId=${dataset.id} sha256=${img.sha256} alt=${img.path} />
          <span class="tile-name" title=${img.path}>${img.path.split("/").pop()}</span>
          <span class="muted small">${img.split} · ${img.width}×${img.height}</span>
          ${others.length > 0
            ? html`<label class="small">Move to <select onChange=${(e: any) => e.target.value && edit("PATCH", img.sha256, { label: e.target.value })}>
                <option value="">label…</option>
                ${others.map((o: string) => html`<option value=${o}>${o}</option>`)}
              </select></label>`
            : null}
          <button type="button" class="danger small" aria-label=${`Delete ${img.path}`} onClick=${() => edit("DELETE", img.sha256)}>Delete</button>
        </li>`,
      )}
    </ul>
    <nav class="pager" aria-label="Image pages">
      <button type="button" disabled=${cursors.length <= 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous page</button>
      <span>Page ${cursors.length}</span>
      <button type="button" disabled=${!page.data?.next_cursor} onClick=${() => setCursors([...cursors, page.data.next_cursor])}>Next page</button>
    </nav>
  </section>`;
}

function ImgRef({ datasetId, img }: { datasetId: string; img: any }) {
  return html`<span class="imgref"><${Thumb} datasetId=${datasetId} sha256=${img.sha256} alt=${img.path} size=${64} /><span>${img.path} <span class="muted">(${img.split})</span></span></span>`;
}

function Diagnostics({ dataset, onChanged }: { dataset: any; onChanged: () => void }) {
  const report = useLoad(async () => {
    try {
      return await api("GET", `/v1/datasets/${dataset.id}/diagnostics`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
    // Loaded once per dataset, not per version: each fix makes a new version, and the report (of the version it
    // examined) should stay on screen while the user works through it.
  }, [dataset.id]);
  const [error, setError] = useState<unknown>(null);
  const [started, setStarted] = useState<string | null>(null);
  const [done, setDone] = useState<Set<string>>(new Set());
  // A started report appears when its runner job ends: look every 2 s until then.
  useEffect(() => {
    if (!started || report.data) return;
    const timer = setInterval(() => report.reload(), 2000);
    return () => clearInterval(timer);
  }, [started, !!report.data]);
  async function run() {
    setError(null);
    try {
      const res = await api("POST", `/v1/datasets/${dataset.id}/diagnostics`, { json: {} });
      setStarted(res.job_id ?? "started");
    } catch (err) {
      setError(err);
    }
  }
  async function fix(method: "PATCH" | "DELETE", sha: string, json?: unknown) {
    setError(null);
    try {
      await moveOrDelete(dataset.id, method, sha, json);
      setDone(new Set([...done, sha]));
      onChanged();
    } catch (err) {
      setError(err);
    }
  }
  const r = report.data;
  const fixed = (sha: string) => done.has(sha);
  return html`<section aria-labelledby="diag-h">
    <h2 id="diag-h">Diagnostics</h2>
    <${ErrorNote} error=${report.error ?? error} />
    ${!r
      ? html`<p>No diagnostics report for this version yet. It finds near-duplicates (a pair across train and val is a leak), suspected mislabels and outliers from the images' embeddings.</p>
          <button type="button" onClick=${run} disabled=${!dataset.trainable || !!started}>Run diagnostics</button>
          ${started ? html`<p role="status">Diagnostics started${started !== "started" ? html` as <a href=${`#/jobs/${started}`}>${started}</a>` : ""}; the report appears here when it is ready.</p>` : null}`
      : html`<p class="muted" data-testid="diagnostics-report">Report for version ${r.dataset_version}${r.dataset_version !== dataset.version ? ` (the dataset is at version ${dataset.version} now; fixes made since are marked)` : ""}, backbone ${r.backbone}, ${when(r.created_at)}. Each fix makes a new dataset version; models trained before keep theirs.</p>
          <h3>Near duplicates (${r.near_duplicates?.length ?? 0})</h3>
          <ul class="fixes">
            ${(r.near_duplicates ?? []).map(
              (d: any) => html`<li>
                <${ImgRef} datasetId=${dataset.id} img=${d.a} /> <${ImgRef} datasetId=${dataset.id} img=${d.b} />
                <span>similarity ${d.similarity?.toFixed?.(3)}${d.a.split !== d.b.split ? html` <strong>(train/val leak)</strong>` : ""}</span>
                ${fixed(d.b.sha256) ? html`<span role="status">deleted</span>` : html`<button type="button" onClick=${() => fix("DELETE", d.b.sha256)}>Delete ${d.b.path}</button>`}
              </li>`,
            )}
          </ul>
          <h3>Suspected mislabels (${r.suspected_mislabels?.length ?? 0})</h3>
          <ul class="fixes">
            ${(r.suspected_mislabels ?? []).map(
              (m: any) => html`<li>
                <${ImgRef} datasetId=${dataset.id} img=${m} />
                <span>labelled ${m.label}, looks like <strong>${m.suggested_label}</strong> (score ${m.score?.toFixed?.(2)})</span>
                ${fixed(m.sha256)
                  ? html`<span role="status">fixed</span>`
                  : html`<button type="button" onClick=${() => fix("PATCH", m.sha256, { label: m.suggested_label })}>Move to ${m.suggested_label}</button>
                      <button type="button" class="danger" onClick=${() => fix("DELETE", m.sha256)}>Delete</button>`}
              </li>`,
            )}
          </ul>
          <h3>Outliers (${r.outliers?.length ?? 0})</h3>
          <ul class="fixes">
            ${(r.outliers ?? []).map(
              (o: any) => html`<li>
                <${ImgRef} datasetId=${dataset.id} img=${o} /><span>score ${o.score?.toFixed?.(2)}</span>
                ${fixed(o.sha256) ? html`<span role="status">deleted</span>` : html`<button type="button" class="danger" onClick=${() => fix("DELETE", o.sha256)}>Delete</button>`}
              </li>`,
            )}
          </ul>`}
  </section>`;
}

export function DatasetPage({ id }: { id: string }) {
  const ds = useLoad(() => call((c) => c.datasets.get(id)), [id], { every: 1000, while: (d: any) => d.status === "ingesting" });
  const [label, setLabel] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const d = ds.data;
  if (!d) return html`<section><h1>Dataset</h1>${ds.error ? html`<${ErrorNote} error=${ds.error} />` : html`<${Loading} what="the dataset" />`}</section>`;
  const shown = label ?? d.labels[0]?.name ?? null;
  const duplicates = d.rejected.filter((r: any) => r.code === "duplicate_image");
  const rejected = d.rejected.filter((r: any) => r.code !== "duplicate_image");
  return html`<section>
    <h1>Dataset “${d.name}”</h1>
    <p class="summary">
      <${StatusBadge} status=${d.status} /> version ${d.version} · <span data-testid="image-count">${d.image_count}</span> images · ${d.labels.length} labels · ${formatBytes(d.bytes)}
    </p>
    ${d.status === "ingesting"
      ? html`<div class="progress-row"><label for="ingest-progress">Ingesting the archive</label>
          <progress id="ingest-progress" max=${Math.max(1, d.ingest.total)} value=${d.ingest.done}></progress>
          <span>${d.ingest.done} of ${d.ingest.total || "?"} files</span></div>`
      : null}
    ${d.ingest?.error ? html`<p class="error" role="alert">The last ingest failed: ${d.ingest.error}</p>` : null}
    ${d.trainable
      ? html`<p><a class="button-like primary" href=${`#/train?dataset=${d.id}`}>Train a model on this dataset</a></p>`
      : d.not_trainable_reason ? html`<p class="note">Not trainable yet: ${d.not_trainable_reason}</p>` : null}
    <${Uploader} datasetId=${d.id} onStarted=${ds.reload} />
    ${d.labels.length > 0
      ? html`<section aria-labelledby="labels-h">
          <h2 id="labels-h">Labels</h2>
          <${LabelChart} labels=${d.labels} />
          <${TableWrap} label="Images per label">
            <table>
              <thead><tr><th scope="col">Label</th><th scope="col">Images</th><th scope="col">Train</th><th scope="col">Val</th><th scope="col"><span class="visually-hidden">Show</span></th></tr></thead>
              <tbody>
                ${d.labels.map(
                  (l: any) => html`<tr key=${l.name}>
                    <th scope="row">${l.name}</th><td>${l.count}</td><td>${l.train}</td><td>${l.val}</td>
                    <td><button type="button" aria-pressed=${shown === l.name} onClick=${() => setLabel(l.name)}>Show images<span class="visually-hidden"> of ${l.name}</span></button></td>
                  </tr>`,
                )}
              </tbody>
            </table>
          <//>
          ${shown ? html`<${ImageGrid} key=${shown} dataset=${d} label=${shown} onChanged=${ds.reload} />` : null}
        </section>`
      : null}
    <section aria-labelledby="rejected-h">
      <h2 id="rejected-h">Rejected files (${d.rejected_count - duplicates.length})</h2>
      ${rejected.length === 0
        ? html`<p class="muted">None.</p>`
        : html`<${TableWrap} label="Rejected files"><table>
            <thead><tr><th scope="col">File</th><th scope="col">Reason</th></tr></thead>
            <tbody>${rejected.map((r: any) => html`<tr><td>${r.path}</td><td><code>${r.code}</code> ${r.message}</td></tr>`)}</tbody>
          </table><//>`}
    </section>
    <section aria-labelledby="dup-h">
      <h2 id="dup-h">Exact duplicates (${duplicates.length})</h2>
      ${duplicates.length === 0
        ? html`<p class="muted">None: every image is stored once.</p>`
        : html`<ul>${duplicates.map((r: any) => html`<li>${r.path}: ${r.message}</li>`)}</ul>`}
    </section>
    <${Diagnostics} dataset=${d} onChanged=${ds.reload} />
    <section aria-labelledby="danger-h">
      <h2 id="danger-h">Delete</h2>
      <${ErrorNote} error=${error} />
      <${ConfirmButton} label="Delete this dataset" confirmLabel="Yes, delete it and its images" onConfirm=${async () => {
        try {
          await call((c) => c.datasets.delete(d.id));
          go("/datasets");
        } catch (err) {
          setError(err);
        }
      }} />
    </section>
  </section>`;
}
