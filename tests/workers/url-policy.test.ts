/**
 * The URL policy (workers/services/url-policy.ts), written as a hostile tenant's requests: backbone URLs aimed at the
 * Worker's own network, hidden behind DNS or redirects, or used to read upstream answers back. Every fetch the Worker
 * makes goes through a mocked global fetch, so "no connection" is checked as "no request reached that URL".
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { buildTinyModel, tinySpec } from "../fixtures/tiny-model";
import { FETCH_FAILED_MESSAGE, URL_REFUSED_MESSAGE, checkUrl, isPublicAddress, sameOriginRelative, urlPolicyFromEnv } from "../../workers/services/url-policy";
import { callJson, createProject, dohAnswer } from "./helpers";

const DNS: Record<string, string[]> = {
  "models.test": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
  "rebind.test": ["93.184.215.14", "127.0.0.1"],
  "metadata.test": ["169.254.169.254"],
  "v6-private.test": ["fd12:3456::1"],
};

type Handler = (url: string, init?: RequestInit) => Response | Promise<Response>;

/** Mocks fetch: DoH queries answer from DNS; everything else goes to `handler`. Returns the non-DNS URLs requested. */
function network(handler: Handler) {
  const requested: string[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url.startsWith("https://cloudflare-dns.com/dns-query?")) return dohAnswer(url, DNS);
    requested.push(url);
    return handler(url, init);
  });
  return requested;
}

const serveModel = (files: Record<string, Uint8Array>, prefix = "https://models.test/"): Handler => (url) => {
  const bytes = url.startsWith(prefix) ? files[decodeURIComponent(url.slice(prefix.length))] : undefined;
  return bytes ? new Response(bytes) : new Response("not found", { status: 404 });
};

const importUrl = async (key: string, url: string) => callJson("POST", "/v1/backbones", { key, json: { ...tinySpec(), url } });

afterEach(() => vi.restoreAllMocks());

describe("isPublicAddress", () => {
  it.each([
    "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.255",
    "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.18.0.1", "::", "::1", "[::1]", "fd00::1", "fc00::1", "fe80::1", "fe80::1%eth0", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2001::1", "2001:db8::1", "not an ip",
  ])("%s is not public", (ip) => expect(isPublicAddress(ip)).toBe(false));

  it.each(["93.184.215.14", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "2002:0808:0808::"])("%s is public", (ip) => {
    expect(isPublicAddress(ip)).toBe(true);
  });
});

describe("checkUrl", () => {
  const policy = urlPolicyFromEnv({});

  it.each([
    "http://models.test/model.json", // plain http
    "ftp://models.test/model.json",
    "file:///etc/passwd",
    "https://localhost/model.json",
    "https://foo.localhost/model.json",
    "https://printer.local/model.json",
    "https://metadata/model.json", // single label: resolved with the host's search domains
    "https://127.0.0.1/model.json",
    "https://2130706433/model.json", // 127.0.0.1 as one decimal number
    "https://0x7f.1/model.json", // 127.0.0.1 in hex shorthand
    "https://0177.0.0.1/model.json", // octal
    "https://[::1]/model.json",
    "https://[::ffff:127.0.0.1]/model.json",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/model.json",
    "https://[fd00::1]/model.json",
    "https://[fe80::1]/model.json",
    "https://user:pass@models.test/model.json",
    "https://rebind.test/model.json", // one of its answers is loopback
    "https://metadata.test/model.json", // a public-looking name for the metadata address
    "https://v6-private.test/model.json",
    "https://unknown-name.test/model.json", // NXDOMAIN
  ])("refuses %s with the fixed message", async (url) => {
    network(() => new Response("should not be fetched"));
    await expect(checkUrl(url, policy)).rejects.toMatchObject({ status: 422, code: "url_not_allowed", message: URL_REFUSED_MESSAGE, details: { url } });
  });

  it("accepts an https URL whose every DNS answer is public", async () => {
    network(() => new Response(""));
    expect((await checkUrl("https://models.test/a/model.json", policy)).href).toBe("https://models.test/a/model.json");
  });

  it("refuses every name when the DNS resolver cannot be reached (fail closed)", async () => {
    vi.spyOn(globalThis, "fetch").mockRejectedValue(new TypeError("network down"));
    await expect(checkUrl("https://models.test/model.json", policy)).rejects.toMatchObject({ code: "url_not_allowed" });
  });

  it("the operator's local-experiments setting accepts loopback and plain http (off by default)", async () => {
    expect(urlPolicyFromEnv({}).allowPrivateHosts).toBe(false);
    const local = urlPolicyFromEnv({ URL_ALLOW_PRIVATE_HOSTS: "true" });
    expect((await checkUrl("http://127.0.0.1:9000/model.json", local)).port).toBe("9000");
    expect((await checkUrl("http://localhost/model.json", local)).hostname).toBe("localhost");
  });

  it("weight paths must be relative and stay on the model.json's origin", () => {
    const base = new URL("https://models.test/m/model.json");
    expect(sameOriginRelative(base, "group1-shard1of1.bin").href).toBe("https://models.test/m/group1-shard1of1.bin");
    expect(sameOriginRelative(base, "../w/x.bin").href).toBe("https://models.test/w/x.bin");
    for (const path of ["https://evil.test/x.bin", "//evil.test/x.bin", "http://127.0.0.1/x.bin", "\\\\evil.test\\x.bin", "data:,abc", "javascript:alert(1)"]) {
      expect(() => sameOriginRelative(base, path), path).toThrow(URL_REFUSED_MESSAGE);
    }
  });
});

describe("POST /v1/backbones with a hostile URL", () => {
  it("a loopback listener sees no connection, and the answer is the fixed refusal", async () => {
    const { key } = await createProject();
    const requested = network(() => new Response("{}"));
    for (const url of ["https://127.0.0.1:8787/model.json", "http://localhost:8787/v1/keys", "https://[::1]/model.json", "https://rebind.test/model.json"]) {
      const { status, body } = await importUrl(key, url);
      expect(status, url).toBe(422);
      expect(body.error).toEqual({ code: "url_not_allowed", message: URL_REFUSED_MESSAGE, details: { url } });
    }
    expect(requested).toEqual([]);
  });

  it("a redirect to a private address is refused before it is followed", async () => {
    const { key } = await createProject();
    const requested = network((url) => (url === "https://models.test/model.json" ? new Response(null, { status: 302, headers: { location: "http://169.254.169.254/latest/meta-data/" } }) : new Response("secret")));
    const { status, body } = await importUrl(key, "https://models.test/model.json");
    expect(status).toBe(422);
    expect(body.error).toEqual({ code: "url_not_allowed", message: URL_REFUSED_MESSAGE, details: { url: "https://models.test/model.json" } });
    expect(requested).toEqual(["https://models.test/model.json"]);
  });

  it("follows at most 3 redirects", async () => {
    const { key } = await createProject();
    const model = buildTinyModel();
    const hop = (n: number) => `https://models.test/hop${n}/model.json`;
    const requested = network((url, init) => {
      expect(init?.redirect).toBe("manual");
      const m = url.match(/hop(\d)\/model\.json$/);
      if (m) return new Response(null, { status: 301, headers: { location: Number(m[1]) < 9 ? hop(Number(m[1]) + 1) : "/model.json" } });
      return serveModel(model.files)(url);
    });
    expect((await importUrl(key, hop(7))).status).toBe(201); // 7 → 8 → 9 → /model.json: three hops
    expect(requested.slice(0, 4)).toEqual([hop(7), hop(8), hop(9), "https://models.test/model.json"]);
    const tooMany = await importUrl(key, hop(6));
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.error.code).toBe("url_not_allowed");
  });

  it("a weight path that leaves the origin is refused before any weight is fetched", async () => {
    const { key, projectId } = await createProject();
    for (const path of ["http://127.0.0.1:6379/x.bin", "//evil.test/x.bin", "https://evil.test/x.bin"]) {
      const model = buildTinyModel();
      const json = JSON.parse(new TextDecoder().decode(model.files["model.json"]));
      json.weightsManifest[0].paths = [path];
      const requested = network(serveModel({ ...model.files, "model.json": new TextEncoder().encode(JSON.stringify(json)) }));
      const { status, body } = await importUrl(key, "https://models.test/model.json");
      expect(status, path).toBe(422);
      expect(body.error.code).toBe("url_not_allowed");
      expect(requested).toEqual(["https://models.test/model.json"]);
      vi.restoreAllMocks();
    }
    expect((await env.BUCKET.list({ prefix: `projects/${projectId}/backbones/` })).objects).toEqual([]);
  });

  it("never echoes the upstream status or body", async () => {
    const { key } = await createProject();
    network(() => new Response("redis_version:7.2.4 internal secret", { status: 500 }));
    const { status, body } = await importUrl(key, "https://models.test/model.json");
    expect(status).toBe(422);
    expect(body.error.message).toBe(FETCH_FAILED_MESSAGE);
    expect(JSON.stringify(body)).not.toMatch(/500|redis|secret/);
  });
});

describe("weight files are fetched with retries", () => {
  it("a weight file that answers 503 once, then works, still imports", async () => {
    const { key } = await createProject();
    const model = buildTinyModel({ shards: 2 });
    let failures = 0;
    const requested = network((url) => {
      if (url.endsWith("shard2of2.bin") && failures++ === 0) return new Response("busy", { status: 503 });
      return serveModel(model.files)(url);
    });
    const { status, body } = await importUrl(key, "https://models.test/model.json");
    expect(status).toBe(201);
    expect(body.weight_bytes).toBe(1168);
    expect(requested.filter((u) => u.endsWith("shard2of2.bin"))).toHaveLength(2);
  });

  it("a download that breaks off is resumed with a Range request, and the stored weights are exact", async () => {
    const { key, projectId } = await createProject();
    const model = buildTinyModel();
    const shard = model.files["group1-shard1of1.bin"];
    const ranges: Array<string | null> = [];
    network((url, init) => {
      if (!url.endsWith(".bin")) return serveModel(model.files)(url);
      const range = new Headers(init?.headers).get("range");
      ranges.push(range);
      if (!range) {
        // 100 bytes, then the connection drops.
        let sent = false;
        return new Response(new ReadableStream({ pull(controller) { if (!sent) { sent = true; controller.enqueue(shard.slice(0, 100)); } else controller.error(new Error("connection reset")); } }));
      }
      const from = Number(range.match(/bytes=(\d+)-/)![1]);
      return new Response(shard.slice(from), { status: 206, headers: { "content-range": `bytes ${from}-${shard.length - 1}/${shard.length}` } });
    });
    const { status, body } = await importUrl(key, "https://models.test/model.json");
    expect(status).toBe(201);
    expect(ranges).toEqual([null, "bytes=100-"]);
    const weights = new Uint8Array(await (await env.BUCKET.get(`projects/${projectId}/backbones/${body.id}/weights.bin`))!.arrayBuffer());
    expect(weights).toEqual(model.weightData);
  });

  it("gives up after 3 attempts with the fixed message", async () => {
    const { key } = await createProject();
    const model = buildTinyModel();
    const requested = network((url) => (url.endsWith(".bin") ? new Response("down", { status: 502 }) : serveModel(model.files)(url)));
    const { status, body } = await importUrl(key, "https://models.test/model.json");
    expect(status).toBe(422);
    expect(body.error.message).toBe(FETCH_FAILED_MESSAGE);
    expect(requested.filter((u) => u.endsWith(".bin"))).toHaveLength(3);
  });
});
