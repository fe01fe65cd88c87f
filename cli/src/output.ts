/**
 * Everything the CLI prints. Results go to stdout (a table, or exactly one JSON document with --json); progress,
 * notes and errors go to stderr. Progress bars and colours only when both streams are terminals and NO_COLOR is
 * unset; otherwise plain, throttled lines without escape codes (logs, CI, pipes).
 */
import cliProgress from "cli-progress";
import Table from "cli-table3";

export class Output {
  readonly json: boolean;
  /** Bars, colours and redraws allowed. */
  readonly fancy: boolean;

  constructor(options: { json?: boolean }, readonly stdout: NodeJS.WriteStream = process.stdout, readonly stderr: NodeJS.WriteStream = process.stderr) {
    this.json = Boolean(options.json);
    const noColor = process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "";
    this.fancy = Boolean(stdout.isTTY && stderr.isTTY) && !noColor && process.env.TERM !== "dumb";
  }

  /** The one JSON document of a --json run. */
  result(value: unknown): void {
    this.stdout.write(JSON.stringify(value, null, 2) + "\n");
  }

  /** A line of human output (stdout); nothing in --json mode. */
  line(text = ""): void {
    if (!this.json) this.stdout.write(text + "\n");
  }

  /** Notes and progress (stderr), also in --json mode. */
  note(text: string): void {
    this.stderr.write(text + "\n");
  }

  error(code: string, message: string): void {
    this.stderr.write(`${this.fancy ? "\x1b[31merror\x1b[0m" : "error"}: ${code}: ${message}\n`);
  }

  bold(text: string): string {
    return this.fancy ? `\x1b[1m${text}\x1b[0m` : text;
  }

  table(head: string[], rows: (string | number)[][], options: { align?: ("left" | "right" | "center")[] } = {}): string {
    const table = new Table({
      head,
      style: { head: this.fancy ? ["cyan"] : [], border: this.fancy ? ["grey"] : [] },
      colAligns: options.align,
      // No rule between rows: a 400-row rejected list stays 400 lines.
      chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
    });
    table.push(...rows.map((r) => r.map(String)));
    return table.toString();
  }

  /** A progress display: a cli-progress bar on a terminal, otherwise a line at most every `plainEveryMs`. */
  progress(label: string, total: number, format: (values: ProgressValues) => string, plainEveryMs = 2000): Progress {
    return new Progress(this, label, total, format, plainEveryMs);
  }
}

export interface ProgressValues {
  value: number;
  total: number;
  /** Units per second since the display started. */
  rate: number;
  /** Seconds left at that rate, or null before a rate is known. */
  etaS: number | null;
  payload: Record<string, unknown>;
}

export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private readonly started = Date.now();
  private startValue: number | null = null;
  private lastPlain = 0;
  private lastLine = "";
  private value = 0;
  private payload: Record<string, unknown> = {};
  private stopped = false;

  constructor(private readonly out: Output, private readonly label: string, private total: number, private readonly format: (v: ProgressValues) => string, private readonly plainEveryMs: number) {
    if (out.fancy) {
      this.bar = new cliProgress.SingleBar(
        {
          stream: out.stderr,
          format: `${label.padEnd(10)} {bar} {percentage}% | {details}`,
          barsize: 28,
          hideCursor: true,
          clearOnComplete: false,
          fps: 8,
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(Math.max(1, total), 0, { details: "" });
    }
  }

  private values(): ProgressValues {
    const elapsedS = (Date.now() - this.started) / 1000;
    const base = this.startValue ?? 0;
    const rate = elapsedS > 0.2 ? (this.value - base) / elapsedS : 0;
    const etaS = rate > 0 && this.total > 0 ? Math.max(0, (this.total - this.value) / rate) : null;
    return { value: this.value, total: this.total, rate, etaS, payload: this.payload };
  }

  update(value: number, options: { total?: number; payload?: Record<string, unknown> } = {}): void {
    if (this.stopped) return;
    if (this.startValue === null) this.startValue = value; // resumed work does not count towards the rate
    this.value = value;
    if (options.total !== undefined) this.total = options.total;
    if (options.payload) this.payload = { ...this.payload, ...options.payload };
    const details = this.format(this.values());
    if (this.bar) {
      if (options.total !== undefined) this.bar.setTotal(Math.max(1, options.total));
      this.bar.update(value, { details });
      return;
    }
    const now = Date.now();
    const line = `${this.label}: ${this.total > 0 ? `${Math.floor((100 * value) / this.total)}% ` : ""}${details}`;
    if ((now - this.lastPlain >= this.plainEveryMs || value >= this.total) && line !== this.lastLine) {
      this.lastPlain = now;
      this.lastLine = line;
      this.out.note(line);
    }
  }

  stop(finalNote?: string): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.bar) {
      this.bar.update(this.value, { details: this.format(this.values()) });
      this.bar.stop();
    } else {
      // Plain mode throttles lines: make sure the final state is on screen.
      const line = `${this.label}: ${this.total > 0 ? `${Math.floor((100 * this.value) / this.total)}% ` : ""}${this.format(this.values())}`;
      if (line !== this.lastLine) this.out.note(line);
    }
    if (finalNote) this.out.note(finalNote);
  }
}

export { formatBytes } from "../../shared/format-bytes";

export const formatDuration = (seconds: number | null) => {
  if (seconds === null || !Number.isFinite(seconds)) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
};
