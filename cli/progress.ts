/** A single self-rewriting progress line on a TTY; on a pipe, a line every few seconds. */
export class ProgressLine {
  private last = 0;
  private shown = false;

  constructor(private readonly stream: NodeJS.WriteStream, private readonly intervalMs = 5000) {}

  /** Shows `text` (throttled to 10 updates/s on a TTY). */
  update(text: string): void {
    const now = Date.now();
    if (this.stream.isTTY) {
      if (now - this.last < 100) return;
      this.stream.write(`\r\x1b[2K${text}`);
      this.shown = true;
    } else {
      if (now - this.last < this.intervalMs) return;
      this.stream.write(`${text}\n`);
    }
    this.last = now;
  }

  /** Prints a message on its own line without losing the progress line. */
  note(text: string): void {
    this.stream.write(this.stream.isTTY && this.shown ? `\r\x1b[2K${text}\n` : `${text}\n`);
  }

  /** Ends the progress line. */
  done(): void {
    if (this.stream.isTTY && this.shown) this.stream.write('\r\x1b[2K');
    this.shown = false;
  }
}

/** Seconds as m:ss, or XhYYm from an hour on; '?' when unknown. */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** A progress line for model downloads on stderr: bytes, rate, ETA; a line of its own when one ends. */
export function downloadProgress(stream: NodeJS.WriteStream = process.stderr): (p: { model: string; received: number; total: number }) => void {
  const line = new ProgressLine(stream, 2000);
  const started = new Map<string, number>();
  const mb = (n: number) => (n / 1e6).toFixed(1);
  return (p) => {
    if (!started.has(p.model)) started.set(p.model, Date.now());
    const seconds = Math.max((Date.now() - started.get(p.model)!) / 1000, 1e-3);
    const rate = p.received / seconds;
    if (p.received >= p.total) {
      line.done();
      line.note(`pixdex: downloaded ${p.model} (${mb(p.total)} MB in ${seconds.toFixed(1)} s)`);
      return;
    }
    line.update(`pixdex: downloading ${p.model}: ${mb(p.received)}/${mb(p.total)} MB  ${mb(rate)} MB/s  ETA ${formatEta((p.total - p.received) / rate)}`);
  };
}
