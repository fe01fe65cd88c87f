/**
 * The one policy every URL a tenant gives us must pass before the Worker fetches it (backbone imports today, webhook
 * deliveries next). A tenant's URL is hostile: it may aim at the Worker's own network (loopback, private ranges, a
 * cloud metadata address), hide such an address behind a DNS name or a redirect, or probe internal services through
 * the error messages it gets back. So:
 *
 * - https only (plain http only when the operator sets URL_ALLOW_HTTP=true);
 * - the host must be public: IP literals in loopback, private (RFC 1918), link-local, CGNAT (100.64/10), unique-local
 *   (fc00::/7), multicast, documentation and reserved ranges are refused, and so are IPv6 forms that embed such an IPv4
 *   address (::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16); names like `localhost`, `*.local`, `*.internal` and
 *   single-label names are refused without asking DNS;
 * - a DNS name is resolved first and refused when ANY of its A/AAAA answers is not public (see "DNS" below);
 * - redirects are followed by hand, each hop checked the same way, at most MAX_REDIRECTS of them;
 * - every refusal and every failed fetch answers with one fixed message (`URL_REFUSED_MESSAGE`, `FETCH_FAILED_MESSAGE`)
 *   that never echoes the upstream status, headers or bytes, so a tenant cannot use us as a port scanner.
 *
 * DNS: workerd has no resolver API (no `node:dns`, no sockets API for UDP), so names are resolved with DNS over HTTPS
 * (JSON API, RFC 8484's sibling served by Cloudflare and Google) at URL_DNS_RESOLVER (default
 * https://cloudflare-dns.com/dns-query). A lookup that fails refuses the URL (fail closed): offline, under
 * `wrangler dev` without network, only IP literals and allowed private hosts can be fetched. What remains is DNS
 * rebinding between our lookup and fetch()'s own: on Cloudflare's network that is harmless (a deployed Worker's fetch
 * egresses from Cloudflare and cannot reach private or loopback addresses of ours), and it is the reason the check
 * matters most for local `wrangler dev`, where fetch() does reach the host's network. URL_DNS_RESOLVER=off skips the
 * lookup (only sensible on Cloudflare).
 *
 * Operators who experiment locally set URL_ALLOW_PRIVATE_HOSTS=true: private and loopback hosts (and plain http to
 * them) are then accepted. It is off by default and should stay off on any shared deployment.
 *
 * API (small on purpose):
 *   urlPolicyFromEnv(env)                  the policy of this deployment
 *   checkUrl(url, policy)                  the parsed URL when it may be fetched; throws UrlRefusedError otherwise
 *   policedFetch(url, init, policy)        fetch() with checkUrl on the URL and on every redirect hop; answers
 *                                          { response, url } (url: the final hop's), throws on a non-2xx answer
 *   sameOriginRelative(base, path)         a path relative to `base` on the same origin (weight files beside model.json)
 *   isPublicAddress(ip)                    the address predicate itself (IPv4 dotted or IPv6 text)
 */
import { ApiError } from "../../shared/errors";

export const MAX_REDIRECTS = 3;
export const DEFAULT_DNS_RESOLVER = "https://cloudflare-dns.com/dns-query";
/** The one message for every refused URL: it names the rule, never what we learned about the host. */
export const URL_REFUSED_MESSAGE =
  "This URL is not allowed: use an https URL on a public host name (no IP addresses of private, loopback or link-local networks, at most 3 redirects).";
/** The one message for every URL that passed the policy but could not be fetched. */
export const FETCH_FAILED_MESSAGE = "The URL could not be fetched. Make it publicly readable over https and try again.";

export interface UrlPolicy {
  allowHttp: boolean;
  allowPrivateHosts: boolean;
  /** DoH JSON endpoint, or null to skip the lookup. */
  dnsResolver: string | null;
  maxRedirects: number;
}

export interface UrlPolicyEnv {
  URL_ALLOW_HTTP?: string;
  URL_ALLOW_PRIVATE_HOSTS?: string;
  URL_DNS_RESOLVER?: string;
}

export function urlPolicyFromEnv(env: UrlPolicyEnv): UrlPolicy {
  const resolver = env.URL_DNS_RESOLVER?.trim();
  return {
    allowHttp: env.URL_ALLOW_HTTP === "true",
    allowPrivateHosts: env.URL_ALLOW_PRIVATE_HOSTS === "true",
    dnsResolver: resolver === "off" ? null : resolver || DEFAULT_DNS_RESOLVER,
    maxRedirects: MAX_REDIRECTS,
  };
}

/** 422 `url_not_allowed` with the fixed message; `details.url` is the URL the tenant gave (never a redirect target). */
export class UrlRefusedError extends ApiError {
  constructor(url: string, readonly reason: string) {
    // `reason` is kept for logs and tests only; the tenant sees the fixed message.
    super("url_not_allowed", URL_REFUSED_MESSAGE, { url });
    this.name = "UrlRefusedError";
  }
}

// ---------------------------------------------------------------- addresses

function parseIpv4(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return bytes.every((b) => b >= 0 && b <= 255) ? bytes : null;
}

/** Eight 16-bit groups, or null. Accepts `::` compression and a trailing dotted IPv4. */
function parseIpv6(text: string): number[] | null {
  let s = text.toLowerCase();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    const v4 = parseIpv4(s.slice(lastColon + 1));
    if (!v4) return null;
    s = `${s.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const parse = (h: string) => (h === "" ? [] : h.split(":").map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)));
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  const explicit = head.length + rest.length;
  if ([...head, ...rest].some(Number.isNaN)) return null;
  if (halves.length === 1 && explicit !== 8) return null;
  if (halves.length === 2 && explicit > 7) return null;
  return [...head, ...new Array(8 - explicit).fill(0), ...rest];
}

const inV4 = (b: number[], prefix: number[], bits: number) => {
  const value = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  const net = ((prefix[0] << 24) | ((prefix[1] ?? 0) << 16) | ((prefix[2] ?? 0) << 8) | (prefix[3] ?? 0)) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (value & mask) === (net & mask);
};

/** Ranges that are not the public internet (IANA special-purpose registry, the ones a fetch could reach). */
const BLOCKED_V4: Array<[number[], number]> = [
  [[0], 8], // "this network"
  [[10], 8], // private
  [[100, 64], 10], // CGNAT
  [[127], 8], // loopback
  [[169, 254], 16], // link-local (cloud metadata 169.254.169.254)
  [[172, 16], 12], // private
  [[192, 0, 0], 24], // IETF protocol assignments
  [[192, 0, 2], 24], // documentation
  [[192, 88, 99], 24], // 6to4 relay anycast
  [[192, 168], 16], // private
  [[198, 18], 15], // benchmarking
  [[198, 51, 100], 24], // documentation
  [[203, 0, 113], 24], // documentation
  [[224], 4], // multicast
  [[240], 4], // reserved and broadcast
];

function isPublicV4(b: number[]): boolean {
  return !BLOCKED_V4.some(([prefix, bits]) => inV4(b, prefix, bits));
}

function isPublicV6(g: number[]): boolean {
  const v4 = (hi: number, lo: number) => [hi >> 8, hi & 255, lo >> 8, lo & 255];
  if (g.slice(0, 7).every((x) => x === 0)) return false; // :: and ::1
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return isPublicV4(v4(g[6], g[7])); // IPv4-mapped
  if (g.slice(0, 6).every((x) => x === 0)) return isPublicV4(v4(g[6], g[7])); // IPv4-compatible (deprecated)
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return isPublicV4(v4(g[6], g[7])); // NAT64
  if (g[0] === 0x2002) return isPublicV4(v4(g[1], g[2])); // 6to4
  if (g[0] === 0x2001 && g[1] === 0) return false; // Teredo: tunnels to an address we cannot check
  if (g[0] === 0x2001 && g[1] === 0xdb8) return false; // documentation
  if (g[0] === 0x100 && g.slice(1, 4).every((x) => x === 0)) return false; // discard-only
  if ((g[0] & 0xfe00) === 0xfc00) return false; // unique-local fc00::/7
  if ((g[0] & 0xffc0) === 0xfe80 || (g[0] & 0xffc0) === 0xfec0) return false; // link-local, site-local
  if ((g[0] & 0xff00) === 0xff00) return false; // multicast
  return true;
}

/** Whether `ip` (dotted IPv4 or IPv6 text, brackets allowed) is a public unicast address. Unparseable text is not. */
export function isPublicAddress(ip: string): boolean {
  const v4 = parseIpv4(ip);
  if (v4) return isPublicV4(v4);
  const v6 = parseIpv6(ip);
  return v6 ? isPublicV6(v6) : false;
}

const PRIVATE_NAME_SUFFIXES = [".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet", ".corp"];

// ---------------------------------------------------------------- the check

type DohAnswer = { Status?: number; Answer?: Array<{ type: number; data: string }> };

async function lookup(resolver: string, host: string, type: "A" | "AAAA"): Promise<string[]> {
  const response = await fetch(`${resolver}?name=${encodeURIComponent(host)}&type=${type}`, { headers: { accept: "application/dns-json" }, redirect: "error" });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`resolver answered ${response.status}`);
  }
  const body = (await response.json()) as DohAnswer;
  // NXDOMAIN (3) and NOERROR without data both give no addresses; other statuses are failures.
  if (body.Status !== 0 && body.Status !== 3) throw new Error(`resolver status ${body.Status}`);
  const wanted = type === "A" ? 1 : 28;
  return (body.Answer ?? []).filter((a) => a.type === wanted).map((a) => a.data);
}

/**
 * The URL, parsed, when this deployment may fetch it; throws UrlRefusedError otherwise. `original` is the URL the
 * tenant gave, named in the error when `url` is a redirect target (which we never echo).
 */
export async function checkUrl(url: string | URL, policy: UrlPolicy, original: string = String(url)): Promise<URL> {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    throw new UrlRefusedError(original, "unparseable");
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") throw new UrlRefusedError(original, `scheme ${parsed.protocol}`);
  if (parsed.username || parsed.password) throw new UrlRefusedError(original, "credentials in the URL");
  // The WHATWG parser has already turned 2130706433, 0x7f.1 and 0177.0.0.1 into 127.0.0.1, and [::ffff:127.0.0.1] into [::ffff:7f00:1].
  const host = parsed.hostname.replace(/\.$/, "").toLowerCase();
  const literal = parseIpv4(host) ?? (host.startsWith("[") ? parseIpv6(host) : null);
  const privateName = host === "localhost" || !host.includes(".") || PRIVATE_NAME_SUFFIXES.some((s) => host.endsWith(s));
  if (policy.allowPrivateHosts) {
    // Local experiments: anything the operator's own network can reach, http included.
    return parsed;
  }
  if (parsed.protocol === "http:" && !policy.allowHttp) throw new UrlRefusedError(original, "plain http");
  if (literal) {
    if (!isPublicAddress(host)) throw new UrlRefusedError(original, `non-public address ${host}`);
    return parsed;
  }
  if (privateName) throw new UrlRefusedError(original, `private name ${host}`);
  if (policy.dnsResolver) {
    let addresses: string[];
    try {
      const [a, aaaa] = await Promise.all([lookup(policy.dnsResolver, host, "A"), lookup(policy.dnsResolver, host, "AAAA")]);
      addresses = [...a, ...aaaa];
    } catch (err) {
      throw new UrlRefusedError(original, `DNS lookup failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (addresses.length === 0) throw new UrlRefusedError(original, "no addresses");
    const bad = addresses.find((a) => !isPublicAddress(a));
    if (bad) throw new UrlRefusedError(original, `resolves to non-public ${bad}`);
  }
  return parsed;
}

/** 422 `url_fetch_failed` with the fixed message: the upstream status and body never reach the tenant. */
export class UrlFetchError extends ApiError {
  constructor(url: string, readonly reason: string, readonly retryable: boolean) {
    super("url_fetch_failed", FETCH_FAILED_MESSAGE, { url });
    this.name = "UrlFetchError";
  }
}

/**
 * fetch() under the policy: the URL and every redirect hop pass checkUrl; at most `policy.maxRedirects` hops.
 * Answers the final response when it is 2xx (206 included) with the URL it came from; anything else throws
 * UrlFetchError (retryable for network errors, 408, 429 and 5xx). `init.redirect` is always "manual". A POST (webhooks)
 * is re-sent as is to a 307/308 target and as GET to a 301/302/303 one, as browsers do.
 */
export async function policedFetch(url: string, init: RequestInit, policy: UrlPolicy): Promise<{ response: Response; url: URL }> {
  let target = await checkUrl(url, policy);
  for (let hop = 0; ; hop++) {
    let response: Response;
    try {
      response = await fetch(target.toString(), { ...init, redirect: "manual" });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      throw new UrlFetchError(url, `network: ${err instanceof Error ? err.message : String(err)}`, true);
    }
    if (response.status >= 300 && response.status < 400 && response.headers.has("location")) {
      await response.body?.cancel();
      if (hop >= policy.maxRedirects) throw new UrlRefusedError(url, "too many redirects");
      let next: URL;
      try {
        next = new URL(response.headers.get("location")!, target);
      } catch {
        throw new UrlFetchError(url, "bad Location", false);
      }
      target = await checkUrl(next, policy, url);
      if (response.status !== 307 && response.status !== 308 && init.method && init.method !== "GET" && init.method !== "HEAD") init = { ...init, method: "GET", body: undefined };
      continue;
    }
    if (response.status < 200 || response.status >= 300) {
      await response.body?.cancel();
      const retryable = response.status === 408 || response.status === 429 || response.status >= 500;
      throw new UrlFetchError(url, `status ${response.status}`, retryable);
    }
    return { response, url: target };
  }
}

/**
 * `path` resolved against `base` when it is a plain relative path that stays on base's origin (weight files sit beside
 * their model.json); throws UrlRefusedError for absolute URLs, scheme-relative `//host/x`, or anything that leaves.
 */
export function sameOriginRelative(base: URL, path: string, original: string = base.toString()): URL {
  if (/^[a-z][a-z0-9+.-]*:/i.test(path) || path.startsWith("//") || path.startsWith("\\") || /[\\\u0000-\u001f]/.test(path)) {
    throw new UrlRefusedError(original, `weight path not relative: ${path.slice(0, 100)}`);
  }
  const resolved = new URL(path, base);
  if (resolved.origin !== base.origin) throw new UrlRefusedError(original, "weight path leaves the origin");
  return resolved;
}
