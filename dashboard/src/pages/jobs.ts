/** Train (start a job) and Job (live progress and curves over Server-Sent Events, cancel, the error in words). */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { call, followEvents, listAll, paginate } from "../api";
import { Chart, curveOptions } from "../charts";
import { curvesFromEpochs, describeProgress, percent, rate, type EpochMetrics } from "../shaping";
import { ConfirmButton, ErrorNote, Loading, StatusBadge, TableWrap, go, html, useLoad, when } from "../ui";

/** Heads a job may ask for, each explained in one line. `""` leaves the choice to the platform's default. */
const HEADS: { value: string; title: string; explain: string; spec?: unknown }[] = [
  { value: "", title: "Default (recommended)", explain: "The platform's default head for this version: the safe choice when unsure." },
  { value: "auto", title: "Auto", explain: "Compares candidate heads by cross-validation on the training images and keeps the best (slower).", spec: { type: "auto" } },
  { value: "linear", title: "Linear", explain: "One layer from the backbone's features to your labels: fast, hard to overfit, good with few images.", spec: { type: "linear" } },
  { value: "mlp", title: "Small network (MLP)", explain: "A hidden layer of 256 units: can learn more from large datasets, can overfit small ones.", spec: { type: "mlp", hidden: [256] } },
];

export function TrainPage({ datasetId }: { datasetId: string | null }) {
  const data = useLoad(async () => {
    const [datasets, backbones] = await Promise.all([listAll((c) => c.datasets.all()), listAll((c) => paginate("backbones", (params) => c.backbones.list(params)))]);
    return { datasets, backbones };
  }, []);
  const [form, setForm] = useState<{ dataset: string; backbone: string; head: string; epochs: string }>({ dataset: datasetId ?? "", backbone: "", head: "", epochs: "" });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const d = data.data;
  const trainable = (d?.datasets ?? []).filter((x: any) => x.trainable);
  const dataset = form.dataset || trainable[0]?.id || "";
  const backbone = form.backbone;
  async function start(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const head = HEADS.find((x) => x.value === form.head)?.spec;
      const body: any = { dataset_id: dataset };
      if (backbone) body.backbone = backbone;
      if (head) body.head = head;
      if (form.epochs) body.hyperparameters = { epochs: Number(form.epochs) };
      const job = await call((c) => c.jobs.create(body));
      go(`/jobs/${job.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  if (!d) return html`<section><h1>Train a model</h1>${data.error ? html`<${ErrorNote} error=${data.error} />` : html`<${Loading} what="datasets and backbones" />`}</section>`;
  const chosenBackbone = d.backbones.find((b: any) => b.id === backbone);
  return html`<section>
    <h1>Train a model</h1>
    <p>The backbone stays frozen; a new head learns your labels from its features. Training runs on a runner; you can watch it live.</p>
    ${trainable.length === 0 ? html`<p class="note">No dataset is trainable yet: each needs at least 2 labels with 5 images. <a href="#/datasets">Add images</a>.</p>` : null}
    <form class="stack" onSubmit=${start}>
      <div class="field">
        <label for="train-dataset">Dataset</label>
        <select id="train-dataset" value=${dataset} onChange=${(e: any) => setForm({ ...form, dataset: e.target.value })}>
          ${trainable.map((x: any) => html`<option value=${x.id}>${x.name} (${x.image_count} images, ${x.labels.length} labels)</option>`)}
        </select>
        <p class="hint">Only datasets ready to train are listed. The job trains on this exact version, even if you edit the dataset later.</p>
      </div>
      <div class="field">
        <label for="train-backbone">Backbone</label>
        <select id="train-backbone" value=${backbone} onChange=${(e: any) => setForm({ ...form, backbone: e.target.value })}>
          <option value="">Default (recommended)</option>
          ${d.backbones.map((b: any) => html`<option value=${b.id}>${b.name}${b.builtin ? " (builtin)" : ""}</option>`)}
        </select>
        <p class="hint">${chosenBackbone ? chosenBackbone.description ?? `Your backbone: ${chosenBackbone.spec?.input_size?.join("×")} input, features from ${chosenBackbone.spec?.feature_layer}.` : "The platform's default pretrained network: its features suit most photos. The head learns from them."}</p>
      </div>
      <fieldset class="field">
        <legend>Head</legend>
        ${HEADS.map(
          (x) => html`<div class="radio">
            <input type="radio" id=${`head-${x.value || "default"}`} name="head" value=${x.value} checked=${form.head === x.value} onChange=${() => setForm({ ...form, head: x.value })} />
            <label for=${`head-${x.value || "default"}`}><strong>${x.title}</strong> — ${x.explain}</label>
          </div>`,
        )}
      </fieldset>
      <div class="field">
        <label for="train-epochs">Epochs (optional)</label>
        <input id="train-epochs" type="number" min="1" max="1000" inputmode="numeric" placeholder="default 100, stops early" value=${form.epochs} onInput=${(e: any) => setForm({ ...form, epochs: e.target.value })} />
        <p class="hint">Passes over the training images; training stops early when validation loss stops improving.</p>
      </div>
      <${ErrorNote} error=${error} />
      <button type="submit" class="primary" disabled=${busy || !dataset}>Start training</button>
    </form>
  </section>`;
}

export function JobsPage() {
  const list = useLoad(() => listAll((c) => c.jobs.all(), 100), [], { every: 3000, while: (jobs: any[]) => jobs.some((j) => j.status === "queued" || j.status === "running") });
  return html`<section>
    <h1>Jobs</h1>
    <p><a class="button-like primary" href="#/train">Train a model</a></p>
    <${ErrorNote} error=${list.error} />
    ${!list.data ? html`<${Loading} what="jobs" />` : list.data.length === 0 ? html`<p>No jobs yet.</p>` : html`<${TableWrap} label="Jobs"><table>
      <thead><tr><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Progress</th><th scope="col">Dataset</th><th scope="col">Created</th></tr></thead>
      <tbody>${list.data.map((j: any) => html`<tr key=${j.id}>
        <th scope="row"><a href=${`#/jobs/${j.id}`}>${j.id}</a></th><td><${StatusBadge} status=${j.status} /></td><td>${describeProgress(j.progress)}</td>
        <td><a href=${`#/datasets/${j.dataset_id}`}>${j.dataset_id}</a> v${j.dataset_version}</td><td>${when(j.created_at)}</td></tr>`)}</tbody>
    </table><//>`}
  </section>`;
}

/** What a failed job's error means, in words, with what to do. */
export function explainError(error: string | null | undefined): string {
  if (!error) return "The job failed without a message.";
  if (/lease|heartbeat/i.test(error)) return `The runner stopped reporting and the job ran out of attempts (${error}). Check that a runner is running, then train again.`;
  if (/cancel/i.test(error)) return "The job was canceled.";
  if (/memory|oom/i.test(error)) return `The runner ran out of memory (${error}). Try a smaller batch size or backbone.`;
  return error;
}

export function JobPage({ id }: { id: string }) {
  const [job, setJob] = useState<any>(null);
  const [epochs, setEpochs] = useState<Partial<EpochMetrics>[]>([]);
  const [speed, setSpeed] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const lastProgress = useRef<{ phase: string | null; done: number; at: number } | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    let live = true;
    (async () => {
      try {
        const first: any = await call((c) => c.jobs.get(id));
        if (!live) return;
        setJob(first);
        setEpochs(first.metrics?.epochs ?? []);
        await followEvents(
          id,
          (event) => {
            const data: any = event.data;
            if (event.type === "metrics") setEpochs((es) => [...es, data]);
            else if (event.type === "progress") {
              const sample = { phase: data.phase ?? null, done: data.done ?? 0, at: Date.now() };
              const r = rate(lastProgress.current, sample);
              if (r !== null) setSpeed(r);
              else if (lastProgress.current?.phase !== sample.phase) setSpeed(null);
              lastProgress.current = sample;
              setJob((j: any) => (j ? { ...j, progress: { phase: data.phase ?? null, done: data.done ?? 0, total: data.total ?? 0 } } : j));
            } else if (event.type === "status") setJob((j: any) => (j ? { ...j, status: data.status ?? j.status, error: data.error ?? j.error, model_id: data.model_id ?? j.model_id } : j));
            else if (event.type === "end" && data) {
              setJob(data);
              if (data.metrics?.epochs?.length) setEpochs(data.metrics.epochs);
            }
          },
          controller.signal,
        );
      } catch (err) {
        if (live) setError(err);
      }
    })();
    return () => {
      live = false;
      controller.abort();
    };
  }, [id]);
  const curves = useMemo(() => curvesFromEpochs(epochs), [epochs]);
  const lossData = useMemo(() => [curves.epoch, curves.trainLoss, curves.valLoss] as any, [curves]);
  const accData = useMemo(() => [curves.epoch, curves.trainAccuracy, curves.valAccuracy] as any, [curves]);
  if (!job) return html`<section><h1>Job</h1>${error ? html`<${ErrorNote} error=${error} />` : html`<${Loading} what="the job" />`}</section>`;
  const active = job.status === "queued" || job.status === "running";
  const p = job.progress;
  const last = curves.epoch.length > 0 ? curves.epoch.length - 1 : -1;
  return html`<section>
    <h1>Job ${job.id}</h1>
    <p class="summary"><${StatusBadge} status=${job.status} /> on <a href=${`#/datasets/${job.dataset_id}`}>dataset ${job.dataset_id}</a> version ${job.dataset_version} · backbone ${job.backbone} · attempt ${job.attempt}</p>
    <div class="progress-row" aria-live="polite">
      <label for="job-progress">${describeProgress(p)}${speed !== null && p?.phase ? ` · ${speed.toFixed(1)} ${/epoch|train/i.test(p.phase) ? "epochs" : "images"}/s` : ""}</label>
      <progress id="job-progress" max=${Math.max(1, p?.total ?? 1)} value=${active ? p?.done ?? 0 : Math.max(1, p?.total ?? 1)}></progress>
    </div>
    ${active ? html`<${ConfirmButton} label="Cancel job" confirmLabel="Yes, cancel the job" onConfirm=${async () => {
      try {
        setJob(await call((c) => c.jobs.cancel(job.id)));
      } catch (err) {
        setError(err);
      }
    }} />` : null}
    ${job.status === "failed" ? html`<div class="error" role="alert"><h2>Why it failed</h2><p>${explainError(job.error)}</p></div>` : null}
    ${job.status === "succeeded" && job.model_id ? html`<p><a class="button-like primary" href=${`#/models/${job.model_id}`}>Open the model</a> <a class="button-like" href=${`#/try?model=${job.model_id}`}>Try it</a></p>` : null}
    <${ErrorNote} error=${error} />
    <h2>Training curves</h2>
    <p class="muted" data-testid="epoch-count">${curves.epoch.length} epochs${last >= 0 ? ` · last: train accuracy ${percent(curves.trainAccuracy[last])}, validation accuracy ${percent(curves.valAccuracy[last])}` : active ? " yet: curves appear while the head trains" : ""}</p>
    <div class="charts">
      <figure class="figure"><figcaption>Loss (<span class="swatch train"></span> train, <span class="swatch val dashed"></span> validation)</figcaption>
        <${Chart} label="Loss per epoch, train and validation" options=${curveOptions("loss", false)} data=${lossData} /></figure>
      <figure class="figure"><figcaption>Accuracy (<span class="swatch train"></span> train, <span class="swatch val dashed"></span> validation)</figcaption>
        <${Chart} label="Accuracy per epoch, train and validation" options=${curveOptions("accuracy", true)} data=${accData} /></figure>
    </div>
    ${job.skipped?.length ? html`<h2>Skipped images (${job.skipped.length})</h2><ul>${job.skipped.map((s: any) => html`<li>${s.path}: ${s.message}</li>`)}</ul>` : null}
    <p class="muted">Created ${when(job.created_at)} · started ${when(job.started_at)} · finished ${when(job.finished_at)}</p>
  </section>`;
}
