import { describeParamSource, type Reporter, type StageOutcome } from '@headstart/core';
import { createProgressBars } from './progress-bars.js';

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
  return `${outcomeLine(outcome)}${sourceLines(outcome)}`;
}

/** In a dry run, one indented line per param a wired input sets: `    lr ← find.lr 0.003 × lr_scale 0.5 = 0.0015`. */
export function sourceLines(outcome: StageOutcome): string {
  return (outcome.sources ?? []).map((source) => `\n    ${describeParamSource(source)}`).join('');
}

function outcomeLine(outcome: StageOutcome): string {
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

/** One line per stage; step output prefixed with the stage id; progress bars on a TTY only. */
export function createReporter(options: ReporterOptions): Reporter {
  const out = options.json ? process.stderr : process.stdout;
  const bars = options.tty && !options.quiet ? createProgressBars() : undefined;
  const line = (stream: NodeJS.WriteStream, text: string) => {
    if (bars) bars.log(stream, text);
    else stream.write(`${text}\n`);
  };
  return {
    stageStarted(id) {
      if (options.tty && !options.quiet) line(out, `  ${id}: running`);
    },
    stageFinished(outcome) {
      bars?.finish(outcome.id);
      // Why it failed is printed once, by `main`, with the command's other failures.
      line(out, describeOutcome(outcome));
    },
    log(stage, level, message) {
      if (options.quiet && level === 'info') return;
      line(options.json || level === 'warn' ? process.stderr : out, `[${stage}] ${level === 'warn' ? 'warning: ' : ''}${message}`);
    },
    progress(stage, done, total, unit) {
      bars?.update(stage, done, total, unit);
    },
    warn(message) {
      line(process.stderr, `warning: ${message}`);
    },
  };
}
