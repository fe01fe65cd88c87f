import { applyD1Migrations, env } from "cloudflare:test";
import { afterAll } from "vitest";
import { sha256Hex } from "../../shared/ids";
import { servedDocuments } from "./helpers";
import { prepareValidators, validationCounts } from "./openapi-validation";

// Setup file: runs before each test file, outside per-test storage isolation. Applying is idempotent.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);

// The runner `runnerCall` (helpers.ts) speaks as: registered the way POST /v1/runners stores one (its token's hash).
const TEST_RUNNER_TOKEN = "et_rnr_test0000000000000000000000000";
await env.DB.prepare("insert or ignore into runners (id, name, token_hash, token_prefix) values ('rnr_test', 'test runner', ?, 'et_rnr_test')")
  .bind(await sha256Hex(TEST_RUNNER_TOKEN))
  .run();

// The OpenAPI documents and their response validators, ready before the file's first test (openapi-validation.ts).
prepareValidators(await servedDocuments());

// Every response that went through `call()` was checked against the OpenAPI documents (openapi-validation.ts): say
// how many, per file, so a suite run shows the validation actually ran.
afterAll(() => {
  if (validationCounts.checked > 0) console.log(`openapi-validation: ${validationCounts.checked} responses checked against the documents, ${validationCounts.bodiesValidated} JSON bodies validated`);
});
