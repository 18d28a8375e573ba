import { basename, dirname, relative } from 'node:path';
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

/** Every error a user can cause, and the two outcomes that are not (see exitCodeOf). Each prints as one line. */
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
  /** A workspace path (`outs:`, `deps:`) is absolute, leaves the pipeline's directory, or overlaps headstart's own files. */
  | { reason: 'unsafe-path'; at: SourceRange; stage: string; detail: string }
  /** `clean` was pointed at a directory that is not a headstart cache (no marker, unknown entries). */
  | { reason: 'not-a-cache'; path: string; detail: string }
  /** `clean` found a live process using the cache: any that opened it (its shared open lock), or one holding a stage lock. */
  | { reason: 'cache-in-use'; path: string; holder: string }
  /** Something else the user asked for that cannot be done (a bad flag value, an unusable backend). */
  | { reason: 'usage'; detail: string }
  /** A stage's step failed at run time (a command exited non-zero, a corrupt image). */
  | { reason: 'stage-failed'; stage: string; detail: string; userError: boolean }
  /** A step's code run outside a stage (predict, export, init, data export) rejected the user's input. */
  | { reason: 'bad-input'; detail: string }
  /** The operating system refused access to a path headstart reads or writes (EACCES, EPERM, EROFS). */
  | { reason: 'no-access'; path: string; code: string; syscall: string }
  /** A path headstart reads or writes is a file where a directory must be, or the other way round (ENOTDIR, EISDIR, EEXIST). */
  | { reason: 'wrong-file-type'; path: string; code: string; syscall: string }
  /** The disk (or quota) holding a path headstart writes is full (ENOSPC, EDQUOT). */
  | { reason: 'no-space'; path?: string; code: string }
  /** A command needs a remote cache and none is named. */
  | { reason: 'no-remote' }
  /** The remote cache is misconfigured, unreachable or refuses us. */
  | { reason: 'remote-unavailable'; detail: string }
  /** The Redis of the stage queue is misnamed or unreachable. */
  | { reason: 'queue-unavailable'; detail: string }
  /** `--model` names a path that is not a model folder. */
  | { reason: 'bad-model-reference'; ref: string; problem: string }
  /** A command needs a stage's recorded output (a model, a report) that the pipeline, lock file or local cache lacks. */
  | { reason: 'no-stage-output'; stage: string; output: string; detail: string }
  /** `report` found no evaluate stage, or its report output has no report.html. */
  | { reason: 'no-report'; path: string; detail: string }
  /** `compare` names a run the run log does not hold. */
  | { reason: 'unknown-run'; pipeline: string; run: string; have: number[] }
  /** `compare --best` names a metric no recorded run has. */
  | { reason: 'unknown-metric'; pipeline: string; metric: string }
  /** `metrics diff` cannot read the lock file at the baseline revision (not a git repository, unknown revision). */
  | { reason: 'no-baseline'; path: string; detail: string }
  /** A run finished but a quality gate (an evaluate stage's `fail_under`, a `max_drop`) failed: exit 3. */
  | { reason: 'gate-failed'; stage?: string; detail: string };

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
    case 'unsafe-path':
      return `stage "${failure.stage}": ${failure.detail}`;
    case 'not-a-cache':
      return `${failure.path} is not a headstart cache (${failure.detail}); nothing was deleted`;
    case 'cache-in-use':
      return `the cache ${failure.path} is in use by ${failure.holder}; nothing was deleted (try again when it ends)`;
    case 'usage':
      return failure.detail;
    case 'stage-failed':
      return `stage "${failure.stage}" failed: ${failure.detail}`;
    case 'bad-input':
      return failure.detail;
    case 'no-access':
      return `${dirname(failure.path)}: permission denied (${failure.code}: cannot ${failure.syscall} ${basename(failure.path)})`;
    case 'wrong-file-type':
      return `${failure.path}: ${WRONG_FILE_TYPE[failure.code] ?? 'not the kind of file expected'} (${failure.code}: cannot ${failure.syscall})`;
    case 'no-space':
      return `no space left on the device${failure.path ? ` holding ${dirname(failure.path)}` : ''} (${failure.code}); free some (\`headstart gc\` removes unused cache objects)`;
    case 'no-remote':
      return 'no remote cache: pass --remote s3://bucket/prefix, set HEADSTART_REMOTE or add remote: to the pipeline file';
    case 'remote-unavailable':
      return failure.detail;
    case 'queue-unavailable':
      return failure.detail;
    case 'bad-model-reference':
      return `${failure.ref}: ${failure.problem} (--model takes a model folder or a stage id)`;
    case 'no-stage-output':
      return failure.detail;
    case 'no-report':
      return `${failure.path}: ${failure.detail}`;
    case 'unknown-run':
      return `${failure.pipeline}: no run "${failure.run}" (have: ${failure.have.map((n) => `#${n}`).join(', ') || 'none'}; also latest, latest~1)`;
    case 'unknown-metric':
      return `${failure.pipeline}: no run recorded a metric "${failure.metric}"`;
    case 'no-baseline':
      return `${failure.path}: ${failure.detail}`;
    case 'gate-failed':
      return failure.stage ? `stage "${failure.stage}": ${failure.detail}` : failure.detail;
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

/** True for what the user can fix (exit 2): everything but a stage that failed on its own and a failed gate. */
export function isUserError(failure: Failure): boolean {
  if (failure.reason === 'stage-failed') return failure.userError;
  return failure.reason !== 'gate-failed';
}

/** The one map from failures to the exit code: 2 for a user error, else 1 for a failed stage, else 3 for a failed gate. */
export function exitCodeOf(failures: readonly Failure[]): number {
  if (failures.some(isUserError)) return 2;
  return failures.some((f) => f.reason === 'stage-failed') ? 1 : failures.length > 0 ? 3 : 0;
}

const NO_ACCESS = new Set(['EACCES', 'EPERM', 'EROFS']);
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);
/** What each code says about the path it names (`cache-dir` given a file, a file given as a folder). */
const WRONG_FILE_TYPE: Partial<Record<string, string>> = {
  ENOTDIR: 'a part of this path is a file, not a directory',
  EISDIR: 'is a directory, not a file',
  EEXIST: 'is a file, not a directory',
};

/**
 * The Failure an exception stands for when the user (or the machine's state) caused it, undefined for a bug.
 * The one place exceptions become failures: the executor's edge (per stage) and the CLI's (anything else).
 */
export function failureOf(error: unknown, stage?: string): Failure | undefined {
  if (error instanceof HeadstartError) return error.failure;
  if (error instanceof StepUserError) return stage ? { reason: 'stage-failed', stage, detail: error.message, userError: true } : { reason: 'bad-input', detail: error.message };
  const { code, path, syscall } = (error ?? {}) as NodeJS.ErrnoException;
  if (!(error instanceof Error) || typeof code !== 'string') return undefined;
  if (NO_SPACE.has(code)) return { reason: 'no-space', code, ...(path ? { path } : {}) };
  if (NO_ACCESS.has(code) && path) return { reason: 'no-access', path, code, syscall: syscall ?? 'open' };
  // EEXIST means a file in the way only from mkdir (recursive, as everywhere here); from open or link it is a race of ours.
  if (code in WRONG_FILE_TYPE && path && (code !== 'EEXIST' || syscall === 'mkdir')) return { reason: 'wrong-file-type', path, code, syscall: syscall ?? 'open' };
  return undefined;
}

/** What a stage's exception means: a user error's Failure, else a stage that failed on its own (its message, or stack with HEADSTART_DEBUG). */
export function stageFailure(stage: string, error: unknown): Failure {
  const failure = failureOf(error, stage);
  if (failure) return failure;
  if (error instanceof Error && error.name === 'AbortError') return { reason: 'stage-failed', stage, detail: 'interrupted', userError: false };
  const detail = error instanceof Error ? (process.env['HEADSTART_DEBUG'] ? error.stack ?? error.message : error.message) : String(error);
  return { reason: 'stage-failed', stage, detail, userError: false };
}
