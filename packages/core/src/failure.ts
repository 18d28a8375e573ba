import { relative } from 'node:path';
import { unreachable } from './util/unreachable.js';

/** A file the user wrote, kept whole so a diagnostic can compute line and column when it is printed. */
export interface SourceFile {
  path: string;
  text: string;
}

/** Where in a source file something is wrong: a byte range taken from the YAML parser's nodes. */
export interface SourceRange {
  file: SourceFile;
  offset: number;
  length: number;
}

/** Every error a user can cause. Each prints as one line; the CLI exits with code 2 for all but `stage-failed`. */
export type Failure =
  /** The pipeline file (or another named file) does not exist or cannot be read. */
  | { reason: 'missing-file'; path: string; detail: string; at?: SourceRange }
  /** The YAML does not parse. */
  | { reason: 'invalid-yaml'; at: SourceRange; detail: string }
  /** The pipeline file breaks the pipeline schema (a wrong type, a misspelt key). */
  | { reason: 'invalid-pipeline'; at: SourceRange; detail: string }
  /** Two stages with one name. */
  | { reason: 'duplicate-stage'; at: SourceRange; stage: string }
  /** `uses:` names no built-in step, file or installed package. */
  | { reason: 'unknown-step'; at: SourceRange; uses: string; detail: string }
  /** A step file or package loaded but is not a valid step. */
  | { reason: 'invalid-step'; at: SourceRange; uses: string; detail: string }
  /** A `with:` parameter is missing, misspelt, or has the wrong type or value. */
  | { reason: 'invalid-param'; at: SourceRange; stage: string; detail: string }
  /** `${...}` names something that does not exist or is malformed. */
  | { reason: 'bad-interpolation'; at: SourceRange; detail: string }
  /** `inputs:` or `needs:` names a stage that does not exist. */
  | { reason: 'unknown-stage'; at: SourceRange; stage: string; suggestion?: string }
  /** `inputs:` names an output the upstream step does not produce, or an input the step does not read. */
  | { reason: 'unknown-output'; at: SourceRange; detail: string }
  /** The stages' edges form a cycle. */
  | { reason: 'cycle'; at: SourceRange; stages: string[] }
  /** A `--set` override is malformed or points nowhere. */
  | { reason: 'bad-override'; override: string; detail: string }
  /** A workspace path the key depends on (`deps:`) is missing. */
  | { reason: 'missing-dep'; at?: SourceRange; stage: string; path: string }
  /** `--stage` or `--force` names no stage of the pipeline. */
  | { reason: 'unknown-target'; stage: string; suggestion?: string }
  /** Something else the user asked for that cannot be done (a bad flag value, an unusable backend). */
  | { reason: 'usage'; detail: string }
  /** A stage's step failed at run time (a command exited non-zero, a corrupt image). */
  | { reason: 'stage-failed'; stage: string; detail: string; userError: boolean };

/** A user error raised deep in a call chain (a step, a loader) and turned into a Failure at the edge. */
export class HeadstartError extends Error {
  constructor(readonly failure: Failure) {
    super(failureMessage(failure));
    this.name = 'HeadstartError';
  }
}

/** Thrown by a step for bad user input (a corrupt image, a missing folder): exit 2, no stack trace. */
export class StepUserError extends Error {
  override name = 'StepUserError';
}

export type Result<T, E = Failure[]> = { ok: true; value: T } | { ok: false; error: E };
export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const fail = <E>(error: E): Result<never, E> => ({ ok: false, error });

export function failureMessage(failure: Failure): string {
  switch (failure.reason) {
    case 'missing-file':
      return `${failure.path}: ${failure.detail}`;
    case 'invalid-yaml':
      return `invalid YAML: ${failure.detail}`;
    case 'invalid-pipeline':
      return failure.detail;
    case 'duplicate-stage':
      return `duplicate stage "${failure.stage}"`;
    case 'unknown-step':
      return `unknown step "${failure.uses}"${failure.detail}`;
    case 'invalid-step':
      return `"${failure.uses}" is not a valid step: ${failure.detail}`;
    case 'invalid-param':
      return `stage "${failure.stage}": ${failure.detail}`;
    case 'bad-interpolation':
      return failure.detail;
    case 'unknown-stage':
      return `unknown stage "${failure.stage}"${failure.suggestion ? ` (did you mean "${failure.suggestion}"?)` : ''}`;
    case 'unknown-output':
      return failure.detail;
    case 'cycle':
      return `cycle between stages: ${failure.stages.join(' -> ')}`;
    case 'bad-override':
      return `--set ${failure.override}: ${failure.detail}`;
    case 'missing-dep':
      return `stage "${failure.stage}": ${failure.path} does not exist`;
    case 'unknown-target':
      return `no stage named "${failure.stage}"${failure.suggestion ? ` (did you mean "${failure.suggestion}"?)` : ''}`;
    case 'usage':
      return failure.detail;
    case 'stage-failed':
      return `stage "${failure.stage}" failed: ${failure.detail}`;
    default:
      return unreachable(failure);
  }
}

export function failureLocation(failure: Failure): SourceRange | undefined {
  return 'at' in failure ? failure.at : undefined;
}

/** `file:line:col: message`, the one line a user error prints. */
export function formatFailure(failure: Failure, cwd = process.cwd()): string {
  const at = failureLocation(failure);
  const message = failureMessage(failure);
  if (!at) return failure.reason === 'missing-file' ? `${displayPath(failure.path, cwd)}: ${failure.detail}` : message;
  const { line, column } = lineAndColumn(at.file.text, at.offset);
  return `${displayPath(at.file.path, cwd)}:${line}:${column}: ${message}`;
}

export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

export function displayPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel.startsWith('..') || rel === '' ? path : rel;
}

/** Exit code for a failure: 2 for bad input, 1 for a stage that failed while running. */
export function exitCodeOf(failures: readonly Failure[]): number {
  return failures.some((f) => f.reason !== 'stage-failed' || f.userError) ? 2 : 1;
}
