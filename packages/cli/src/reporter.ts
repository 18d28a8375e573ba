import type { Reporter, StageOutcome } from '@headstart/core';
import { formatFailure } from '@headstart/core';

export interface ReporterOptions {
  /** Step output and stage lines go to stderr (so stdout stays one JSON document). */
  json: boolean;
  quiet: boolean;
  tty: boolean;
}

const SYMBOL: Record<StageOutcome['status'], string> = { cached: '·', ran: '✓', failed: '✗', skipped: '-', 'would-run': '>' };

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms}ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

export function describeOutcome(outcome: StageOutcome): string {
  const symbol = SYMBOL[outcome.status];
  switch (outcome.status) {
    case 'cached':
      return `${symbol} ${outcome.id}: cached`;
    case 'ran':
      return `${symbol} ${outcome.id}: ran in ${formatDuration(outcome.durationMs)} (${outcome.why?.join('; ')})`;
    case 'failed':
      return `${symbol} ${outcome.id}: failed`;
    case 'skipped':
      return `${symbol} ${outcome.id}: skipped (${outcome.why?.join('; ')})`;
    case 'would-run':
      return `${symbol} ${outcome.id}: will run (${outcome.why?.join('; ')})`;
  }
}

/** One line per stage; step output prefixed with the stage id; progress as a redrawn line on a TTY only. */
export function createReporter(options: ReporterOptions): Reporter & { failures(): StageOutcome[] } {
  const out = options.json ? process.stderr : process.stdout;
  const failed: StageOutcome[] = [];
  let progressShown = false;
  const clearProgress = () => {
    if (progressShown) process.stderr.write('\r\x1b[K');
    progressShown = false;
  };
  const line = (stream: NodeJS.WriteStream, text: string) => {
    clearProgress();
    stream.write(`${text}\n`);
  };
  return {
    stageStarted(id) {
      if (options.tty && !options.quiet) line(out, `  ${id}: running`);
    },
    stageFinished(outcome) {
      if (outcome.status === 'failed') failed.push(outcome);
      line(out, describeOutcome(outcome));
      if (outcome.failure) line(process.stderr, formatFailure(outcome.failure));
    },
    log(stage, level, message) {
      if (options.quiet && level === 'info') return;
      line(options.json || level === 'warn' ? process.stderr : out, `[${stage}] ${level === 'warn' ? 'warning: ' : ''}${message}`);
    },
    progress(stage, done, total, unit) {
      if (!options.tty || options.quiet) return;
      const of = total ? `/${total}` : '';
      process.stderr.write(`\r\x1b[K[${stage}] ${done}${of}${unit ? ` ${unit}` : ''}`);
      progressShown = true;
    },
    warn(message) {
      line(process.stderr, `warning: ${message}`);
    },
    failures: () => failed,
  };
}
