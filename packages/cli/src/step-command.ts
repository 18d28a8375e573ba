import { exitWith, type CommandResult } from './command-result.js';

/**
 * Runs a one-shot command built on a step's code (predict, data export): Ctrl-C aborts it (exit 130).
 * Anything it throws goes to `main`, which prints a StepUserError as its one line (exit 2).
 */
export async function runStepCommand(work: (signal: AbortSignal) => Promise<CommandResult>): Promise<CommandResult> {
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  try {
    return await work(controller.signal);
  } catch (error) {
    clearProgressLine();
    if (controller.signal.aborted) return exitWith(130);
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
  }
}

/** `verb done/total images` on one rewritten stderr line, when stderr is a terminal. */
export function progressLine(verb: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (done, total) => process.stderr.write(`\r${verb} ${done}/${total} images`);
}

/** Clears that line, before anything else is printed. */
export function clearProgressLine(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
}
