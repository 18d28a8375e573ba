import type { Failure, Result } from '@headstart/core';

/**
 * What a command hands `main`: the exit status of a command that did its job (0; 1 when its answer is
 * "no", as `status --check`; 130 when interrupted), or the failures that stopped it. Only `main` prints
 * failures, and core's `exitCodeOf` alone turns them into an exit code.
 */
export type CommandResult = Result<number, Failure[]>;

export function exitWith(code = 0): CommandResult {
  return { ok: true, value: code };
}

export function failWith(...failures: Failure[]): CommandResult & { ok: false } {
  return { ok: false, error: failures };
}
