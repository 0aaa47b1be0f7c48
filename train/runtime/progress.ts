/**
 * A progress line with rate and ETA on stderr. On a terminal it redraws one
 * line; otherwise (CI, logs) it prints a line at every 10% so logs stay short.
 */
export class Progress {
  private readonly start = Date.now();
  private lastPct = -1;
  private readonly tty = !!process.stderr.isTTY;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly quiet = false,
  ) {}

  update(done: number, info = ''): void {
    if (this.quiet || this.total <= 0) return;
    const el = (Date.now() - this.start) / 1000;
    const rate = done / Math.max(el, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    const pct = Math.floor((100 * done) / this.total);
    const width = 24;
    const filled = Math.round((width * done) / this.total);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const line = `${this.label} ${bar} ${done}/${this.total} ${fmtTime(el)}<${fmtTime(eta)} ${info}`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      if (done >= this.total) process.stderr.write('\n');
    } else if (Math.floor(pct / 10) !== Math.floor(this.lastPct / 10) || done >= this.total) {
      process.stderr.write(`${line}\n`);
    }
    this.lastPct = pct;
  }
}

export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.floor(s % 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : `${m}:${String(sec).padStart(2, '0')}`;
}
