/**
 * The Worker's bindings and variables, as `wrangler types` generates them (worker-configuration.d.ts) from
 * wrangler.toml and .dev.vars.example: run `npm run types` after changing either. Read settings with
 * `getConfig(env)` (config.ts), which parses them once.
 */
export type Env = Cloudflare.Env;
