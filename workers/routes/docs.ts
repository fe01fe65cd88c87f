/**
 * `GET /docs`: a self-contained page (no CDN, works offline) that renders /openapi.json. Its one script and one style
 * carry a per-request nonce, and the page is served with a Content-Security-Policy that allows nothing else (no other
 * script, no inline handler, no frame, no form, fetches to this origin only): text from the OpenAPI document is
 * escaped before it is inserted, and the policy stops anything that would get through anyway.
 */
export const docsContentSecurityPolicy = (nonce: string) =>
  `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

export const docsHtml = (nonce: string) => DOCS_HTML.replace(/<(script|style)>/g, `<$1 nonce="${nonce}">`);

const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgetune API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:0}.op{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}.get{color:#0a7}.post{color:#06c}.put{color:#a60}.delete{color:#c22}
code,pre{background:#f6f6f6;border-radius:4px}pre{padding:.5rem;overflow:auto;font-size:13px}details summary{cursor:pointer}
</style></head><body>
<h1>edgetune API</h1><p id="info"></p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Authenticate with <code>Authorization: Bearer &lt;api key&gt;</code>.</p>
<div id="ops">Loading…</div>
<script>
fetch('/openapi.json').then(r=>r.json()).then(doc=>{
  document.getElementById('info').textContent=(doc.info.description||'')+' Version '+doc.info.version+'.';
  const out=[];const esc=s=>String(s).replace(/[&<>]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
  for(const [path,ops] of Object.entries(doc.paths)){for(const [method,op] of Object.entries(ops)){
    const body=op.requestBody?'<details><summary>request body</summary><pre>'+esc(JSON.stringify(op.requestBody.content,null,1))+'</pre></details>':'';
    const res='<details><summary>responses</summary><pre>'+esc(JSON.stringify(op.responses,null,1))+'</pre></details>';
    out.push('<div class="op"><span class="m '+method+'">'+method+'</span> <code>'+esc(path)+'</code> '+esc(op.summary||'')+body+res+'</div>');}}
  out.push('<h2>Schemas</h2><pre>'+esc(JSON.stringify((doc.components||{}).schemas||{},null,1))+'</pre>');
  document.getElementById('ops').innerHTML=out.join('');
});
</script></body></html>`;
