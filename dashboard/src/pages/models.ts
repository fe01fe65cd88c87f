/** Models: list; one model's evaluation (metrics, confusion heat map, reliability, misclassified), bundle, alias. */
import { useMemo, useState } from "preact/hooks";
import { call, downloadBundle, listAll } from "../api";
import { Chart, reliabilityOptions } from "../charts";
import { calibrationError, heatmapFromMatrix, imagesForCell, percent, reliabilityBins, type Misclassified } from "../shaping";
import { ErrorNote, Loading, TableWrap, Thumb, html, useLoad, when } from "../ui";

export function ModelsPage() {
  const list = useLoad(() => listAll((c) => c.models.all(), 200), []);
  return html`<section>
    <h1>Models</h1>
    <${ErrorNote} error=${list.error} />
    ${!list.data ? html`<${Loading} what="models" />` : list.data.length === 0 ? html`<p>No models yet. <a href="#/train">Train one</a>.</p>` : html`<${TableWrap} label="Models"><table>
      <thead><tr><th scope="col">Model</th><th scope="col">Accuracy</th><th scope="col">Labels</th><th scope="col">Dataset</th><th scope="col">Backbone</th><th scope="col">Created</th></tr></thead>
      <tbody>${list.data.map((m: any) => html`<tr key=${m.id}>
        <th scope="row"><a href=${`#/models/${m.id}`}>${m.id}</a></th><td>${percent(m.metrics?.accuracy)}</td><td>${m.labels.length}</td>
        <td><a href=${`#/datasets/${m.dataset_id}`}>${m.dataset_id}</a> v${m.dataset_version}</td><td>${m.backbone}</td><td>${when(m.created_at)}</td></tr>`)}</tbody>
    </table><//>`}
  </section>`;
}

function ConfusionMatrix({ model, onPick, picked }: { model: any; onPick: (row: number, col: number) => void; picked: [number, number] | null }) {
  const heat = useMemo(() => {
    try {
      return heatmapFromMatrix(model.metrics.confusion_matrix, model.labels);
    } catch {
      return null;
    }
  }, [model.id]);
  if (!heat) return html`<p class="muted">This model has no confusion matrix.</p>`;
  return html`<p class="muted" id="heat-help">Rows: true label; columns: predicted label. Colour: share of the row. Select a cell to see those validation images.</p>
  <${TableWrap} label="Confusion matrix">
    <table class="heat" data-testid="confusion-matrix" aria-describedby="heat-help">
      <thead><tr><th scope="col"><span class="visually-hidden">True label</span></th>${heat.labels.map((l) => html`<th scope="col">${l}</th>`)}<th scope="col">Total</th></tr></thead>
      <tbody>
        ${heat.rows.map(
          (row, r) => html`<tr>
            <th scope="row">${heat.labels[r]}</th>
            ${row.map(
              (cell) => html`<td class=${`heat-${cell.level}${cell.darkText ? "" : " light"}${cell.correct ? " diag" : ""}`}>
                <button type="button" aria-pressed=${!!picked && picked[0] === cell.row && picked[1] === cell.col}
                  aria-label=${`${cell.count} ${heat.labels[cell.row]} images predicted as ${heat.labels[cell.col]}`} onClick=${() => onPick(cell.row, cell.col)}>${cell.count}</button>
              </td>`,
            )}
            <td>${heat.rowTotals[r]}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  <//>`;
}

function MisclassifiedGrid({ model, items }: { model: any; items: Misclassified[] }) {
  if (items.length === 0) return html`<p class="muted">None.</p>`;
  return html`<ul class="grid">
    ${items.map(
      (m) => html`<li class="tile" key=${m.sha256}>
        <${Thumb} datasetId=${model.dataset_id} sha256=${m.sha256} alt=${m.path} />
        <span class="tile-name" title=${m.path}>${m.path.split("/").pop()}</span>
        <span class="small">true <strong>${m.label}</strong>, predicted <strong>${m.predicted}</strong> (${percent(m.probability, 0)})</span>
      </li>`,
    )}
  </ul>`;
}

function AliasForm({ model }: { model: any }) {
  const aliases = useLoad(() => listAll((c) => c.aliases.all(), 200), [model.id]);
  const [name, setName] = useState("production");
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  async function point(e: Event) {
    e.preventDefault();
    setError(null);
    setDone(null);
    try {
      await call((c) => c.aliases.set(name, model.id));
      setDone(name);
      aliases.reload();
    } catch (err) {
      setError(err);
    }
  }
  const mine = (aliases.data ?? []).filter((a: any) => a.model_id === model.id);
  return html`<section aria-labelledby="alias-h">
    <h2 id="alias-h">Serve it under an alias</h2>
    <p>Apps call <code>POST /v1/aliases/NAME/predict</code>; pointing the alias here switches them atomically. ${mine.length > 0 ? html`Now serving: ${mine.map((a: any) => html`<code>${a.name}</code> `)}` : "No alias points here yet."}</p>
    <form class="inline-form" onSubmit=${point}>
      <label for="alias-name">Alias name</label>
      <input id="alias-name" required pattern="[a-z0-9][a-z0-9_\\-]{0,62}" value=${name} onInput=${(e: any) => setName(e.target.value)} list="alias-names" />
      <datalist id="alias-names">${(aliases.data ?? []).map((a: any) => html`<option value=${a.name}></option>`)}</datalist>
      <button type="submit">Point alias at this model</button>
    </form>
    ${done ? html`<p role="status">Alias <code>${done}</code> now serves this model.</p>` : null}
    <${ErrorNote} error=${error} />
  </section>`;
}


export function ModelPage({ id }: { id: string }) {
  const model = useLoad(() => call((c) => c.models.get(id)), [id]);
  const [picked, setPicked] = useState<[number, number] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const m: any = model.data;
  if (!m) return html`<section><h1>Model</h1>${model.error ? html`<${ErrorNote} error=${model.error} />` : html`<${Loading} what="the model" />`}</section>`;
  const metrics = m.metrics ?? {};
  const ece = calibrationError(metrics);
  const bins = reliabilityBins(metrics.calibration);
  const misclassified: Misclassified[] | undefined = Array.isArray(metrics.misclassified) ? metrics.misclassified : undefined;
  const reliabilityData = [[0, ...bins.map((b) => b.confidence), 1], [0, ...bins.map((b) => b.confidence), 1], [null, ...bins.map((b) => b.accuracy), null]] as any;
  const valCount = metrics.val_count ?? (Array.isArray(metrics.confusion_matrix) ? metrics.confusion_matrix.flat().reduce((s: number, v: number) => s + v, 0) : null);
  return html`<section>
    <h1>Model ${m.id}</h1>
    <p class="summary">Trained by <a href=${`#/jobs/${m.job_id}`}>${m.job_id}</a> on <a href=${`#/datasets/${m.dataset_id}`}>${m.dataset_id}</a> version ${m.dataset_version} · backbone ${m.backbone} · ${when(m.created_at)}</p>
    <dl class="stats">
      <div><dt>Validation accuracy</dt><dd data-testid="accuracy">${percent(metrics.accuracy)}</dd></div>
      <div><dt>Calibration error (ECE)</dt><dd>${ece === null ? "not measured" : percent(ece)}</dd></div>
      <div><dt>Validation images</dt><dd>${valCount ?? "–"}</dd></div>
      <div><dt>Labels</dt><dd>${m.labels.length}</dd></div>
    </dl>
    <p>
      <a class="button-like primary" href=${`#/try?model=${m.id}`}>Try it</a>
      <button type="button" onClick=${() => downloadBundle(m.id).catch(setError)}>Download bundle (zip: runs with plain tfjs)</button>
    </p>
    <${ErrorNote} error=${error} />
    <h2>Per class</h2>
    <${TableWrap} label="Per-class metrics"><table>
      <thead><tr><th scope="col">Label</th><th scope="col">Precision</th><th scope="col">Recall</th><th scope="col">F1</th><th scope="col">Validation images</th></tr></thead>
      <tbody>${(metrics.per_class ?? []).map((c: any) => html`<tr><th scope="row">${c.label}</th><td>${percent(c.precision)}</td><td>${percent(c.recall)}</td><td>${percent(c.f1)}</td><td>${c.support}</td></tr>`)}</tbody>
    </table><//>
    <h2>Confusion matrix</h2>
    <${ConfusionMatrix} model=${m} picked=${picked} onPick=${(r: number, c: number) => setPicked([r, c])} />
    ${picked
      ? html`<section aria-labelledby="cell-h" aria-live="polite">
          <h3 id="cell-h">True ${m.labels[picked[0]]}, predicted ${m.labels[picked[1]]}</h3>
          ${picked[0] === picked[1]
            ? html`<p class="muted">Correct predictions; only misclassified images are listed on the model card.</p>`
            : misclassified
              ? html`<${MisclassifiedGrid} model=${m} items=${imagesForCell(misclassified, m.labels, picked[0], picked[1])} />`
              : html`<p class="muted">This model's card does not list its misclassified images (trained before they were recorded).</p>`}
        </section>`
      : null}
    <h2>Reliability</h2>
    ${bins.length > 0
      ? html`<figure class="figure"><figcaption>Accuracy against confidence per bin; the dashed line is perfect calibration. Points below it: overconfident.</figcaption>
          <${Chart} label=${`Reliability diagram: ${bins.map((b) => `confidence ${percent(b.confidence, 0)} accuracy ${percent(b.accuracy, 0)} (${b.count})`).join("; ")}`} options=${reliabilityOptions()} data=${reliabilityData} height=${260} /></figure>`
      : html`<p class="muted">This model's card has no calibration bins.</p>`}
    <h2>Misclassified validation images</h2>
    ${misclassified ? html`<${MisclassifiedGrid} model=${m} items=${misclassified} />` : html`<p class="muted">Not recorded for this model.</p>`}
    <${AliasForm} model=${m} />
  </section>`;
}
