/** Try it: an image (picked, dropped or from the webcam) through the public predict route; top-k bars and latency. */
import { useEffect, useRef, useState } from "preact/hooks";
import { call, listAll } from "../api";
import { percent } from "../shaping";
import { ErrorNote, Loading, html, useLoad } from "../ui";

/**
 * A JPEG copy of `blob` with at most `maxPixels` pixels, drawn by the browser (EXIF orientation applied, transparency
 * on white): the edge refuses photos over its limit (422 `too_many_pixels`, 2 MP by default) that a phone takes.
 */
async function shrinkToFit(blob: Blob, maxPixels: number): Promise<{ blob: Blob; from: string; to: string }> {
  const bitmap = await createImageBitmap(blob);
  const scale = Math.sqrt(maxPixels / (bitmap.width * bitmap.height));
  const width = Math.max(1, Math.floor(bitmap.width * scale));
  const height = Math.max(1, Math.floor(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d")!;
  context.fillStyle = "#fff";
  context.fillRect(0, 0, width, height);
  context.imageSmoothingQuality = "high";
  context.drawImage(bitmap, 0, 0, width, height);
  const from = `${bitmap.width}x${bitmap.height}`;
  bitmap.close();
  const copy = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.95));
  if (!copy) throw new Error("This browser could not make a smaller copy of the image. Downscale it and try again.");
  return { blob: copy, from, to: `${width}x${height}` };
}

export function TryPage({ modelId }: { modelId: string | null }) {
  const targets = useLoad(async () => {
    const [models, aliases] = await Promise.all([listAll((c) => c.models.all(), 200), listAll((c) => c.aliases.all(), 200)]);
    return { models, aliases };
  }, []);
  const [target, setTarget] = useState<string>(modelId ? `model:${modelId}` : "");
  const [preview, setPreview] = useState<string | null>(null);
  const [result, setResult] = useState<{ predictions: { label: string; probability: number }[]; wallMs: number; timings: Record<string, number>; modelId: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [shrunk, setShrunk] = useState<string | null>(null);
  const [over, setOver] = useState(false);
  const [camera, setCamera] = useState<MediaStream | null>(null);
  const video = useRef<HTMLVideoElement>(null);
  const d = targets.data;
  const chosen = target || (d?.aliases[0] ? `alias:${d.aliases[0].name}` : d?.models[0] ? `model:${d.models[0].id}` : "");
  useEffect(() => {
    if (video.current && camera) video.current.srcObject = camera;
    return () => undefined;
  }, [camera]);
  useEffect(() => () => camera?.getTracks().forEach((t) => t.stop()), [camera]);

  async function predict(blob: Blob) {
    if (!chosen) return;
    setError(null);
    setBusy(true);
    if (preview) URL.revokeObjectURL(preview);
    setPreview(URL.createObjectURL(blob));
    const [kind, name] = chosen.split(/:(.*)/s);
    const send = (body: Blob) => call((c) => (kind === "alias" ? c.aliases.predict(name, body, { topK: 5 }) : c.models.predict(name, body, { topK: 5 })));
    setShrunk(null);
    const started = performance.now();
    try {
      const res = await send(blob).catch(async (err: { code?: string; details?: { max_pixels?: unknown } }) => {
        const limit = err?.code === "too_many_pixels" ? Number(err.details?.max_pixels) : NaN;
        if (!(limit > 0)) throw err;
        // What the browser cannot shrink (a decompression bomb's header, a damaged file) keeps the edge's answer.
        const copy = await shrinkToFit(blob, limit).catch(() => {
          throw err;
        });
        setShrunk(`The photo (${copy.from}) is over the edge's limit of ${limit.toLocaleString("en")} pixels: predicted from a ${copy.to} copy.`);
        return send(copy.blob);
      });
      setResult({ predictions: res.predictions[0] ?? [], wallMs: performance.now() - started, timings: res.timings_ms ?? {}, modelId: res.model_id });
    } catch (err) {
      setResult(null);
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  async function startCamera() {
    setError(null);
    try {
      setCamera(await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false }));
    } catch (err) {
      setError(new Error(`The camera is not available: ${(err as Error).message}`));
    }
  }
  function capture() {
    const v = video.current;
    if (!v || !v.videoWidth) return;
    const canvas = document.createElement("canvas");
    canvas.width = v.videoWidth;
    canvas.height = v.videoHeight;
    canvas.getContext("2d")!.drawImage(v, 0, 0);
    canvas.toBlob((b) => b && predict(b), "image/jpeg", 0.92);
  }
  if (!d) return html`<section><h1>Try a model</h1>${targets.error ? html`<${ErrorNote} error=${targets.error} />` : html`<${Loading} what="models" />`}</section>`;
  const cameraPossible = typeof navigator !== "undefined" && !!navigator.mediaDevices?.getUserMedia && window.isSecureContext;
  return html`<section>
    <h1>Try a model</h1>
    ${d.models.length === 0 ? html`<p>No models yet. <a href="#/train">Train one</a> first.</p>` : null}
    <div class="field">
      <label for="try-target">Model or alias</label>
      <select id="try-target" value=${chosen} onChange=${(e: any) => setTarget(e.target.value)}>
        ${d.aliases.length > 0 ? html`<optgroup label="Aliases">${d.aliases.map((a: any) => html`<option value=${`alias:${a.name}`}>${a.name} → ${a.model_id}</option>`)}</optgroup>` : null}
        <optgroup label="Models">${d.models.map((m: any) => html`<option value=${`model:${m.id}`}>${m.id} (${percent(m.metrics?.accuracy)})</option>`)}</optgroup>
      </select>
    </div>
    <div class=${`dropzone${over ? " over" : ""}`} onDragOver=${(e: DragEvent) => { e.preventDefault(); setOver(true); }} onDragLeave=${() => setOver(false)}
      onDrop=${(e: DragEvent) => { e.preventDefault(); setOver(false); const f = e.dataTransfer?.files[0]; if (f) predict(f); }}>
      <p>Drop a JPEG or PNG here, or:</p>
      <div class="pickers">
        <label class="button-like">Choose an image<input class="visually-hidden" type="file" accept="image/jpeg,image/png" disabled=${busy || !chosen}
          onChange=${(e: any) => { const f = e.target.files?.[0]; e.target.value = ""; if (f) predict(f); }} /></label>
        ${cameraPossible
          ? camera
            ? html`<button type="button" onClick=${capture}>Take a picture</button><button type="button" onClick=${() => setCamera(null)}>Stop the camera</button>`
            : html`<button type="button" onClick=${startCamera}>Use the camera</button>`
          : null}
      </div>
      ${camera ? html`<video class="camera" ref=${video} autoplay playsinline muted aria-label="Camera preview"></video>` : null}
    </div>
    ${busy ? html`<p role="status">Predicting…</p>` : null}
    <${ErrorNote} error=${error} />
    ${result
      ? html`<section class="result" aria-labelledby="result-h" aria-live="polite">
          <h2 id="result-h">Prediction</h2>
          <div class="result-body">
            ${preview ? html`<img class="preview" src=${preview} alt="The image you sent" />` : null}
            <div>
              <ol class="bars" data-testid="predictions">
                ${result.predictions.map(
                  (p) => html`<li>
                    <span class="bar-label">${p.label}</span>
                    <span class="bar-track" aria-hidden="true"><span class="bar-fill" style=${{ width: `${Math.max(0.5, p.probability * 100)}%` }}></span></span>
                    <span class="bar-value">${percent(p.probability)}</span>
                  </li>`,
                )}
              </ol>
              ${shrunk ? html`<p class="muted" data-testid="shrunk">${shrunk}</p>` : null}
              <p class="muted">Round trip ${result.wallMs.toFixed(0)} ms${Object.keys(result.timings).length > 0 ? ` · server: ${Object.entries(result.timings).map(([k, v]) => `${k.replace(/_/g, " ")} ${Number(v).toFixed(1)} ms`).join(", ")}` : ""} · model ${result.modelId}</p>
            </div>
          </div>
        </section>`
      : null}
  </section>`;
}
