/**
 * `edgetune`: the command line for the edgetune API (../shared CLI.md is the contract). Built on the SDK (sdk/),
 * commander for arguments, cli-progress for bars and cli-table3 for tables.
 *
 * Exit codes: 0 success; 1 the API refused, a dataset failed to ingest or a job failed (code and message on
 * stderr); 2 usage error; 130 interrupted by Ctrl-C (a job being followed keeps running).
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Option } from "commander";
import { Edgetune, EdgetuneError, fileResumeStore, pathSource, predictFiles, type Dataset, type Job, type Model, type UploadProgress } from "../../sdk/node";
import { configDir, configFile, resolveConnection, writeConfig } from "./config";
import { expandFileArgs } from "./files";
import { followJob } from "./follow-job";
import { exportBundle } from "./export";
import { Output, formatBytes, formatDuration, type Progress } from "./output";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** A mistake in how the command was called (exit 2). */
export class UsageError extends Error {}
/** The command ran but its outcome is a failure (exit 1), e.g. a failed job; the message is already printed. */
class FailedOutcome extends Error {}
/** Ctrl-C (exit 130). */
class Interrupted extends Error {}

interface GlobalOptions {
  url?: string;
  key?: string;
  json?: boolean;
}

function context(command: Command) {
  const opts = command.optsWithGlobals() as GlobalOptions;
  const out = new Output({ json: opts.json });
  const connection = resolveConnection(opts);
  const client = new Edgetune({ url: connection.url, apiKey: connection.key, headers: { "user-agent": "edgetune-cli" } });
  return { out, client, connection, opts };
}

/** Aborts on the first Ctrl-C (SIGINT) or SIGTERM; a second one exits at once. */
function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new Interrupted("interrupted"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return { signal: controller.signal, dispose: () => (process.off("SIGINT", onSignal), process.off("SIGTERM", onSignal)) };
}

// ---------------------------------------------------------------- printers
function printDataset(out: Output, d: Dataset) {
  out.line(`${out.bold(d.id)}  ${d.name}  ${d.status}  version ${d.version}`);
  out.line(`${d.image_count} images, ${formatBytes(d.bytes)}, ${d.labels.length} labels${d.rejected_count ? `, ${d.rejected_count} rejected` : ""}`);
  if (d.labels.length > 0) out.line(out.table(["label", "images", "train", "val"], d.labels.map((l) => [l.name, l.count, l.train, l.val]), { align: ["left", "right", "right", "right"] }));
  if (d.rejected.length > 0) {
    out.line(`Rejected files${d.rejected_count > d.rejected.length ? ` (first ${d.rejected.length} of ${d.rejected_count})` : ""}:`);
    out.line(out.table(["file", "code", "reason"], d.rejected.map((r) => [r.path, r.code, wrap(r.message, 70)])));
  }
  if (d.trainable) out.line(`Trainable. Next: edgetune train ${d.id} --wait`);
  else if (d.not_trainable_reason) out.line(`Not trainable yet: ${d.not_trainable_reason}`);
}

function printJob(out: Output, j: Job) {
  out.line(`${out.bold(j.id)}  ${j.status}  dataset ${j.dataset_id} v${j.dataset_version}  backbone ${j.backbone}  attempt ${j.attempt}/${j.max_attempts}`);
  if (j.progress.phase) out.line(`progress: ${j.progress.phase} ${j.progress.done}/${j.progress.total}`);
  const last = j.metrics.epochs.at(-1);
  if (last) out.line(`epoch ${last.epoch}: loss ${last.train_loss.toFixed(4)} acc ${pct(last.train_accuracy)}  val_loss ${last.val_loss.toFixed(4)} val_acc ${pct(last.val_accuracy)}`);
  if (j.model_id) out.line(`model: ${j.model_id}`);
  if (j.error) out.line(`error: ${j.error}`);
}

export function printModelMetrics(out: Output, m: Model) {
  const metrics = m.metrics;
  out.line(`${out.bold(m.id)}  ${m.labels.length} labels  backbone ${m.backbone}  from ${m.job_id}`);
  out.line(`accuracy ${pct(metrics.accuracy)} on ${metrics.val_count ?? metrics.per_class.reduce((s, c) => s + c.support, 0)} validation images`);
  out.line(out.table(["label", "precision", "recall", "f1", "support"], metrics.per_class.map((c) => [c.label, c.precision.toFixed(3), c.recall.toFixed(3), c.f1.toFixed(3), c.support]), { align: ["left", "right", "right", "right", "right"] }));
  if (metrics.confusion_matrix?.length) {
    out.line("Confusion matrix (rows: true label, columns: predicted):");
    out.line(out.table(["true \\ predicted", ...m.labels], metrics.confusion_matrix.map((row, i) => [m.labels[i], ...row]), { align: ["left", ...m.labels.map(() => "right" as const)] }));
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const wrap = (text: string, width: number) => text.replace(new RegExp(`(.{1,${width}})(\\s+|$)`, "g"), "$1\n").trim();

// ---------------------------------------------------------------- program
export function buildProgram(): Command {
  const program = new Command("edgetune")
    .description("Upload image datasets, train classifiers on a frozen backbone and predict, from the command line.\nConnection: --url/--key, else EDGETUNE_URL/EDGETUNE_API_KEY, else `edgetune login`'s config, else http://127.0.0.1:8787.")
    .option("--url <url>", "API URL (default: EDGETUNE_URL, the saved login, or http://127.0.0.1:8787)")
    .option("--key <key>", "API key (default: EDGETUNE_API_KEY or the saved login)")
    .option("--json", "print exactly one JSON document on stdout (progress goes to stderr)")
    .version(JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).version)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  program
    .command("login")
    .description("check an API key against the API and save the URL and key (config file, mode 0600)")
    .option("--url <url>", "API URL")
    .option("--key <key>", "API key (the one `npm start` printed, or one from POST /v1/keys)")
    .action(async (_o, command: Command) => {
      const { out, client, connection } = context(command);
      if (!connection.key) throw new UsageError("login needs --key KEY (or EDGETUNE_API_KEY): the key `npm start` printed, or one made with POST /v1/keys.");
      const project = await client.project();
      const file = writeConfig({ url: connection.url, key: connection.key, project_id: project.id });
      if (out.json) return out.result({ url: connection.url, project_id: project.id });
      out.line(`Logged in to ${connection.url} as project ${project.id} (${project.name}). Saved to ${file}.`);
      out.line("Next: edgetune datasets push ./my-images --name my-images");
    });

  // ---------------------------------------------------------------- datasets
  const datasets = program.command("datasets").description("create, upload and inspect datasets");
  datasets
    .command("push")
    .argument("<path>", "an ImageFolder directory (label/file, or train/label/... and val/label/...) or a .zip of one")
    .option("--name <name>", "name of the new dataset (default: the folder's name)")
    .option("--dataset <id>", "add to this existing dataset instead of creating one")
    .option("--part-mb <mb>", "part size for large uploads, in MiB (at least 5)", (v) => positiveNumber(v, "--part-mb"))
    .option("--parts", "always upload in parts (resumable), even an archive small enough for one request")
    .option("--no-wait", "return once the upload is complete, without waiting for ingestion")
    .description("upload a folder or zip (zipped on the fly, in parts when large, resuming an interrupted upload), then wait for ingestion and show rejected files")
    .action(async (target: string, options: { name?: string; dataset?: string; partMb?: number; parts?: boolean; wait: boolean }, command: Command) => {
      const { out, client } = context(command);
      if (!fs.existsSync(target)) throw new UsageError(`${target}: no such file or folder.`);
      const { signal, dispose } = interruptSignal();
      try {
        const source = await pathSource(target).catch((err) => {
          if (err instanceof EdgetuneError && err.status === 0) throw new UsageError(err.message);
          throw err;
        });
        // One resume file per source (absolute path + its exact bytes' fingerprint).
        const resume = fileResumeStore(path.join(configDir(), "uploads"), `${client.http.baseUrl}\0${path.resolve(target)}\0${source.fingerprint}`);
        const remembered = resume.read();
        let datasetId = options.dataset;
        if (!datasetId && remembered?.dataset_id) {
          datasetId = remembered.dataset_id as string;
          out.note(`Resuming the interrupted upload of ${target} into ${datasetId} (upload ${remembered.upload_id}).`);
        }
        if (!datasetId) {
          const name = options.name ?? path.basename(path.resolve(target)).replace(/\.zip$/i, "");
          datasetId = (await client.datasets.create({ name }, { signal })).id;
          out.note(`Created dataset ${datasetId} (${name}).`);
        }
        const store = fileResumeStore(path.join(configDir(), "uploads"), `${client.http.baseUrl}\0${path.resolve(target)}\0${source.fingerprint}`, { dataset_id: datasetId, path: path.resolve(target) });
        out.note(`Uploading ${source.kind === "folder" ? `${source.files} files from ${target} as a ZIP stream` : target} (${formatBytes(source.size)}).`);
        let bar: Progress | null = null;
        let ingestBar: Progress | null = null;
        const onProgress = (p: UploadProgress) => {
          if (p.phase === "uploading") {
            bar ??= out.progress("upload", p.totalBytes, (v) => `${formatBytes(v.value)}/${formatBytes(v.total)} | ${(v.rate / 1e6).toFixed(1)} MB/s | ETA ${formatDuration(v.etaS)}${v.payload.skipped ? ` | ${formatBytes(Number(v.payload.skipped))} already there` : ""}`);
            bar.update(p.sentBytes, { payload: { skipped: p.skippedBytes } });
          } else {
            if (p.total === 0) return;
            ingestBar ??= out.progress("ingest", p.total, (v) => `${v.value}/${v.total} images${v.rate > 0 ? ` | ${v.rate.toFixed(0)} img/s | ETA ${formatDuration(v.etaS)}` : ""}`);
            ingestBar.update(p.done, { total: p.total });
          }
        };
        const started = Date.now();
        await client.datasets.upload(datasetId, source, { onProgress, signal, resume: store, partBytes: options.partMb ? options.partMb * 1024 * 1024 : undefined, singleRequestMaxBytes: options.parts ? 0 : undefined });
        (bar as Progress | null)?.stop();
        out.note(`Uploaded ${formatBytes(source.size)} in ${formatDuration((Date.now() - started) / 1000)} (${(source.size / 1e6 / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(1)} MB/s).`);
        let dataset = await client.datasets.get(datasetId, { signal });
        if (options.wait) {
          dataset = await client.datasets.waitUntilIngested(datasetId, { onProgress, signal, intervalMs: 700 });
          (ingestBar as Progress | null)?.stop();
        }
        if (out.json) out.result(dataset);
        else printDataset(out, dataset);
        if (dataset.status === "failed" || dataset.status === "empty") {
          out.error(dataset.status === "failed" ? "ingest_failed" : "dataset_empty", dataset.error ?? dataset.not_trainable_reason ?? `The dataset is ${dataset.status}.`);
          throw new FailedOutcome();
        }
      } catch (err) {
        if (signal.aborted) {
          out.note("\nUpload interrupted. Run the same command again to resume where it stopped.");
          throw new Interrupted();
        }
        throw err;
      } finally {
        dispose();
      }
    });
  datasets
    .command("list")
    .description("list datasets, newest first")
    .action(async (_o, command: Command) => {
      const { out, client } = context(command);
      const all: Dataset[] = [];
      for await (const d of client.datasets.all()) all.push(d);
      if (out.json) return out.result({ datasets: all });
      if (all.length === 0) return out.line("No datasets yet. Push one: edgetune datasets push ./my-images");
      out.line(out.table(["id", "name", "status", "images", "labels", "rejected", "created"], all.map((d) => [d.id, d.name, d.status, d.image_count, d.labels.length, d.rejected_count, d.created_at])));
    });
  datasets
    .command("show")
    .argument("<id>", "dataset id (ds_...)")
    .description("show a dataset: labels, splits, rejected files")
    .action(async (id: string, _o, command: Command) => {
      const { out, client } = context(command);
      const d = await client.datasets.get(id);
      if (out.json) return out.result(d);
      printDataset(out, d);
    });

  // ---------------------------------------------------------------- train and jobs
  program
    .command("train")
    .argument("<dataset_id>", "the dataset to train on (ds_...)")
    .option("--backbone <backbone>", "a backbone id (bb_...) or builtin name (default: the builtin default)")
    .addOption(new Option("--head <head>", "the classifier head").choices(["linear", "mlp", "auto"]))
    .option("--epochs <n>", "training epochs (default 100, early stopping on)", (v) => positiveNumber(v, "--epochs"))
    .option("--wait", "follow the job with live progress until it ends, then print the model's metrics")
    .description("start a fine-tune job on a dataset")
    .action(async (datasetId: string, options: { backbone?: string; head?: string; epochs?: number; wait?: boolean }, command: Command) => {
      const { out, client } = context(command);
      const job = await client.jobs.create({
        dataset_id: datasetId,
        ...(options.backbone ? { backbone: options.backbone } : {}),
        ...(options.head ? { head: { type: options.head } as any } : {}),
        ...(options.epochs ? { hyperparameters: { epochs: options.epochs } } : {}),
      });
      if (!options.wait) {
        if (out.json) return out.result(job);
        printJob(out, job);
        return out.line(`Follow it: edgetune jobs watch ${job.id}`);
      }
      out.note(`Started ${job.id} on ${datasetId} (backbone ${job.backbone}).`);
      await watchJob(out, client, job.id);
    });

  const jobs = program.command("jobs").description("list, follow and cancel jobs");
  jobs
    .command("list")
    .option("--dataset <id>", "only this dataset's jobs")
    .option("--status <status>", "only jobs with this status")
    .description("list jobs, newest first")
    .action(async (options: { dataset?: string; status?: Job["status"] }, command: Command) => {
      const { out, client } = context(command);
      const all: Job[] = [];
      for await (const j of client.jobs.all({ dataset_id: options.dataset, status: options.status })) all.push(j);
      if (out.json) return out.result({ jobs: all });
      if (all.length === 0) return out.line("No jobs yet. Start one: edgetune train DATASET_ID --wait");
      out.line(out.table(["id", "status", "dataset", "phase", "model", "created"], all.map((j) => [j.id, j.status, j.dataset_id, j.progress.phase ? `${j.progress.phase} ${j.progress.done}/${j.progress.total}` : "", j.model_id ?? "", j.created_at])));
    });
  jobs
    .command("show")
    .argument("<id>", "job id (job_...)")
    .description("show a job")
    .action(async (id: string, _o, command: Command) => {
      const { out, client } = context(command);
      const j = await client.jobs.get(id);
      if (out.json) return out.result(j);
      printJob(out, j);
    });
  jobs
    .command("watch")
    .argument("<id>", "job id (job_...)")
    .description("follow a job with live progress until it ends (Ctrl-C stops watching; the job keeps running)")
    .action(async (id: string, _o, command: Command) => {
      const { out, client } = context(command);
      await watchJob(out, client, id);
    });
  jobs
    .command("cancel")
    .argument("<id>", "job id (job_...)")
    .description("cancel a job (a running one stops at its next heartbeat)")
    .action(async (id: string, _o, command: Command) => {
      const { out, client } = context(command);
      const j = await client.jobs.cancel(id);
      if (out.json) return out.result(j);
      out.line(j.status === "canceled" ? `${id} canceled.` : `${id}: cancel requested; it stops at its next heartbeat (seconds).`);
    });

  // ---------------------------------------------------------------- models, aliases, predictions
  const models = program.command("models").description("list and inspect trained models");
  models
    .command("list")
    .description("list models, newest first")
    .action(async (_o, command: Command) => {
      const { out, client } = context(command);
      const all: Model[] = [];
      for await (const m of client.models.all()) all.push(m);
      if (out.json) return out.result({ models: all });
      if (all.length === 0) return out.line("No models yet. Train one: edgetune train DATASET_ID --wait");
      out.line(out.table(["id", "accuracy", "labels", "backbone", "dataset", "created"], all.map((m) => [m.id, pct(m.metrics.accuracy), m.labels.length, m.backbone, `${m.dataset_id} v${m.dataset_version}`, m.created_at])));
    });
  models
    .command("show")
    .argument("<id>", "model id (mdl_...)")
    .description("show a model and its validation metrics")
    .action(async (id: string, _o, command: Command) => {
      const { out, client } = context(command);
      const m = await client.models.get(id);
      if (out.json) return out.result(m);
      printModelMetrics(out, m);
    });

  program
    .command("predict")
    .argument("<model_or_alias>", "a model id (mdl_...) or an alias name")
    .argument("<files...>", "image files or globs (quote globs to let edgetune expand them: 'photos/**/*.jpg')")
    .option("--top-k <k>", "labels per image", (v) => positiveNumber(v, "--top-k"), 3)
    .description("predict labels for image files")
    .action(async (target: string, fileArgs: string[], options: { topK: number }, command: Command) => {
      const { out, client } = context(command);
      const { files, unmatched } = expandFileArgs(fileArgs);
      if (unmatched.length > 0) throw new UsageError(`no such file, or nothing matched: ${unmatched.join(", ")}`);
      const results = await predictFiles(client, target, files, {
        topK: options.topK,
        onDownscale: ({ file, from, to, maxPixels }) => out.note(`${file}: ${from.width}x${from.height} is over the edge's limit of ${maxPixels} pixels; predicted from a ${to.width}x${to.height} copy`),
      });
      const modelId = results[0]?.model_id ?? target;
      if (out.json) return out.result({ model_id: modelId, results: results.map((r) => ({ file: r.file, predictions: r.predictions })) });
      out.line(out.table(["file", "label", "probability", "then"], results.map((r) => [r.file, r.predictions[0]?.label ?? "", r.predictions[0] ? r.predictions[0].probability.toFixed(4) : "", r.predictions.slice(1).map((p) => `${p.label} ${p.probability.toFixed(3)}`).join(", ")]), { align: ["left", "left", "right", "left"] }));
    });

  const aliases = program.command("aliases").description("named pointers to models (switched atomically)");
  aliases
    .command("set")
    .argument("<name>", "alias name (lowercase letters, digits, _ or -)")
    .argument("<model_id>", "model id (mdl_...)")
    .description("point an alias at a model")
    .action(async (name: string, modelId: string, _o, command: Command) => {
      const { out, client } = context(command);
      const a = await client.aliases.set(name, modelId);
      if (out.json) return out.result(a);
      out.line(`${a.name} -> ${a.model_id}${a.previous_model_id ? ` (was ${a.previous_model_id})` : ""}`);
    });
  aliases
    .command("show")
    .argument("<name>", "alias name")
    .description("show an alias and its history")
    .action(async (name: string, _o, command: Command) => {
      const { out, client } = context(command);
      const a = await client.aliases.get(name);
      if (out.json) return out.result(a);
      out.line(`${a.name} -> ${a.model_id} (since ${a.updated_at})`);
      if (a.history?.length) out.line(out.table(["switched at", "model", "previous"], a.history.map((h) => [h.switched_at, h.model_id, h.previous_model_id ?? ""])));
    });
  aliases
    .command("list")
    .description("list aliases")
    .action(async (_o, command: Command) => {
      const { out, client } = context(command);
      const all = [];
      for await (const a of client.aliases.all()) all.push(a);
      if (out.json) return out.result({ aliases: all });
      if (all.length === 0) return out.line("No aliases yet: edgetune aliases set prod MODEL_ID");
      out.line(out.table(["name", "model", "updated"], all.map((a) => [a.name, a.model_id, a.updated_at])));
    });

  program
    .command("export")
    .argument("<model_id>", "model id (mdl_...)")
    .argument("<dir>", "folder to write (created if missing)")
    .description("write a self-contained bundle (backbone + head weights, labels, preprocessing, predict()) and a runnable example")
    .action(async (modelId: string, dir: string, _o, command: Command) => {
      const { out, client } = context(command);
      const written = await exportBundle(client, modelId, dir);
      if (out.json) return out.result({ dir: path.resolve(dir), files: written });
      out.line(`Wrote ${written.length} files to ${dir}:`);
      for (const f of written) out.line(`  ${f}`);
      out.line(`Try it: cd ${dir} && npm install && node example.mjs some-image.jpg   (README.md there says more)`);
    });

  program
    .command("runner")
    .description("start a training runner against the configured API (token: EDGETUNE_RUNNER_TOKEN or --token-file; an admin creates one with POST /v1/runners)")
    .option("--engine <engine>", "auto, onnx, tfjs-wasm, ... (default auto)")
    .option("--token-file <file>", "a file holding the runner token (a token on the command line is visible to every local user in ps)")
    .option("--threads <n>", "threads for the engine")
    .action(async (options: { engine?: string; tokenFile?: string; threads?: string }, command: Command) => {
      const { connection } = context(command);
      const token = options.tokenFile ? fs.readFileSync(options.tokenFile, "utf8").trim() : process.env.EDGETUNE_RUNNER_TOKEN;
      if (!token) throw new UsageError("the runner needs a token: EDGETUNE_RUNNER_TOKEN or --token-file FILE (`npm start` keeps its own in .wrangler/state/edgetune/runner-token).");
      // The token goes to the runner in its environment, never on its command line.
      const args = ["--import", "tsx", path.join(ROOT, "gpu-runner/src/main.ts"), "--api", connection.url];
      if (options.engine) args.push("--engine", options.engine);
      if (options.threads) args.push("--threads", options.threads);
      const child = spawn(process.execPath, args, { stdio: "inherit", cwd: ROOT, env: { ...process.env, EDGETUNE_RUNNER_TOKEN: token } });
      // The runner handles SIGINT/SIGTERM itself (it gives its job back); pass them on and wait.
      const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
      process.on("SIGINT", forward("SIGINT"));
      process.on("SIGTERM", forward("SIGTERM"));
      const code = await new Promise<number>((resolve) => child.on("exit", (c, s) => resolve(c ?? (s ? 1 : 0))));
      if (code !== 0) throw new FailedOutcome();
    });

  return program;
}

function positiveNumber(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number, got '${value}'.`);
  return n;
}

/** Follows a job to its end; prints metrics on success. Exits 1 on failure, 130 on Ctrl-C (the job keeps running). */
async function watchJob(out: Output, client: Edgetune, jobId: string) {
  const { signal, dispose } = interruptSignal();
  try {
    const job = await followJob(out, client, jobId, signal);
    const model = job.status === "succeeded" && job.model_id ? await client.models.get(job.model_id) : null;
    if (out.json) out.result({ job, model });
    else if (model) {
      out.line();
      printModelMetrics(out, model);
      out.line(`Next: edgetune predict ${model.id} some-image.jpg   (or edgetune aliases set prod ${model.id})`);
    }
    if (job.status !== "succeeded") {
      out.error(job.status === "canceled" ? "job_canceled" : "job_failed", `${job.id} ${job.status}${job.error ? `: ${job.error}` : ""}`);
      throw new FailedOutcome();
    }
  } catch (err) {
    if (signal.aborted) {
      out.note(`\nStopped watching. Job ${jobId} keeps running on the server: follow it again with \`edgetune jobs watch ${jobId}\`, or stop it with \`edgetune jobs cancel ${jobId}\`.`);
      throw new Interrupted();
    }
    throw err;
  } finally {
    dispose();
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const out = new Output({ json: argv.includes("--json") });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return 0;
      return 2; // commander already printed the message
    }
    if (err instanceof UsageError) {
      out.error("usage", err.message);
      return 2;
    }
    if (err instanceof FailedOutcome) return 1;
    if (err instanceof Interrupted) return 130;
    if (err instanceof EdgetuneError) {
      out.error(err.code, err.message);
      if (err.status === 401) out.note(`Log in first: edgetune login --url URL --key KEY (or set EDGETUNE_API_KEY). Config: ${configFile()}`);
      return 1;
    }
    out.error("internal", err instanceof Error ? err.stack ?? err.message : String(err));
    return 1;
  }
}

process.exitCode = await main(process.argv);
