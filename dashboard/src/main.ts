/** The edgetune dashboard: sign in with an API key, then the whole loop (upload, train, evaluate, try, serve). */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, sdk, session, whenSignedOut } from "./api";
import { AliasesPage, BackbonesPage, KeysPage } from "./pages/admin";
import { DatasetPage, DatasetsPage } from "./pages/datasets";
import { JobPage, JobsPage, TrainPage } from "./pages/jobs";
import { ModelPage, ModelsPage } from "./pages/models";
import { TryPage } from "./pages/try";
import { ErrorNote, go, html, useRoute } from "./ui";

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // Any authenticated read tells a valid key from a wrong one.
      await sdk(key.trim()).datasets.list({ limit: 1 });
      session.signIn(key.trim());
      onSignedIn();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? new ApiError(401, err.code, "This API key is not valid. Check it, or ask for a new one (npm start prints the local admin key).") : err);
    } finally {
      setBusy(false);
    }
  }
  return html`<main id="main" class="signin">
    <h1>edgetune</h1>
    <p>Upload images, train a classifier on a pretrained backbone, and serve it at the edge.</p>
    <form class="stack" onSubmit=${submit}>
      <div class="field">
        <label for="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autocomplete="current-password" required value=${key} onInput=${(e: any) => setKey(e.target.value)} />
        <p class="hint">Kept in this browser tab only, and forgotten when the tab closes.</p>
      </div>
      <${ErrorNote} error=${error} />
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
    </form>
    <p class="muted">The API itself is documented at <a href="/docs">/docs</a>.</p>
  </main>`;
}

const NAV: [string, string][] = [
  ["datasets", "Datasets"],
  ["train", "Train"],
  ["jobs", "Jobs"],
  ["models", "Models"],
  ["try", "Try it"],
  ["aliases", "Aliases"],
  ["keys", "Keys"],
  ["backbones", "Backbones"],
];

function Page({ parts, query }: { parts: string[]; query: URLSearchParams }) {
  const [section, id] = parts;
  switch (section ?? "datasets") {
    case "datasets":
      return id ? html`<${DatasetPage} key=${id} id=${id} />` : html`<${DatasetsPage} />`;
    case "train":
      return html`<${TrainPage} datasetId=${query.get("dataset")} />`;
    case "jobs":
      return id ? html`<${JobPage} key=${id} id=${id} />` : html`<${JobsPage} />`;
    case "models":
      return id ? html`<${ModelPage} key=${id} id=${id} />` : html`<${ModelsPage} />`;
    case "try":
      return html`<${TryPage} modelId=${query.get("model")} />`;
    case "aliases":
      return html`<${AliasesPage} />`;
    case "keys":
      return html`<${KeysPage} />`;
    case "backbones":
      return html`<${BackbonesPage} />`;
    default:
      return html`<section><h1>Not found</h1><${ErrorNote} error=${new Error(`There is no page '${section}'.`)} /><p><a href="#/datasets">Go to the datasets</a></p></section>`;
  }
}

function App() {
  const [signedIn, setSignedIn] = useState(!!session.key);
  const route = useRoute();
  useEffect(() => {
    whenSignedOut(() => {
      session.signOut();
      setSignedIn(false);
    });
  }, []);
  const section = route.parts[0] ?? "datasets";
  useEffect(() => {
    const label = NAV.find(([k]) => k === section)?.[1] ?? "edgetune";
    document.title = signedIn ? `${label} · edgetune` : "Sign in · edgetune";
    // Move focus to the new page's heading so keyboard and screen-reader users land on it.
    const h1 = document.querySelector("main h1") as HTMLElement | null;
    if (h1 && document.activeElement === document.body) {
      h1.tabIndex = -1;
      h1.focus({ preventScroll: true });
    }
  }, [route.parts.join("/"), signedIn]);
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e: Event) => { e.preventDefault(); (document.getElementById("main") as HTMLElement)?.focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/datasets">edgetune</a>
      <nav aria-label="Main">
        <ul>${NAV.map(([k, label]) => html`<li><a href=${`#/${k}`} aria-current=${section === k ? "page" : undefined}>${label}</a></li>`)}</ul>
      </nav>
      <button type="button" class="signout" onClick=${() => { session.signOut(); setSignedIn(false); go("/datasets"); }}>Sign out</button>
    </header>
    <main id="main" tabindex="-1"><${Page} parts=${route.parts} query=${route.query} /></main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("app")!);
