/** Aliases (switch, roll back), API keys (create once-shown secrets, revoke), backbones (list, import). */
import { useState } from "preact/hooks";
import { ApiError, api, call, listAll, paginate } from "../api";
import { formatBytes } from "../shaping";
import { ConfirmButton, ErrorNote, Loading, TableWrap, html, useLoad, when } from "../ui";

export function AliasesPage() {
  const data = useLoad(async () => {
    const [aliases, models] = await Promise.all([listAll((c) => c.aliases.all(), 200), listAll((c) => c.models.all(), 200)]);
    const detailed = await Promise.all(aliases.map((a: any) => call((c) => c.aliases.get(a.name))));
    return { aliases: detailed, models };
  }, []);
  const [error, setError] = useState<unknown>(null);
  const [status, setStatus] = useState<string | null>(null);
  async function point(name: string, modelId: string, done = `${name} now serves ${modelId}.`) {
    setError(null);
    try {
      await call((c) => c.aliases.set(name, modelId));
      setStatus(done);
      data.reload();
    } catch (err) {
      setError(err);
    }
  }
  async function rollback(alias: any) {
    setError(null);
    const done = `${alias.name} rolled back to ${alias.previous_model_id}.`;
    try {
      await api("POST", `/v1/aliases/${encodeURIComponent(alias.name)}/rollback`, { json: { if_model_id: alias.model_id } });
      setStatus(done);
      data.reload();
    } catch (err) {
      // A platform without the rollback route: point the alias back at its previous model.
      if (err instanceof ApiError && err.code === "route_not_found" && alias.previous_model_id) return point(alias.name, alias.previous_model_id, done);
      setError(err);
    }
  }
  const d = data.data;
  return html`<section>
    <h1>Aliases</h1>
    <p>An alias is a stable name apps predict with (<code>POST /v1/aliases/NAME/predict</code>); switching it is atomic. Point a new alias at a model from the model's page.</p>
    ${status ? html`<p role="status">${status}</p>` : null}
    <${ErrorNote} error=${data.error ?? error} />
    ${!d ? html`<${Loading} what="aliases" />` : d.aliases.length === 0 ? html`<p>No aliases yet.</p>` : d.aliases.map(
      (a: any) => html`<article class="card" key=${a.name} aria-labelledby=${`alias-${a.name}`}>
        <h2 id=${`alias-${a.name}`}><code>${a.name}</code> → <a href=${`#/models/${a.model_id}`}>${a.model_id}</a></h2>
        <p class="muted">Switched ${when(a.updated_at)}</p>
        <div class="inline-form">
          <label for=${`switch-${a.name}`}>Switch to</label>
          <select id=${`switch-${a.name}`} onChange=${(e: any) => e.target.value && point(a.name, e.target.value)}>
            <option value="">a model…</option>
            ${d.models.filter((m: any) => m.id !== a.model_id).map((m: any) => html`<option value=${m.id}>${m.id} (${m.metrics?.accuracy !== undefined ? `${(m.metrics.accuracy * 100).toFixed(1)}%` : "?"})</option>`)}
          </select>
          ${a.previous_model_id ? html`<button type="button" onClick=${() => rollback(a)}>Roll back to ${a.previous_model_id}</button>` : null}
        </div>
        ${a.history?.length
          ? html`<details><summary>History (${a.history.length})</summary><ol class="history">
              ${a.history.map((h: any) => html`<li>${when(h.switched_at)}: ${h.previous_model_id ?? "(new)"} → ${h.model_id}
                ${h.model_id !== a.model_id ? html` <button type="button" class="small" onClick=${() => point(a.name, h.model_id)}>Switch back to ${h.model_id}</button>` : null}</li>`)}
            </ol></details>`
          : null}
      </article>`,
    )}
  </section>`;
}

export function KeysPage() {
  const keys = useLoad(() => listAll((c) => c.keys.all(), 500), []);
  const [name, setName] = useState("");
  const [created, setCreated] = useState<{ name: string; secret: string } | null>(null);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState<unknown>(null);
  async function create(e: Event) {
    e.preventDefault();
    setError(null);
    setCopied(false);
    try {
      const key = await call((c) => c.keys.create({ name: name || "key" }));
      setCreated({ name: key.name, secret: key.secret });
      setName("");
      keys.reload();
    } catch (err) {
      setError(err);
    }
  }
  async function copy() {
    try {
      await navigator.clipboard.writeText(created!.secret);
      setCopied(true);
    } catch {
      setError(new Error("The browser refused the clipboard; select the key and copy it by hand."));
    }
  }
  return html`<section>
    <h1>API keys</h1>
    <form class="inline-form" onSubmit=${create}>
      <label for="key-name">New key name</label>
      <input id="key-name" maxlength="200" placeholder="e.g. mobile app" value=${name} onInput=${(e: any) => setName(e.target.value)} />
      <button type="submit">Create key</button>
    </form>
    ${created
      ? html`<div class="secret" role="status">
          <p><strong>Key “${created.name}” created.</strong> Copy it now: it is shown only once.</p>
          <p><label for="new-secret">Secret</label> <input id="new-secret" readonly value=${created.secret} size="48" onFocus=${(e: any) => e.target.select()} />
          <button type="button" onClick=${copy}>${copied ? "Copied" : "Copy"}</button></p>
        </div>`
      : null}
    <${ErrorNote} error=${keys.error ?? error} />
    ${!keys.data ? html`<${Loading} what="keys" />` : html`<${TableWrap} label="API keys"><table>
      <thead><tr><th scope="col">Name</th><th scope="col">Starts with</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col"><span class="visually-hidden">Revoke</span></th></tr></thead>
      <tbody>${keys.data.map((k: any) => html`<tr key=${k.id}>
        <th scope="row">${k.name}</th><td><code>${k.prefix}…</code></td><td>${when(k.created_at)}</td><td>${when(k.last_used_at)}</td>
        <td><${ConfirmButton} label=${`Revoke`} confirmLabel=${`Yes, revoke ${k.name}`} onConfirm=${async () => {
          try {
            await call((c) => c.keys.revoke(k.id));
            keys.reload();
          } catch (err) {
            setError(err);
          }
        }} /></td></tr>`)}</tbody>
    </table><//>`}
  </section>`;
}

export function BackbonesPage() {
  const list = useLoad(() => listAll((c) => paginate("backbones", (params) => c.backbones.list(params))), []);
  const [source, setSource] = useState<"zip" | "url">("zip");
  const [spec, setSpec] = useState({ name: "", feature_layer: "", height: "224", width: "224", mean: "0.5", std: "0.5", url: "" });
  const [file, setFile] = useState<File | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const set = (k: keyof typeof spec) => (e: any) => setSpec({ ...spec, [k]: e.target.value });
  async function submit(e: Event) {
    e.preventDefault();
    setError(null);
    setDone(null);
    setBusy(true);
    const triple = (v: string) => {
      const parts = v.split(/[\s,]+/).filter(Boolean).map(Number);
      return parts.length === 1 ? [parts[0], parts[0], parts[0]] : parts;
    };
    const body = {
      name: spec.name,
      feature_layer: spec.feature_layer,
      input_size: [Number(spec.height), Number(spec.width)],
      normalization: { mean: triple(spec.mean), std: triple(spec.std) },
    };
    try {
      let created: any;
      if (source === "url") created = await api("POST", "/v1/backbones", { json: { ...body, url: spec.url } });
      else {
        if (!file) throw new Error("Choose the model's zip (model.json and its weight files).");
        const form = new FormData();
        form.set("spec", JSON.stringify(body));
        form.set("model", file, file.name);
        created = await api("POST", "/v1/backbones", { body: form });
      }
      setDone(`${created.name} imported as ${created.id}.`);
      list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return html`<section>
    <h1>Backbones</h1>
    <${ErrorNote} error=${list.error} />
    ${!list.data ? html`<${Loading} what="backbones" />` : html`<${TableWrap} label="Backbones"><table>
      <thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Input</th><th scope="col">Feature layer</th><th scope="col">Weights</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>${list.data.map((b: any) => html`<tr key=${b.id}>
        <th scope="row">${b.name}${b.builtin ? html` <span class="badge">builtin</span>` : null}</th><td><code>${b.id}</code></td>
        <td>${b.spec?.input_size?.join("×")}</td><td><code>${b.spec?.feature_layer}</code></td><td>${b.weight_bytes ? formatBytes(b.weight_bytes) : "–"}</td>
        <td>${b.builtin ? null : html`<${ConfirmButton} label="Delete" confirmLabel=${`Yes, delete ${b.name}`} onConfirm=${async () => {
          try {
            await api("DELETE", `/v1/backbones/${b.id}`);
            list.reload();
          } catch (err) {
            setError(err);
          }
        }} />`}</td></tr>`)}</tbody>
    </table><//>`}
    <h2>Import a backbone</h2>
    <p>A TensorFlow.js model (<code>model.json</code> and its weight files): as a zip, or from a URL whose weight files sit beside it.</p>
    <form class="stack" onSubmit=${submit}>
      <fieldset class="field"><legend>Source</legend>
        <div class="radio"><input type="radio" id="src-zip" name="source" checked=${source === "zip"} onChange=${() => setSource("zip")} /><label for="src-zip">Zip file</label></div>
        <div class="radio"><input type="radio" id="src-url" name="source" checked=${source === "url"} onChange=${() => setSource("url")} /><label for="src-url">URL of model.json</label></div>
      </fieldset>
      ${source === "zip"
        ? html`<div class="field"><label for="bb-zip">Model zip</label><input id="bb-zip" type="file" accept=".zip,application/zip" onChange=${(e: any) => setFile(e.target.files?.[0] ?? null)} /></div>`
        : html`<div class="field"><label for="bb-url">model.json URL</label><input id="bb-url" type="url" required placeholder="https://…/model.json" value=${spec.url} onInput=${set("url")} /></div>`}
      <div class="field"><label for="bb-name">Name</label><input id="bb-name" required value=${spec.name} onInput=${set("name")} /></div>
      <div class="field"><label for="bb-layer">Feature layer</label><input id="bb-layer" required value=${spec.feature_layer} onInput=${set("feature_layer")} />
        <p class="hint">The layer whose output (globally pooled) is the embedding, e.g. <code>conv_pw_13_relu</code>.</p></div>
      <div class="row">
        <div class="field"><label for="bb-h">Input height</label><input id="bb-h" type="number" min="16" max="1024" required value=${spec.height} onInput=${set("height")} /></div>
        <div class="field"><label for="bb-w">Input width</label><input id="bb-w" type="number" min="16" max="1024" required value=${spec.width} onInput=${set("width")} /></div>
      </div>
      <div class="row">
        <div class="field"><label for="bb-mean">Mean (one or r, g, b)</label><input id="bb-mean" required value=${spec.mean} onInput=${set("mean")} /></div>
        <div class="field"><label for="bb-std">Std (one or r, g, b)</label><input id="bb-std" required value=${spec.std} onInput=${set("std")} /></div>
      </div>
      <p class="hint">Pixels are scaled to [0, 1], then (x − mean) / std: mean = std = 0.5 gives [−1, 1].</p>
      <${ErrorNote} error=${error} />
      ${done ? html`<p role="status">${done}</p>` : null}
      <button type="submit" disabled=${busy}>${busy ? "Importing…" : "Import backbone"}</button>
    </form>
  </section>`;
}
