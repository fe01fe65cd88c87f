/**
 * Live progress of a job from its event stream: one display per phase (loading the backbone, embedding with img/s,
 * training with epoch, loss and accuracy, evaluating, uploading), then the final job.
 */
import type { Edgetune, Job, JobEvent } from "../../sdk/index";
import { formatDuration, type Output, type Progress } from "./output";

const PHASE_LABELS: Record<string, string> = { loading_backbone: "backbone", embedding: "embedding", training: "training", evaluating: "evaluating", uploading: "saving" };

export async function followJob(out: Output, client: Edgetune, jobId: string, signal: AbortSignal): Promise<Job> {
  let phase: string | null = null;
  let bar: Progress | null = null;
  let lastEpoch: any = null;
  let status = "";
  const endPhase = () => {
    bar?.stop();
    bar = null;
  };
  const onEvent = (event: JobEvent) => {
    const data = event.data ?? {};
    if (event.type === "status") {
      if (data.status === status) return;
      status = data.status;
      if (data.status === "running") {
        endPhase();
        phase = null;
        out.note(`${jobId} running${data.attempt > 1 ? ` (attempt ${data.attempt})` : ""}${data.runner_id ? ` on runner ${data.runner_id}` : ""}`);
      } else if (data.status === "queued") out.note(`${jobId} queued${data.reason ? `: ${data.reason}` : ", waiting for a runner"}`);
      else {
        endPhase();
        out.note(`${jobId} ${data.status}${data.error ? `: ${data.error}` : ""}`);
      }
    } else if (event.type === "progress") {
      if (data.phase !== phase) {
        endPhase();
        phase = data.phase;
        const label = PHASE_LABELS[data.phase] ?? data.phase;
        if (data.phase === "embedding") bar = out.progress(label, data.total, (v) => `${v.value}/${v.total} images${v.rate > 0 ? ` | ${v.rate.toFixed(1)} img/s | ETA ${formatDuration(v.etaS)}` : ""}`);
        else if (data.phase === "training") bar = out.progress(label, data.total, (v) => epochDetails(v.value, v.total, v.payload.epoch));
        else if (data.total > 1) bar = out.progress(label, data.total, (v) => `${v.value}/${v.total}`);
        else out.note(`${label}...`);
      }
      bar?.update(data.done, { total: data.total, ...(phase === "training" && lastEpoch ? { payload: { epoch: lastEpoch } } : {}) });
    } else if (event.type === "metrics") {
      lastEpoch = data;
      if (phase === "training") (bar as Progress | null)?.update(data.epoch, { payload: { epoch: data } });
    } else if (event.type === "cancel_requested") out.note("cancel requested; the runner stops at its next heartbeat");
  };
  const onReconnect = ({ attempt, reason }: { attempt: number; reason: string }) => {
    if (attempt > 1) out.note(`event stream lost (${reason}); reconnecting (attempt ${attempt})`);
  };
  try {
    return await client.jobs.wait(jobId, { signal, onEvent, onReconnect });
  } finally {
    endPhase();
  }
}

function epochDetails(value: number, total: number, epoch: any): string {
  const head = `epoch ${value}/${total}`;
  if (!epoch) return head;
  return `${head} | loss ${epoch.train_loss.toFixed(3)} acc ${(100 * epoch.train_accuracy).toFixed(1)}% | val_loss ${epoch.val_loss.toFixed(3)} val_acc ${(100 * epoch.val_accuracy).toFixed(1)}%`;
}
